import Foundation
import HTTPTypes
import Server
import Storage
import Testing

@Suite("Backup and restore")
struct BackupTests {
    static let rootPassword = testRootPassword

    /// Everything each user can see, as canonical JSON text, for comparing two instances.
    static func answers(_ api: APIClient, users: [String]) async throws -> [String: String] {
        var out: [String: String] = [:]
        func record(_ key: String, _ reply: APIClient.Reply) throws {
            let object = try JSONSerialization.jsonObject(with: Data(buffer: reply.body))
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            out[key] = "\(reply.status.code) " + String(decoding: data, as: UTF8.self)
        }
        for email in users {
            let token = try await api.login(email, password: email == "root@example.com" ? rootPassword : "correct horse battery").access
            try record("\(email) me", try await api.send(.get, "/v1/me", token: token))
            let orgs = try await api.send(.get, "/v1/orgs?limit=100", token: token)
            try record("\(email) orgs", orgs)
            for org in (orgs.json["items"] as? [[String: Any]] ?? []) {
                let id = org["id"] as? String ?? ""
                for path in ["", "/members?limit=100", "/audit?limit=100", "/bindings?limit=100", "/invites?limit=100"] {
                    try record("\(email) \(path) \(id)", try await api.send(.get, "/v1/orgs/\(id)\(path)", token: token))
                }
            }
        }
        return out
    }

    /// Builds a small instance: three users, two orgs, every role, a time-bound grant, some history.
    @discardableResult
    static func populate(_ api: APIClient) async throws -> (userKey: String, accountKey: String) {
        let alice = try await api.signupAndLogin("alice@example.com")
        _ = try await api.signup("bob@example.com")
        _ = try await api.signup("carol@example.com")
        let acme = try await api.createOrg(alice.access, name: "Acme", description: "rockets")
        _ = try await api.send(.patch, "/v1/orgs/\(acme)", json: ["metadata": ["tier": "gold", "limits": ["seats": 12, "ratio": 0.5]]], token: alice.access)
        try await api.addMember(alice.access, org: acme, email: "bob@example.com", role: "admin")
        try await api.addMember(alice.access, org: acme, email: "carol@example.com", role: "viewer", expiresAt: "2999-12-31T23:59:59.123Z")
        let bob = try await api.login("bob@example.com")
        let globex = try await api.createOrg(bob.access, name: "Globex")
        try await api.addMember(bob.access, org: globex, email: "carol@example.com", role: "editor")
        let carol = try await api.login("carol@example.com")
        _ = try await api.send(.patch, "/v1/orgs/\(globex)/members/\(carol.userID)", json: ["role": "admin"], token: bob.access)
        let bound = try await api.send(.put, "/v1/orgs/\(acme)/bindings",
                                       json: ["subject": ["user_id": carol.userID], "resource": "org:\(acme)/project:p1", "role": "editor"], token: alice.access)
        #expect(bound.status == .created)
        #expect(try await api.send(.post, "/v1/orgs/\(acme)/invites", json: ["email": "dave@example.com", "role": "viewer"], token: alice.access).status == .created)
        let userKey = try await api.createKey(alice.access, name: "alice's", scopes: ["role:viewer"]).key
        let account = try #require(try await api.send(.post, "/v1/orgs/\(acme)/service-accounts", json: ["name": "ci", "role": "editor"], token: alice.access).json["id"] as? String)
        let accountKey = try #require(try await api.send(.post, "/v1/orgs/\(acme)/service-accounts/\(account)/keys", json: ["name": "ci"], token: alice.access).json["key"] as? String)
        return (userKey, accountKey)
    }

    static let users = ["root@example.com", "alice@example.com", "bob@example.com", "carol@example.com"]

