import Foundation
import HTTPTypes
import Identity
import Server
import Storage
import Testing

/// The same address in its two Unicode forms. Swift's `==` calls them equal (canonical
/// equivalence); the database's unique index compares bytes. Every check below compares
/// scalars, never with `==` on strings.
let nfcAddress = "jos\u{E9}@example.com"
let nfdAddress = "jose\u{301}@example.com"

/// The Unicode scalars of a string, for comparisons that `==` on `String` would blur.
func scalars(_ text: String?) -> [UInt32] {
    (text ?? "").unicodeScalars.map(\.value)
}

@Suite("E-mail addresses: one account per address under NFC and case folding")
struct EmailNormalisationTests {
    @Test("the canonical form is NFC, lowercased, and stable", arguments: [
        (nfdAddress, nfcAddress), ("JOSE\u{301}@EXAMPLE.COM", nfcAddress), (" Jos\u{C9}@Example.com ", nfcAddress),
        // Lowercasing can leave a string that is not NFC: J + caron has no precomposed capital,
        // but its lowercase composes to U+01F0.
        ("J\u{30C}@example.com", "\u{1F0}@example.com"),
        // Compatibility characters with a canonical decomposition: Kelvin sign, Angstrom sign.
        ("\u{212A}@example.com", "k@example.com"), ("\u{212B}@example.com", "\u{E5}@example.com"),
    ])
    func canonical(_ input: String, _ expected: String) throws {
        let canonical = try #require(Email.canonical(input))
        #expect(scalars(canonical) == scalars(expected))
        #expect(scalars(Email.canonical(canonical)) == scalars(canonical), "canonical is idempotent")
    }

    @Test("look-alike tricks are not addresses", arguments: [
        "a@b\u{0}c", "a\r\n@b.c", "a@b.c\r\nRCPT TO:<x@y.z>", "a\u{2028}@b.c", "a\u{85}@b.c", "a\u{A0}b@c.d",
        // A combining mark after "@" makes one Character of "@́": two "@" scalars all the same.
        "x@y@\u{301}z",
        // Length is counted in scalars: one Character with a thousand combining marks is not short.
        "a" + String(repeating: "\u{301}", count: 1000) + "@b.c",
    ])
    func rejects(_ input: String) {
        #expect(Email.canonical(input) == nil)
    }

