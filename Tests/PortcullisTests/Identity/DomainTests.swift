import Foundation
import Identity
import Server
import Testing

@Suite("Identity rules and configuration")
struct DomainTests {
    @Test("e-mail canonical form", arguments: [
        ("  Alice@Example.COM ", "alice@example.com"), ("a@b", "a@b"), ("x.y+z@sub.example.org", "x.y+z@sub.example.org"),
    ])
    func emailValid(_ input: String, _ expected: String) {
        #expect(Email.canonical(input) == expected)
    }

    @Test("e-mail rejects", arguments: ["", "plain", "@example.com", "a@", "a@b@c", "a b@c.d", "a@.com", "a@com.", "a@x..y", "a\u{0}@x.y",
                                        String(repeating: "a", count: 65) + "@x.y", "a@" + String(repeating: "d", count: 254)])
    func emailInvalid(_ input: String) {
        #expect(Email.canonical(input) == nil)
    }

    @Test("password length limits count characters")
    func passwordPolicy() throws {
        #expect(throws: IdentityError.self) { try PasswordPolicy.validate("1234567") }
        try PasswordPolicy.validate("12345678")
        try PasswordPolicy.validate(String(repeating: "é", count: 256))
        #expect(throws: IdentityError.self) { try PasswordPolicy.validate(String(repeating: "é", count: 257)) }
    }

    @Test("argon2id hashes in PHC form, verifies, and refuses hashes with hostile parameters")
    func argon2() async throws {
        let hasher = try Argon2idHasher(parameters: .init(memory: 1024, iterations: 1, parallelism: 1))
        let hash = try await hasher.hash("correct horse battery")
        #expect(hash.hasPrefix("$argon2id$v=19$m=1024,t=1,p=1$"))
        #expect(await hasher.verify("correct horse battery", against: hash))
        #expect(await hasher.verify("wrong", against: hash) == false)
        #expect(try await hasher.hash("correct horse battery") != hash, "salted")
        let hostile = hash.replacingOccurrences(of: "m=1024", with: "m=4194304")
        #expect(await hasher.verify("correct horse battery", against: hostile) == false)
        #expect(await hasher.verify("x", against: "not a hash") == false)
        let owasp = try Argon2idHasher()
        #expect(owasp.decoyHash.hasPrefix("$argon2id$v=19$m=19456,t=2,p=1$"))
        #expect(owasp.needsRehash(hash))
    }

    @Test("opaque tokens have 256 bits and are stored as SHA-256")
    func secrets() {
        let token = Secrets.token()
        #expect(token.count == 43)
        #expect(Secrets.base64urlDecode(token)?.count == 32)
        #expect(Secrets.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Secrets.constantTimeEquals("abc", "abc"))
        #expect(!Secrets.constantTimeEquals("abc", "abd"))
        #expect(!Secrets.constantTimeEquals("abc", "abcd"))
    }

    @Test("master key sealing round-trips and a different key cannot open")
    func sealing() throws {
        let a = try KeySealer(masterKey: Data(repeating: 1, count: 32))
        let b = try KeySealer(masterKey: Data(repeating: 2, count: 32))
        let sealed = try a.seal(Data("secret".utf8))
        #expect(try a.open(sealed) == Data("secret".utf8))
        #expect(throws: KeySealerError.cannotOpen) { try b.open(sealed) }
        #expect(throws: KeySealerError.badMasterKey) { try KeySealer(masterKey: Data(count: 16)) }
    }

    @Test("master key file is created with mode 0600 and reused")
    func masterKeyFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mk-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("sub/master.key").path
        let first = try MasterKey.load(base64: nil, file: path)
        let second = try MasterKey.load(base64: nil, file: path)
        #expect(first == second)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("a master key file that cannot be made or read names the variable, the path and why")
    func masterKeyFileProblems() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mk-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let blocker = dir.appendingPathComponent("plain-file").path
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        func message(_ file: String) -> String? {
            do { _ = try MasterKey.load(base64: nil, file: file); return nil } catch { return error.description }
        }
        #expect(message(blocker + "/master.key") == "PORTCULLIS_MASTER_KEY_FILE: cannot create the directory \(blocker) for \(blocker)/master.key: \(blocker) is a file, not a directory")
        #expect(message(blocker)?.hasPrefix("PORTCULLIS_MASTER_KEY_FILE: \(blocker) does not hold a master key") == true)
        #expect(message(dir.path) == "PORTCULLIS_MASTER_KEY_FILE: \(dir.path) is a directory; name the key file itself")
        #expect(throws: ConfigError.self) { try MasterKey.load(base64: "c2hvcnQ=", file: blocker) }
    }

    @Test("configuration defaults and one clear error per bad variable")
    func config() throws {
        let d = try AppConfig.fromEnvironment([:])
        #expect(d.databaseURL == "sqlite:./data/portcullis.db")
        #expect(d.port == 8080)
        #expect(d.issuer == "http://localhost:8080")
        #expect(d.audience == d.issuer)
        #expect(d.accessTokenTTL == .seconds(900))
        let c = try AppConfig.fromEnvironment(["PORTCULLIS_PORT": "9000", "PORTCULLIS_ACCESS_TOKEN_TTL": "5m", "PORTCULLIS_REFRESH_TOKEN_TTL": "7d",
                                               "PORTCULLIS_PUBLIC_URL": "https://auth.example.com/", "PORTCULLIS_SIGNUP": "invite_only"])
        #expect(c.port == 9000)
        #expect(c.accessTokenTTL == .seconds(300))
        #expect(c.refreshTokenTTL == .seconds(7 * 86_400))
        #expect(c.issuer == "https://auth.example.com")
        #expect(c.signup == .inviteOnly)
        let bad: [(String, String)] = [
            ("PORTCULLIS_PORT", "http"), ("PORTCULLIS_DATABASE_URL", "mysql://x"), ("PORTCULLIS_SIGNUP", "sometimes"),
            ("PORTCULLIS_ACCESS_TOKEN_TTL", "forever"), ("PORTCULLIS_LOG_FORMAT", "xml"), ("PORTCULLIS_MASTER_KEY", "c2hvcnQ="),
            ("PORTCULLIS_PUBLIC_URL", "ftp://x"), ("PORTCULLIS_ROOT_EMAIL", "nope"), ("PORTCULLIS_LOG_LEVEL", "loud"),
        ]
        for (key, value) in bad {
            #expect(throws: ConfigError.self) { try AppConfig.fromEnvironment([key: value]) }
            do { _ = try AppConfig.fromEnvironment([key: value]) } catch let e as ConfigError { #expect(e.variable == key) } catch {}
        }
    }
}