    @Test("a backup restored on the other backend gives the same answers", arguments: [(Backend.sqlite, Backend.postgres), (.postgres, .sqlite)])
    func roundTrip(_ source: Backend, _ target: Backend) async throws {
        try await withApp(source, configure: rootSetup) { api, _ in
            let keys = try await Self.populate(api)
            let before = try await Self.answers(api, users: Self.users)
            // root: me, orgs; alice: me, orgs, 1 org × 5; bob and carol: me, orgs, 2 orgs × 5.
            #expect(before.count == 33)
            let root = try await api.login("root@example.com", password: Self.rootPassword)
            #expect(try await api.send(.get, "/v1/admin/backup", token: try await api.login("alice@example.com").access).status == .forbidden)
            let backup = try await api.send(.get, "/v1/admin/backup", token: root.access)
            #expect(backup.status == .ok)
            #expect(backup.headers[.cacheControl] == "no-store")
            // No secret in clear: no password anywhere, every user carries an argon2id hash.
            #expect(!backup.text.contains("correct horse battery"))
            #expect(!backup.text.contains(Self.rootPassword))
            let doc = backup.json
            let acme = try #require((doc["orgs"] as? [[String: Any]])?.first { $0["name"] as? String == "Acme" }?["id"] as? String)
            #expect(doc["version"] as? Int == 1)
            let users = try #require(doc["users"] as? [[String: Any]])
            #expect(users.count == 4)
            #expect(users.allSatisfy { ($0["password_hash"] as? String)?.hasPrefix("$argon2id$") == true })
            #expect((doc["orgs"] as? [Any])?.count == 2)
            #expect((doc["memberships"] as? [Any])?.count == 5)
            #expect((doc["invites"] as? [[String: Any]])?.first?["email"] as? String == "dave@example.com")
            #expect((doc["bindings"] as? [[String: Any]])?.first?["resource"] as? String != nil)

            try await withApp(target, configure: rootSetup) { api2, services2 in
                let targetRoot = try await api2.login("root@example.com", password: Self.rootPassword)
                let restored = try await api2.send(.post, "/v1/admin/restore", raw: backup.text, token: targetRoot.access)
                #expect(restored.status == .ok, "\(restored.text)")
                #expect(restored.json["orgs"] as? Int == 2)
                #expect(restored.revision != nil)
                // The target's own root account was replaced, and with it its session.
                #expect(try await api2.send(.get, "/v1/me", token: targetRoot.access).status == .unauthorized)

                let after = try await Self.answers(api2, users: Self.users)
                #expect(after.keys.sorted() == before.keys.sorted())
                for key in before.keys.sorted() {
                    #expect(after[key] == before[key], "\(key)")
                }
                // Decisions come out the same: Carol's binding survived the trip.
                let carol = try await api2.login("carol@example.com")
                #expect(try await api2.allowed(carol.access, "org:\(acme)/project:p1/doc:1", "editor"))
                #expect(try await api2.allowed(carol.access, "org:\(acme)/project:p2", "editor") == false)
                // API keys (stored as hashes) and service accounts keep working.
                #expect(try await api2.send(.get, "/v1/me", token: keys.userKey).status == .ok)
                #expect(try await api2.allowed(keys.userKey, "org:\(acme)", "owner") == false)
                #expect(try await api2.allowed(keys.accountKey, "org:\(acme)", "editor"))
                #expect(!backup.text.contains(String(keys.userKey.split(separator: "_", maxSplits: 2)[2])))
                // The restore is itself in the platform audit log.
                let newRoot = try await api2.login("root@example.com", password: Self.rootPassword)
                let platform = try await api2.items("/v1/audit?limit=2", token: newRoot.access)
                #expect(platform.map { $0["action"] as? String } == ["backup.restored", "backup.exported"])

                // A second restore finds a non-empty instance and changes nothing.
                let again = try await api2.send(.post, "/v1/admin/restore", raw: backup.text, token: newRoot.access)
                #expect(again.status == .conflict)
                let count = try await services2.database.queryFirst("SELECT COUNT(*) AS n FROM memberships")?.int("n")
                #expect(count == 5)
            }
        }
    }