    @Test("signup in either form is one account; login works with either; NFC is stored and shown", arguments: Backend.allCases)
    func oneAccount(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let created = try await api.send(.post, "/v1/users", json: ["email": nfdAddress, "password": "correct horse battery", "name": "José"])
            #expect(created.status == .created, "\(created.text)")
            #expect(scalars(created.json["email"] as? String) == scalars(nfcAddress))
            for lookAlike in [nfcAddress, nfdAddress, "JOS\u{C9}@EXAMPLE.COM", "JOSE\u{301}@example.com"] {
                let again = try await api.send(.post, "/v1/users", json: ["email": lookAlike, "password": "correct horse battery"])
                #expect(again.status == .conflict, "\(scalars(lookAlike)): \(again.text)")
                #expect(again.code == "email_taken")
            }
            let stored = try await services.database.query("SELECT email FROM users").map { try $0.string("email") }
            #expect(stored.map(scalars) == [scalars(nfcAddress)])
            for form in [nfcAddress, nfdAddress] {
                let tokens = try await api.login(form)
                let me = try await api.send(.get, "/v1/me", token: tokens.access)
                #expect(scalars(me.json["email"] as? String) == scalars(nfcAddress))
            }
            // The reset mail goes to the stored form whichever form was typed.
            #expect(try await api.send(.post, "/v1/auth/password-reset", json: ["email": nfdAddress]).status == .accepted)
            try await services.auth.drainAccountMail()
            let recipients = try await services.database.query("SELECT recipient FROM outbox WHERE template = 'password_reset'").map { try $0.string("recipient") }
            #expect(recipients.map(scalars) == [scalars(nfcAddress)])
        }
    }

    @Test("the per-account login limit counts both forms as one account", arguments: Backend.allCases)
    func loginThrottle(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.limits.accountFailuresPerHour = 3 }) { api, _ in
            _ = try await api.signup(nfcAddress)
            for form in [nfcAddress, nfdAddress, "JOSE\u{301}@EXAMPLE.COM"] {
                let r = try await api.send(.post, "/v1/auth/login", json: ["email": form, "password": "wrong password"])
                #expect(r.status == .unauthorized)
            }
            for form in [nfcAddress, nfdAddress] {
                let r = try await api.send(.post, "/v1/auth/login", json: ["email": form, "password": "correct horse battery"])
                #expect(r.status == .tooManyRequests, "\(scalars(form))")
            }
        }
    }

    @Test("invites and members by address: either form reaches the one account", arguments: Backend.allCases)
    func invitesAndMembers(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let jose = try await api.signupVerified(nfcAddress, services)
            let org = try await api.createOrg(alice.access)
            // An invite written with the decomposed form is the NFC account's invite.
            let invite = try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": nfdAddress, "role": "viewer"], token: alice.access)
            #expect(invite.status == .created, "\(invite.text)")
            #expect(scalars(invite.json["email"] as? String) == scalars(nfcAddress))
            #expect(invite.json["dormant"] as? Bool == false)
            // One pending invite per (org, address), whichever form the second one uses.
            #expect(try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": nfcAddress, "role": "viewer"], token: alice.access).status == .conflict)
            let mine = try await api.items("/v1/me/invites", token: jose.access)
            #expect(mine.count == 1)
            let id = try #require(invite.json["id"] as? String)
            #expect(try await api.send(.post, "/v1/invites/\(id)/accept", token: jose.access).status == .ok)
            let members = try await api.items("/v1/orgs/\(org)/members", token: alice.access)
            #expect(members.first { $0["user_id"] as? String == jose.userID }.map { scalars($0["email"] as? String) } == scalars(nfcAddress))

            // Adding a member by the decomposed form finds the NFC account.
            let other = try await api.createOrg(alice.access, name: "Other")
            let added = try await api.send(.post, "/v1/orgs/\(other)/members", json: ["email": nfdAddress, "role": "viewer"], token: alice.access)
            #expect(added.status == .created, "\(added.text)")
            #expect(added.json["user_id"] as? String == jose.userID)
            let rows = try await services.database.query("SELECT email FROM invites").map { try $0.string("email") }
            #expect(rows.map(scalars) == [scalars(nfcAddress)])
        }
    }

    @Test("platform invites: either form is the one address", arguments: Backend.allCases)
    func platformInvites(_ backend: Backend) async throws {
        try await withApp(backend, configure: { c in rootSetup(&c); c.signup = .inviteOnly }) { api, services in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let created = try await api.send(.post, "/v1/platform-invites", json: ["email": nfcAddress], token: root.access)
            #expect(created.status == .created, "\(created.text)")
            let token = try await services.mailedToken(to: nfcAddress, template: "platform_invite")
            // The invitee types the decomposed form: still the invited address.
            let signup = try await api.send(.post, "/v1/users", json: ["email": nfdAddress, "password": "correct horse battery", "invite_token": token])
            #expect(signup.status == .created, "\(signup.text)")
            #expect(scalars(signup.json["email"] as? String) == scalars(nfcAddress))
            // Now the address has an account, in either form.
            let again = try await api.send(.post, "/v1/platform-invites", json: ["email": nfdAddress], token: root.access)
            #expect(again.status == .conflict, "\(again.text)")
            let rows = try await services.database.query("SELECT email FROM platform_invites").map { try $0.string("email") }
            #expect(rows.map(scalars) == [scalars(nfcAddress)])
        }
    }

    @Test("start-up rewrites stored addresses to NFC", arguments: Backend.allCases)
    func startupMigration(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, services in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let alice = try await api.signupAndLogin("alice@example.com")
            _ = try await api.signup(nfcAddress)
            let org = try await api.createOrg(alice.access)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": "zo\u{EB}@example.com", "role": "viewer"], token: alice.access).status == .created)
            #expect(try await api.send(.post, "/v1/platform-invites", json: ["email": "zo\u{EB}@example.com"], token: root.access).status == .created)
            // What an older version may have stored: the decomposed forms, written by SQL.
            let db = services.database
            try await db.execute("UPDATE users SET email = $1 WHERE email = $2", nfdAddress, nfcAddress)
            try await db.execute("UPDATE invites SET email = $1", "zoe\u{308}@example.com")
            try await db.execute("UPDATE platform_invites SET email = $1", "zoe\u{308}@example.com")
            try await Self.forgetEmailMigration(db)

            let restarted = try await AppServices.start(config: services.config, database: db, logger: testLogger, hasher: testHasher)
            #expect(try await db.query("SELECT email FROM users WHERE email <> 'alice@example.com' AND email <> 'root@example.com'").map { scalars(try $0.string("email")) } == [scalars(nfcAddress)])
            #expect(try await db.query("SELECT email FROM invites").map { scalars(try $0.string("email")) } == [scalars("zo\u{EB}@example.com")])
            #expect(try await db.query("SELECT email FROM platform_invites").map { scalars(try $0.string("email")) } == [scalars("zo\u{EB}@example.com")])
            try await buildApplication(services: restarted, logger: testLogger).test(.router) { client in
                let api2 = APIClient(client: client)
                _ = try await api2.login(nfdAddress)
                _ = try await api2.login(nfcAddress)
            }
            // Recorded: a second start does not run it again (and finds nothing to do anyway).
            _ = try await AppServices.start(config: services.config, database: db, logger: testLogger, hasher: testHasher)
        }
    }

    @Test("start-up refuses, changing nothing, when two accounts are one address under the rule", arguments: Backend.allCases)
    func startupCollision(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let first = try await api.signup(nfcAddress)
            let second = try await api.signup("other@example.com")
            let db = services.database
            // Two accounts an older version let through: the same address in two forms.
            try await db.execute("UPDATE users SET email = $1 WHERE email = 'other@example.com'", nfdAddress)
            try await Self.forgetEmailMigration(db)
            let before = try await db.query("SELECT version FROM schema_migrations ORDER BY version").map { try $0.int("version") }
            do {
                _ = try await AppServices.start(config: services.config, database: db, logger: testLogger, hasher: testHasher)
                Issue.record("start-up must refuse two accounts with one address")
            } catch let error as StorageError {
                guard case .migrationRefused(let message) = error else { Issue.record("unexpected \(error)"); return }
                #expect(!message.contains("\n"), "one line")
                #expect(message.contains(first) && message.contains(second), "\(message)")
                // Both addresses, told apart: they look the same when printed as they are.
                #expect(message.contains("jos\\u{E9}@example.com") && message.contains("jose\\u{301}@example.com"), "\(message)")
            }
            // Nothing changed: both rows as they were, the migration still pending.
            let rows = try await db.query("SELECT email FROM users ORDER BY email").map { scalars(try $0.string("email")) }
            #expect(Set(rows) == [scalars(nfcAddress), scalars(nfdAddress)])
            #expect(try await db.query("SELECT version FROM schema_migrations ORDER BY version").map { try $0.int("version") } == before)
        }
    }

    /// Makes the database look as if the e-mail migration had never run.
    static func forgetEmailMigration(_ db: any SQLDatabase) async throws {
        // Later migrations are undone too: an older version had none of them.
        try await db.execute("DELETE FROM schema_migrations WHERE version >= 6")
        try await db.execute("ALTER TABLE api_keys DROP COLUMN before_proof")
        for column in ["client_id", "scope"] { try await db.execute("ALTER TABLE sessions DROP COLUMN \(column)") }
        for table in ["sign_in_codes", "upstream_flows", "user_identities", "identity_providers", "group_members", "overrides", "groups", "webhook_deliveries", "webhook_events", "webhook_endpoints", "oauth_sessions", "oauth_consents", "oauth_codes", "oauth_clients"] {
            try await db.execute("DROP TABLE \(table)")
        }
    }
}
