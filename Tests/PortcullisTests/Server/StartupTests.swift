import Foundation
import Server
import Storage
import Testing

@Suite("Start-up")
struct StartupTests {
    /// Start-up tries once and reports what the network said, instead of retrying while the
    /// operator waits. Not a speed bound (those belong in `make bench`): the two-minute guard
    /// only turns a retry loop into a failure instead of a run that never ends. A wall-clock
    /// bound of a few seconds failed in CI when parallel tests starved the process.
    @Test("a down PostgreSQL fails start-up at once with a clear message, without retrying")
    func postgresDownFailsFast() async throws {
        let outcome: Result<Void, any Error>? = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask {
                do {
                    _ = try await DatabaseOpener.open(url: "postgres://nobody:secret@127.0.0.1:1/nothing?sslmode=disable", logger: testLogger)
                    return .success(())
                } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(120))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch outcome {
        case nil: Issue.record("start-up neither connected nor failed within two minutes: it retries")
        case .success: Issue.record("connecting to a closed port must fail")
        case .failure(let error):
            guard case StorageError.unavailable(let message)? = error as? StorageError else { Issue.record("unexpected \(error)"); return }
            #expect(message.contains("127.0.0.1:1"))
            #expect(message.contains("connection refused"), "the network's own answer, not a timeout after retries: \(message)")
            #expect(!message.contains("secret"), "the password never appears in messages")
        }
    }

    @Test("a wrong PostgreSQL password fails start-up with the server's reason")
    func postgresWrongUser() async throws {
        guard let url = ProcessInfo.processInfo.environment["PORTCULLIS_TEST_POSTGRES_URL"],
              var components = URLComponents(string: url) else { throw MissingPostgres() }
        components.user = "no_such_role"
        await #expect(throws: StorageError.self) {
            _ = try await DatabaseOpener.open(url: components.string!, logger: testLogger)
        }
    }

    @Test("an unknown database URL scheme is refused")
    func badScheme() async throws {
        await #expect(throws: StorageError.self) { _ = try await DatabaseOpener.open(url: "mysql://x", logger: testLogger) }
        await #expect(throws: StorageError.self) { _ = try await DatabaseOpener.open(url: "sqlite:", logger: testLogger) }
    }

    /// Malformed URLs with credentials in them: a wrong scheme, a password with an unencoded
    /// `/`, `?`, `#` or space, a port that is not a number, an unknown sslmode, no host.
    static let user = "kpzvq", password = "Zq9Xw7tL0pS3cr3t"
    static let malformedURLs: [(String, String)] = [
        ("PORTCULLIS_DATABASE_URL", "mysql://\(user):\(password)@db.example.com/app"),
        ("PORTCULLIS_DATABASE_URL", "postgres://\(user):12/\(password)@db.example.com/app"),
        ("PORTCULLIS_DATABASE_URL", "postgres://\(user):\(password)?x@db.example.com/app"),
        ("PORTCULLIS_DATABASE_URL", "postgres://\(user):\(password)#x@db.example.com/app"),
        ("PORTCULLIS_DATABASE_URL", "postgres://\(user):\(password) x@db.example.com/app"),
        ("PORTCULLIS_DATABASE_URL", "postgres://\(user):\(password)@db.example.com:port/app"),
        ("PORTCULLIS_DATABASE_URL", "postgres://\(user):\(password)@db.example.com/app?sslmode=sometimes"),
        ("PORTCULLIS_SMTP_URL", "smtpx://\(user):\(password)@mail.example.com"),
        ("PORTCULLIS_SMTP_URL", "smtp://\(user):\(password) x@mail.example.com"),
        ("PORTCULLIS_SMTP_URL", "smtp://\(user):12/\(password)@mail.example.com"),
        ("PORTCULLIS_SMTP_URL", "smtp://\(user):\(password)@"),
    ]

    /// Any four characters in a row of the user name or password found in `text`.
    static func leakedCredentials(in text: String) -> [String] {
        [user, password].flatMap { secret in
            let chars = Array(secret)
            return (0...(chars.count - 4)).map { String(chars[$0..<$0 + 4]) }
        }.filter { text.contains($0) }
    }

    @Test("a malformed database or SMTP URL stops start-up naming the variable and the expected shape, never the credentials")
    func malformedURLsHideCredentials() async throws {
        for (variable, url) in Self.malformedURLs {
            do {
                _ = try AppConfig.fromEnvironment([variable: url])
                Issue.record("\(variable) accepted \(url)")
            } catch let error as ConfigError {
                #expect(error.variable == variable)
                #expect(error.message.contains("://"), "the expected shape: \(error)")
                #expect(Self.leakedCredentials(in: error.description).isEmpty, "\(error)")
            }
        }
        // Strict, not fussy: well-formed URLs, credentials percent-encoded, still pass.
        let fine: [(String, String)] = [
            ("PORTCULLIS_DATABASE_URL", "sqlite:./data/portcullis.db"),
            ("PORTCULLIS_DATABASE_URL", "postgres://app:p%2Fw%40rd%3F@db.example.com:5432/app?sslmode=require&search_path=x"),
            ("PORTCULLIS_DATABASE_URL", "postgresql://app@[::1]:5432/app"),
            ("PORTCULLIS_DATABASE_URL", "postgres:///app"),
            ("PORTCULLIS_SMTP_URL", "smtp://mailer:s3cret@127.0.0.1:2525?starttls=required&insecure=1"),
            ("PORTCULLIS_SMTP_URL", "smtps://mail.example.com"),
            ("PORTCULLIS_SMTP_URL", "log"),
        ]
        for (variable, url) in fine {
            #expect(throws: Never.self, "\(url)") { _ = try AppConfig.fromEnvironment([variable: url]) }
        }
        // Opening the database checks the URL itself too, with the same care.
        for (variable, url) in Self.malformedURLs where variable == "PORTCULLIS_DATABASE_URL" {
            do {
                _ = try await DatabaseOpener.open(url: url, logger: testLogger)
                Issue.record("opened \(url)")
            } catch {
                #expect(Self.leakedCredentials(in: "\(error)").isEmpty, "\(error)")
            }
        }
    }

    @Test("serving starts on an empty data directory, creating the database and the master key")
    func emptyDataDirectory() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(UUID())/data")
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let db = try await DatabaseOpener.open(url: "sqlite:\(dir.path)/portcullis.db", logger: testLogger)
        let config = testConfig(dir: dir)
        let services = try await AppServices.start(config: config, database: db, logger: testLogger, hasher: testHasher)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("portcullis.db").path))
        #expect(FileManager.default.fileExists(atPath: config.masterKeyFile))
        // One key per algorithm: ES256 (access tokens) and RS256 (ID tokens).
        #expect(services.tokens.jwks().compactMap { $0["alg"] }.sorted() == ["ES256", "RS256"])
        await db.close()
        // A second start on the same directory reuses the key: the same JWKS, no new key.
        let again = try await DatabaseOpener.open(url: "sqlite:\(dir.path)/portcullis.db", logger: testLogger)
        let restarted = try await AppServices.start(config: config, database: again, logger: testLogger, hasher: testHasher)
        #expect(restarted.tokens.activeKid == services.tokens.activeKid)
        #expect(restarted.tokens.jwks().compactMap { $0["kid"] }.sorted() == services.tokens.jwks().compactMap { $0["kid"] }.sorted())
        await again.close()
    }
}