    @Test("clients come back with their settings; clients of a backup from before RS256 keep ES256", arguments: Backend.allCases)
    func clientsFromOlderBackups(_ backend: Backend) async throws {
        let backup = try await withApp(backend, configure: rootSetup) { api, _ in
            let root = try await api.login("root@example.com", password: Self.rootPassword)
            let created = try await api.send(.post, "/v1/clients", json: [
                "name": "Wiki", "redirect_uris": ["https://wiki.example.com/cb"], "access_token_lifetime": 600,
                "claim_template": ["constants": ["tenant": "acme"]],
            ], token: root.access)
            #expect(created.status == .created, "\(created.text)")
            return try await api.send(.get, "/v1/admin/backup", token: root.access).text
        }
        var doc = try #require(try JSONSerialization.jsonObject(with: Data(backup.utf8)) as? [String: Any])
        var clients = try #require(doc["oauth_clients"] as? [[String: Any]])
        #expect(clients.first?["id_token_signed_response_alg"] as? String == "RS256")
        // An older release wrote no token settings at all.
        for key in ["id_token_signed_response_alg", "access_token_lifetime", "refresh_token_lifetime", "claim_template", "service_account_id"] {
            clients[0][key] = nil
        }
        doc["oauth_clients"] = clients
        doc["oauth_consents"] = nil
        let older = String(decoding: try JSONSerialization.data(withJSONObject: doc), as: UTF8.self)
        for (text, alg, lifetime) in [(backup, "RS256", 600), (older, "ES256", nil)] as [(String, String, Int?)] {
            try await withApp(backend, configure: rootSetup) { api, _ in
                let root = try await api.login("root@example.com", password: Self.rootPassword)
                let restored = try await api.send(.post, "/v1/admin/restore", raw: text, token: root.access)
                #expect(restored.status == .ok, "\(restored.text)")
                // The restore brought the backup's accounts: sign in again.
                let again = try await api.login("root@example.com", password: Self.rootPassword)
                let listed = try await api.send(.get, "/v1/clients", token: again.access)
                #expect(listed.status == .ok, "\(listed.text)")
                let client = try #require((listed.json["items"] as? [[String: Any]])?.first)
                #expect(client["id_token_signed_response_alg"] as? String == alg)
                #expect(client["access_token_lifetime"] as? Int == lifetime)
            }
        }
    }

    @Test("bad restores are refused and change nothing", arguments: Backend.allCases)
    func refusals(_ backend: Backend) async throws {
        let source = try await withApp(.sqlite, configure: rootSetup) { api, _ in
            try await Self.populate(api)
            let root = try await api.login("root@example.com", password: Self.rootPassword)
            return try await api.send(.get, "/v1/admin/backup", token: root.access).text
        }
        let good = try #require(try JSONSerialization.jsonObject(with: Data(source.utf8)) as? [String: Any])

        func mutated(_ change: (inout [String: Any]) -> Void) throws -> String {
            var doc = good
            change(&doc)
            return String(decoding: try JSONSerialization.data(withJSONObject: doc), as: UTF8.self)
        }
        let bad: [(String, String)] = [
            ("garbage", "{not json"),
            ("empty object", "{}"),
            ("version", try mutated { $0["version"] = 99 }),
            ("invites", try mutated { $0["invites"] = [["id": "x"]] }),
            ("invite to a missing org", try mutated { doc in
                var invites = doc["invites"] as! [[String: Any]]
                invites[0]["org_id"] = UUID().uuidString.lowercased()
                doc["invites"] = invites
            }),
            ("membership to a missing user", try mutated { doc in
                var ms = doc["memberships"] as! [[String: Any]]
                ms[0]["user_id"] = UUID().uuidString.lowercased()
                doc["memberships"] = ms
            }),
            ("org without an owner", try mutated { doc in
                doc["memberships"] = (doc["memberships"] as! [[String: Any]]).filter { $0["role"] as? String != "owner" }
            }),
            ("bad role", try mutated { doc in
                var ms = doc["memberships"] as! [[String: Any]]
                ms[0]["role"] = "god"
                doc["memberships"] = ms
            }),
            ("plain password", try mutated { doc in
                var us = doc["users"] as! [[String: Any]]
                us[0]["password_hash"] = "hunter2"
                doc["users"] = us
            }),
            ("duplicate e-mail", try mutated { doc in
                var us = doc["users"] as! [[String: Any]]
                us[1]["email"] = us[0]["email"]
                doc["users"] = us
            }),
            ("membership listed twice", try mutated { doc in
                // An owner row followed by a viewer row for the same pair must not slip through.
                var ms = doc["memberships"] as! [[String: Any]]
                var copy = ms.first { $0["role"] as? String == "owner" }!
                copy["role"] = "viewer"
                ms.append(copy)
                doc["memberships"] = ms
            }),
            ("binding outside its org", try mutated { doc in
                var bs = doc["bindings"] as! [[String: Any]]
                bs[0]["resource"] = "org:\(UUID().uuidString.lowercased())/project:p1"
                doc["bindings"] = bs
            }),
            ("no root administrator", try mutated { doc in
                doc["users"] = (doc["users"] as! [[String: Any]]).map { u in var u = u; u["is_root"] = false; return u }
            }),
            ("bad id", try mutated { doc in
                var os = doc["orgs"] as! [[String: Any]]
                os[0]["id"] = "1; DROP TABLE orgs"
                doc["orgs"] = os
            }),
        ]
        try await withApp(backend, configure: rootSetup) { api, services in
            let root = try await api.login("root@example.com", password: Self.rootPassword)
            for (name, body) in bad {
                let reply = try await api.send(.post, "/v1/admin/restore", raw: body, token: root.access)
                #expect(reply.status == .badRequest, "\(name): \(reply.text)")
                #expect(reply.code == "invalid_request", "\(name)")
            }
            #expect(try await api.send(.post, "/v1/admin/restore", raw: source, token: root.access, contentType: "text/plain").status == .unsupportedMediaType)
            _ = try await api.signup("someone@example.com")
            let someone = try await api.login("someone@example.com")
            #expect(try await api.send(.post, "/v1/admin/restore", raw: source, token: someone.access).status == .forbidden)
            #expect(try await api.send(.post, "/v1/admin/restore", raw: source).status == .unauthorized)
            // Still the instance it was: root's session works, no orgs, no restored users.
            #expect(try await api.send(.get, "/v1/me", token: root.access).status == .ok)
            let users = try await services.database.queryFirst("SELECT COUNT(*) AS n FROM users")?.int("n")
            #expect(users == 2)
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM orgs")?.int("n") == 0)
            // And with a non-root user present, even a good backup is refused: not empty.
            let full = try await api.send(.post, "/v1/admin/restore", raw: source, token: root.access)
            #expect(full.status == .conflict)
        }
    }

    /// A backup as a JSON object, with what a restore itself changes taken out: the document's
    /// own time and the audit events of the export and the restore.
    static func comparable(_ text: String) throws -> [String: String] {
        var doc = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        doc["created_at"] = nil
        let audit = (doc["audit_events"] as? [[String: Any]] ?? []).filter {
            !["backup.exported", "backup.restored"].contains($0["action"] as? String ?? "")
        }
        doc["audit_events"] = audit
        var out: [String: String] = [:]
        for (key, value) in doc {
            let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
            out[key] = String(decoding: data, as: UTF8.self)
        }
        return out
    }

    @Test("whatever the API accepted, its backup restores to the same state", arguments: [(Backend.sqlite, Backend.postgres), (.postgres, .sqlite)])
    func hostileRoundTrip(_ source: Backend, _ target: Backend) async throws {
        // Names at their limits in scalars, with emoji sequences, bidi overrides and combining marks.
        let longName = String(repeating: "e\u{301}", count: 100)
        let oddName = "Zo\u{EB} \u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467} \u{202E}evil\u{202C} <script>\\\"'"
        let longLocal = String(repeating: "\u{FC}", count: 64)
        let longAddress = longLocal + "@" + String(repeating: "d", count: 254 - 65 - 4) + ".com"
        let farFuture = "9999-12-31T23:59:59.999Z"
        let exported = try await withApp(source, configure: rootSetup) { api, services in
            let root = try await api.login("root@example.com", password: Self.rootPassword)
            let alice = try await api.signupAndLogin("alice@example.com")
            // Addresses: decomposed and upper case in, one account each; the look-alike gets none.
            for (address, name) in [(nfdAddress, oddName), ("ZO\u{CB}@EXAMPLE.COM", longName), (longAddress, "")] {
                let reply = try await api.send(.post, "/v1/users", json: ["email": address, "password": "correct horse battery", "name": name])
                #expect(reply.status == .created, "\(reply.text)")
            }
            #expect(try await api.send(.post, "/v1/users", json: ["email": nfcAddress, "password": "correct horse battery"]).status == .conflict)
            let jose = try await api.login(nfcAddress)
            _ = try await api.send(.patch, "/v1/me", json: ["name": oddName], token: alice.access)

            let org = try await api.createOrg(alice.access, name: String(repeating: "\u{1F680}", count: 200), description: String(repeating: "\u{2028}\n\t\u{10FFFF}", count: 256))
            // Metadata: odd keys, numbers at the edges of a double, escapes, deep nesting, near 16 KiB.
            var deep: Any = ["end": true]
            for _ in 0..<12 { deep = ["d": deep] }
            let metadata: [String: Any] = [
                "": "", "\u{1F600}": "\u{FEFF}\u{2028}\u{2029}", "a\"b\\c": "</script>", "max": 1.7976931348623157e308, "tiny": Double.leastNonzeroMagnitude,
                "neg_zero": -0.0, "big": 9007199254740993, "frac": 0.1, "deep": deep, "list": [NSNull(), true, false, [], [:]],
                "pad": String(repeating: "\u{E9}", count: 3000),
            ]
            let patched = try await api.send(.patch, "/v1/orgs/\(org)", json: ["metadata": metadata], token: alice.access)
            #expect(patched.status == .ok, "\(patched.text)")
            // Raw JSON the client library would not write: escaped surrogate pairs and slashes.
            let second = try await api.send(.post, "/v1/orgs", raw: #"{"name": "\ud83d\ude80 \/ second", "metadata": {"k\u00e9y": "\ud834\udd1e", "e": 1E+2, "x": -1.5e-7}}"#, token: alice.access)
            #expect(second.status == .created, "\(second.text)")

            // Memberships and bindings that end at the last accepted moment.
            let zoe = try await api.login("zo\u{EB}@example.com")
            for (user, expiry) in [(jose.userID, farFuture as Any), (zoe.userID, NSNull() as Any)] {
                let added = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["user_id": user, "role": "editor", "expires_at": expiry], token: alice.access)
                #expect(added.status == .created, "\(added.text)")
            }
            let bound = try await api.send(.put, "/v1/orgs/\(org)/bindings", json: [
                "subject": ["user_id": jose.userID], "resource": "org:\(org)/project:p1", "role": "admin", "expires_at": farFuture,
            ], token: alice.access)
            #expect(bound.status == .created, "\(bound.text)")
            // An object string with unicode, if the API takes it at all.
            _ = try await api.send(.put, "/v1/orgs/\(org)/bindings", json: [
                "subject": ["user_id": zoe.userID], "resource": "org:\(org)/proj\u{E9}ct:\u{1F680}/doc:x\u{301}", "role": "viewer",
            ], token: alice.access)
            // Invites in either form, a dormant one, and a platform invite with a unicode address.
            #expect(try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": "M\u{DC}LLER@example.com", "role": "viewer"], token: alice.access).status == .created)
            #expect(try await api.send(.post, "/v1/platform-invites", json: [
                "email": "\u{5F20}\u{4F1F}@\u{4F8B}\u{5B50}.\u{4E2D}\u{56FD}", "org_invites": [["org_id": org, "role": "editor"]],
            ], token: root.access).status == .created)
            // Keys and service accounts with names at the limit.
            _ = try await api.createKey(alice.access, name: longName, scopes: ["org:\(org)"])
            let account = try #require(try await api.send(.post, "/v1/orgs/\(org)/service-accounts", json: ["name": oddName, "role": "viewer"], token: alice.access).json["id"] as? String)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/service-accounts/\(account)/keys", json: ["name": String(repeating: "\u{1F511}", count: 200), "expires_in": 315_360_000], token: alice.access).status == .created)
            // OpenID clients: a confidential platform client and a public org client.
            let platform = try await api.send(.post, "/v1/clients", json: [
                "name": oddName, "redirect_uris": ["https://app.example.com/cb?x=\u{E9}", "http://127.0.0.1:8000/cb"], "scopes": ["openid", "orgs"],
            ], token: root.access)
            #expect(platform.status == .created, "\(platform.text)")
            #expect(try await api.send(.post, "/v1/clients", json: [
                "name": "spa", "type": "public", "org_id": org, "redirect_uris": ["https://spa.example.com/"], "first_party": true,
            ], token: root.access).status == .created)
            _ = services
            let backup = try await api.send(.get, "/v1/admin/backup", token: root.access)
            #expect(backup.status == .ok)
            return "\(platform.json["client_id"] as? String ?? "")\n\(platform.json["client_secret"] as? String ?? "")\n" + backup.text
        }
        let lines = exported.split(separator: "\n", maxSplits: 2).map(String.init)
        let (clientID, clientSecret, backupText) = (lines[0], lines[1], lines[2])
        let before = try Self.comparable(backupText)
        try await withApp(target, configure: rootSetup) { api, services in
            let root = try await api.login("root@example.com", password: Self.rootPassword)
            let restored = try await api.send(.post, "/v1/admin/restore", raw: backupText, token: root.access)
            #expect(restored.status == .ok, "\(restored.text)")
            let newRoot = try await api.login("root@example.com", password: Self.rootPassword)
            let again = try await api.send(.get, "/v1/admin/backup", token: newRoot.access)
            #expect(again.status == .ok)
            let after = try Self.comparable(again.text)
            #expect(after.keys.sorted() == before.keys.sorted())
            for key in before.keys.sorted() {
                #expect(after[key] == before[key], "\(key)")
            }
            // The one account answers to either form after the trip too.
            _ = try await api.login(nfdAddress)
            _ = try await api.login(nfcAddress)
            // The confidential client's secret still works, and only it.
            #expect(try await services.clients.authenticate(clientID: try #require(UUID(uuidString: clientID)), secret: clientSecret) != nil)
            #expect(try await services.clients.authenticate(clientID: try #require(UUID(uuidString: clientID)), secret: clientSecret + "x") == nil)
        }
    }

    @Test("a restore checks every address with the sign-up rule: refuses bad ones naming the record, stores others in the stored form", arguments: Backend.allCases)
    func restoreChecksAddresses(_ backend: Backend) async throws {
        let source = try await withApp(.sqlite, configure: rootSetup) { api, _ in
            try await Self.populate(api)
            let root = try await api.login("root@example.com", password: Self.rootPassword)
            _ = try await api.send(.post, "/v1/platform-invites", json: ["email": "erin@example.com"], token: root.access)
            return try await api.send(.get, "/v1/admin/backup", token: root.access).text
        }
        let good = try #require(try JSONSerialization.jsonObject(with: Data(source.utf8)) as? [String: Any])
        /// The backup with `emails[i]` as the address of row `i` of `section`; the id of the last one changed.
        func mutated(_ section: String, _ emails: [Int: String], _ doc: [String: Any]? = nil) throws -> (id: String, body: String, doc: [String: Any]) {
            var doc = doc ?? good
            var rows = try #require(doc[section] as? [[String: Any]])
            for (i, email) in emails { rows[i]["email"] = email }
            doc[section] = rows
            let id = try #require(rows[emails.keys.max()!]["id"] as? String)
            return (id, String(decoding: try JSONSerialization.data(withJSONObject: doc), as: UTF8.self), doc)
        }
        let smuggled = "dave@example.com\r\nRCPT TO:<victim@example.org>"
        // users: root, alice, bob, carol (by creation).
        let refused = [
            try mutated("invites", [0: smuggled]), try mutated("platform_invites", [0: smuggled]),
            try mutated("invites", [0: "not-an-address"]), try mutated("users", [3: "a@b@\u{301}c"]),
            // Bob's address, once folded, is Alice's: two accounts cannot be one address.
            try mutated("users", [2: "ALICE@EXAMPLE.COM"]),
        ].map { ($0.id, $0.body) }
        // Valid addresses in another form (upper case, decomposed: a backup from before NFC).
        let users = try mutated("users", [3: "C\u{327}AROL@EXAMPLE.COM"])
        let invites = try mutated("invites", [0: "DAVE@EXAMPLE.COM"], users.doc)
        let otherForms = try mutated("platform_invites", [0: "E\u{301}RIN@example.com"], invites.doc).body
        try await withApp(backend, configure: rootSetup) { api, services in
            let root = try await api.login("root@example.com", password: Self.rootPassword)
            for (id, body) in refused {
                let reply = try await api.send(.post, "/v1/admin/restore", raw: body, token: root.access)
                #expect(reply.status == .badRequest, "\(reply.text)")
                #expect(reply.code == "invalid_request")
                #expect((reply.json["detail"] as? String)?.contains(id) == true, "\(reply.text)")
            }
            // Nothing restored, nothing queued for the SMTP envelope.
            #expect(try await api.send(.get, "/v1/me", token: root.access).status == .ok)
            for table in ["orgs", "invites", "platform_invites", "outbox"] {
                #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM \(table)")?.int("n") == 0, "\(table)")
            }

            // Addresses in another form restore in the stored form, as the start-up migration
            // would have left them.
            let restored = try await api.send(.post, "/v1/admin/restore", raw: otherForms, token: root.access)
            #expect(restored.status == .ok, "\(restored.text)")
            let db = services.database
            #expect(try await db.query("SELECT email FROM users WHERE email LIKE '%arol@example.com'").map { scalars(try $0.string("email")) } == [scalars("\u{E7}arol@example.com")])
            #expect(try await db.query("SELECT email FROM invites").map { try $0.string("email") } == ["dave@example.com"])
            #expect(try await db.query("SELECT email FROM platform_invites").map { scalars(try $0.string("email")) } == [scalars("\u{E9}rin@example.com")])
            _ = try await api.login("c\u{327}arol@example.com")
        }
    }
}
