import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import Server
import Storage
import Testing
import Wire

extension APIClient {
    /// Creates a user API key with the session token; returns (key id, secret).
    func createKey(_ token: String, name: String = "ci", scopes: [String]? = nil, expiresIn: Int? = nil) async throws -> (id: String, key: String) {
        var body: [String: Any] = ["name": name]
        if let scopes { body["scopes"] = scopes }
        if let expiresIn { body["expires_in"] = expiresIn }
        let reply = try await send(.post, "/v1/keys", json: body, token: token)
        #expect(reply.status == .created, "create key: \(reply.text)")
        return (try #require(reply.json["id"] as? String), try #require(reply.json["key"] as? String))
    }
}

@Suite("API keys and service accounts")
struct KeyTests {
    @Test("key lifecycle: shown once, listed without the secret, revoked at once", arguments: Backend.allCases)
    func lifecycle(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let created = try await api.send(.post, "/v1/keys", json: ["name": "  deploy bot ", "expires_in": 3600], token: alice.access)
            #expect(created.status == .created)
            #expect(created.revision != nil)
            let key = try #require(created.json["key"] as? String)
            let id = try #require(created.json["id"] as? String)
            let prefix = try #require(created.json["prefix"] as? String)
            #expect(created.json["name"] as? String == "deploy bot")
            #expect(created.json["scopes"] as? [String] == [])
            #expect(created.json["last_used_at"] is NSNull)
            let parts = key.split(separator: "_", maxSplits: 2).map(String.init)
            #expect(parts.count == 3 && parts[0] == "pcl" && parts[1] == prefix && parts[2].count >= 43)

            // The key authenticates; listing and reading never show the secret again.
            let me = try await api.send(.get, "/v1/me", token: key)
            #expect(me.status == .ok && me.json["id"] as? String == alice.userID)
            let list = try await api.send(.get, "/v1/keys", token: alice.access)
            #expect(list.json["total"] as? Int == 1)
            #expect(!list.text.contains(parts[2]))
            let one = try await api.send(.get, "/v1/keys/\(id)", token: alice.access)
            #expect(one.status == .ok && one.json["key"] == nil && !one.text.contains(parts[2]))

            // Stored only as SHA-256 of the secret: read the row itself.
            let row = try #require(try await services.database.queryFirst("SELECT * FROM api_keys WHERE id = $1", UUID(uuidString: id)!))
            let hash = SHA256.hash(data: Data(parts[2].utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(try row.string("secret_hash") == hash)
            for (column, value) in row.values {
                if case .text(let text) = value { #expect(!text.contains(parts[2]), "column \(column) holds the secret") }
            }

            // Wrong secret with the right prefix (the constant-time comparison path): 401.
            let forged = "pcl_\(prefix)_" + String(parts[2].reversed())
            #expect(try await api.send(.get, "/v1/me", token: forged).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/me", token: "pcl_zzzzzzzzzzzz_" + parts[2]).status == .unauthorized)

            let revoked = try await api.send(.delete, "/v1/keys/\(id)", token: alice.access)
            #expect(revoked.status == .noContent)
            #expect(try await api.send(.get, "/v1/me", token: key).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/keys/\(id)", token: alice.access).status == .notFound)
            #expect(try await api.send(.delete, "/v1/keys/\(id)", token: alice.access).status == .notFound)
            // Another user's key is not yours to see or revoke.
            let bob = try await api.signupAndLogin("bob@example.com")
            let bobs = try await api.createKey(bob.access)
            #expect(try await api.send(.get, "/v1/keys/\(bobs.id)", token: alice.access).status == .notFound)
            #expect(try await api.send(.delete, "/v1/keys/\(bobs.id)", token: alice.access).status == .notFound)
            let actions = try await services.database.query("SELECT action FROM audit_events WHERE target = $1 ORDER BY seq", "key:\(id)")
            #expect(try actions.map { try $0.string("action") } == ["key.created", "key.revoked"])
        }
    }

    @Test("bad key requests are 400 and create nothing", arguments: Backend.allCases)
    func badInput(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            for body: [String: Any] in [
                ["name": ""], ["name": String(repeating: "k", count: 201)], ["name": "k", "expires_in": 10], ["name": "k", "expires_in": 400_000_000],
                ["name": "k", "scopes": ["org:nope"]], ["name": "k", "scopes": ["role:god"]], ["name": "k", "scopes": ["admin"]], ["name": "k", "scopes": "org:x"],
            ] {
                let reply = try await api.send(.post, "/v1/keys", json: body, token: alice.access)
                #expect(reply.status == .badRequest, "\(body): \(reply.text)")
            }
            #expect(try await api.send(.get, "/v1/keys", token: alice.access).json["total"] as? Int == 0)
        }
    }

    @Test("a key cannot mint keys or touch credentials and sessions", arguments: Backend.allCases)
    func keyLimits(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let key = try await api.createKey(alice.access).key
            #expect(try await api.send(.post, "/v1/keys", json: ["name": "child"], token: key).status == .forbidden)
            #expect(try await api.send(.post, "/v1/me/password", json: ["current_password": "correct horse battery", "new_password": "another long password"], token: key).status == .forbidden)
            #expect(try await api.send(.get, "/v1/me/sessions", token: key).status == .forbidden)
            #expect(try await api.send(.post, "/v1/auth/logout", json: ["all": true], token: key).status == .forbidden)
            // Still works for what it may do, and the session is untouched.
            #expect(try await api.send(.get, "/v1/keys", token: key).status == .ok)
            #expect(try await api.send(.get, "/v1/me", token: alice.access).status == .ok)
            #expect(try await api.login("alice@example.com").access.isEmpty == false)
        }
    }

    @Test("scopes narrow; the owner's current role caps the key with no clean-up", arguments: Backend.allCases)
    func scopes(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let bob = try await api.signupAndLogin("bob@example.com")
            let a = try await api.createOrg(alice.access, name: "A")
            let b = try await api.createOrg(alice.access, name: "B")
            try await api.addMember(alice.access, org: a, email: "bob@example.com", role: "admin")
            try await api.addMember(alice.access, org: b, email: "bob@example.com", role: "admin")

            let onlyA = try await api.createKey(bob.access, scopes: ["org:\(a.uppercased())"]).key
            #expect(try await api.allowed(onlyA, "org:\(a)", "admin"))
            #expect(try await api.allowed(onlyA, "org:\(b)", "viewer") == false)
            #expect(try await api.send(.get, "/v1/orgs/\(b)", token: onlyA).status == .notFound)
            #expect(try await api.items("/v1/orgs", token: onlyA).compactMap { $0["id"] as? String } == [a])
            #expect(try await api.send(.post, "/v1/orgs", json: ["name": "New"], token: onlyA).status == .forbidden)

            let readOnly = try await api.createKey(bob.access, scopes: ["role:viewer"]).key
            #expect(try await api.allowed(readOnly, "org:\(a)", "org.read"))
            let capped = try await api.authorize(readOnly, "org:\(a)", "org.update")
            #expect(capped.json["allowed"] as? Bool == false && capped.json["role"] as? String == "viewer")
            #expect(try await api.send(.patch, "/v1/orgs/\(a)", json: ["name": "Mine"], token: readOnly).status == .forbidden)
            #expect(try await api.send(.patch, "/v1/orgs/\(a)", json: ["name": "Bob's"], token: bob.access).status == .ok)

            // Asking about others needs authz:check (or root).
            #expect(try await api.authorize(readOnly, "org:\(a)", "viewer", subject: ["user_id": alice.userID]).status == .forbidden)
            let checker = try await api.createKey(bob.access, scopes: ["authz:check"]).key
            #expect(try await api.allowed(checker, "org:\(a)", "owner", subject: ["user_id": alice.userID]))
            #expect(try await api.allowed(checker, "org:\(a)", "viewer", subject: ["token": readOnly]))
            // ...but only inside orgs the key's owner administers: nothing about strangers' orgs.
            let c = try await api.createOrg(alice.access, name: "C")
            #expect(try await api.authorize(checker, "org:\(c)", "owner", subject: ["user_id": alice.userID]).status == .forbidden)
            #expect(try await api.send(.get, "/v1/watch", token: checker).status == .forbidden)
            let lookup = try await api.send(.post, "/v1/lookup", json: ["permission": "viewer", "subject": ["user_id": alice.userID]], token: checker)
            #expect((lookup.json["items"] as? [[String: Any]])?.compactMap { $0["object"] as? String }.contains("org:\(c)") == false)

            // Bob loses org A: every key of his loses it at the same moment.
            let unscoped = try await api.createKey(bob.access).key
            #expect(try await api.allowed(unscoped, "org:\(a)", "admin"))
            #expect(try await api.send(.delete, "/v1/orgs/\(a)/members/\(bob.userID)", token: alice.access).status == .noContent)
            #expect(try await api.allowed(unscoped, "org:\(a)", "viewer") == false)
            #expect(try await api.allowed(onlyA, "org:\(a)", "viewer") == false)
            #expect(try await api.send(.get, "/v1/orgs/\(a)", token: unscoped).status == .notFound)
            #expect(try await api.allowed(unscoped, "org:\(b)", "admin"))

            // Root powers pass only to an unscoped key of the root.
            let root = try await api.login("root@example.com", password: testRootPassword)
            let rootKey = try await api.createKey(root.access).key
            let rootScoped = try await api.createKey(root.access, scopes: ["role:viewer"]).key
            #expect(try await api.send(.get, "/v1/audit", token: rootKey).status == .ok)
            #expect(try await api.send(.get, "/v1/audit", token: rootScoped).status == .forbidden)
        }
    }

    @Test("expired keys answer 401", arguments: Backend.allCases)
    func expiry(_ backend: Backend) async throws {
        let clock = TestClock()
        try await withApp(backend, clock: clock) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let (id, key) = try await api.createKey(alice.access, expiresIn: 120)
            #expect(try await api.send(.get, "/v1/me", token: key).status == .ok)
            clock.advance(by: 121)
            #expect(try await api.send(.get, "/v1/me", token: key).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/keys/\(id)", token: try await api.login("alice@example.com").access).json["expires_at"] is String)
        }
    }

    @Test("last_used_at is coalesced: no write per request, one per flush", arguments: Backend.allCases)
    func lastUsed(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let (id, key) = try await api.createKey(alice.access)
            let revisionBefore = try await services.changeFeed.latestRevision()
            for _ in 0..<25 { #expect(try await api.send(.get, "/v1/me", token: key).status == .ok) }
            func stored() async throws -> Date? {
                try await services.database.queryFirst("SELECT last_used_at FROM api_keys WHERE id = $1", UUID(uuidString: id)!)?.optionalDate("last_used_at")
            }
            // Twenty-five uses, no write yet (the flusher runs on its interval)...
            let seen = try await api.send(.get, "/v1/keys/\(id)", token: alice.access)
            #expect(seen.json["last_used_at"] is String)
            try await services.keyVerifier.flushUses()
            let first = try #require(try await stored())
            // ...one flush writes it; a flush with nothing new writes nothing and moves nothing back.
            try await services.keyVerifier.flushUses()
            #expect(try await stored() == first)
            #expect(try await services.changeFeed.latestRevision() == revisionBefore)
        }
    }

    /// A key store whose `recordUse` waits until the test lets it finish.
    final class HeldUseStore: APIKeyLookup {
        let key: APIKey
        let hash: String
        let started = AsyncStream<Void>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        init(key: APIKey, hash: String) { (self.key, self.hash) = (key, hash) }
        func key(prefix: String) async throws -> (APIKey, secretHash: String)? { prefix == key.prefix ? (key, hash) : nil }
        func recordUse(_ uses: [UUID: Date]) async throws {
            started.continuation.yield()
            for await _ in release.stream { return }
        }
    }

    @Test("while a flush writes last_used_at the key still shows its last use; a use during the write waits for the next flush")
    func lastUsedDuringFlush() async throws {
        let minted = APIKeyFormat.mint()
        let key = APIKey(id: UUID(), prefix: minted.prefix, name: "k", owner: .user(UUID()), scopes: [], createdAt: Date(),
                         expiresAt: nil, lastUsedAt: nil, revokedAt: nil)
        let store = HeldUseStore(key: key, hash: minted.secretHash)
        let verifier = APIKeyVerifier(lookup: store)
        let used = Date()
        #expect(try await verifier.verify(minted.key, now: used)?.id == key.id)
        let flush = Task { try await verifier.flushUses() }
        for await _ in store.started.stream { break }
        #expect(verifier.pendingUse(key.id) == used, "mid-flush the use is shown from memory")
        // A use during the write is newer than the one being written: it waits for the next flush.
        let later = used.addingTimeInterval(1)
        _ = try await verifier.verify(minted.key, now: later)
        store.release.continuation.yield()
        try await flush.value
        #expect(verifier.pendingUse(key.id) == later)
    }

    @Test("service accounts: lifecycle, keys as subjects, deletion kills keys", arguments: Backend.allCases)
    func serviceAccounts(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let admin = try await api.signupAndLogin("admin@example.com")
            let org = try await api.createOrg(alice.access)
            let other = try await api.createOrg(alice.access, name: "Other")
            try await api.addMember(alice.access, org: org, email: "admin@example.com", role: "admin")

            #expect(try await api.send(.post, "/v1/orgs/\(org)/service-accounts", json: ["name": "ci", "role": "owner"], token: admin.access).status == .forbidden)
            let created = try await api.send(.post, "/v1/orgs/\(org)/service-accounts", json: ["name": "ci", "role": "editor"], token: admin.access)
            #expect(created.status == .created)
            let account = try #require(created.json["id"] as? String)
            #expect(created.json["role"] as? String == "editor" && created.json["org_id"] as? String == org)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/service-accounts", token: admin.access).json["total"] as? Int == 1)

            let keyReply = try await api.send(.post, "/v1/orgs/\(org)/service-accounts/\(account)/keys", json: ["name": "ci key"], token: admin.access)
            #expect(keyReply.status == .created)
            let key = try #require(keyReply.json["key"] as? String)
            let keyID = try #require(keyReply.json["id"] as? String)
            #expect(keyReply.json["service_account_id"] as? String == account)

            // The account's key acts as the account: its org role, nothing elsewhere, no user.
            #expect(try await api.allowed(key, "org:\(org)", "editor"))
            #expect(try await api.allowed(key, "org:\(org)", "admin") == false)
            #expect(try await api.allowed(key, "org:\(other)", "viewer") == false)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/members", token: key).status == .ok)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/members", json: ["email": "alice@example.com", "role": "viewer"], token: key).status == .forbidden)
            #expect(try await api.send(.get, "/v1/orgs/\(other)", token: key).status == .notFound)
            #expect(try await api.send(.get, "/v1/me", token: key).status == .forbidden)
            #expect(try await api.items("/v1/orgs", token: key).compactMap { $0["id"] as? String } == [org])
            let who = try await api.send(.post, "/v1/identify", json: ["token": key], token: alice.access)
            #expect(who.json["type"] as? String == "service_account" && who.json["service_account_id"] as? String == account)
            #expect(who.json["org_id"] as? String == org && who.json["key_id"] as? String == keyID && who.json["user_id"] is NSNull)

            // As a subject for root, and in bindings.
            let root = try await api.login("root@example.com", password: testRootPassword)
            #expect(try await api.allowed(root.access, "org:\(org)", "editor", subject: ["service_account_id": account]))
            let bound = try await api.send(.put, "/v1/orgs/\(org)/bindings",
                                           json: ["subject": ["service_account_id": account], "resource": "org:\(org)/project:p1", "role": "admin"], token: admin.access)
            #expect(bound.status == .created, "\(bound.text)")
            #expect(try await api.allowed(key, "org:\(org)/project:p1/doc:1", "admin"))
            #expect(try await api.send(.put, "/v1/orgs/\(other)/bindings",
                                       json: ["subject": ["service_account_id": account], "resource": "org:\(other)", "role": "viewer"], token: alice.access).status == .badRequest)

            // Key revocation, then account deletion: keys and bindings die with it, at once.
            let second = try await api.send(.post, "/v1/orgs/\(org)/service-accounts/\(account)/keys", json: ["name": "second"], token: admin.access)
            let secondKey = try #require(second.json["key"] as? String)
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/service-accounts/\(account)/keys/\(keyID)", token: admin.access).status == .noContent)
            #expect(try await api.send(.post, "/v1/authorize", json: ["object": "org:\(org)", "action": "viewer"], token: key).status == .unauthorized)
            #expect(try await api.allowed(secondKey, "org:\(org)", "viewer"))
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/service-accounts/\(account)", token: admin.access).status == .noContent)
            #expect(try await api.send(.post, "/v1/authorize", json: ["object": "org:\(org)", "action": "viewer"], token: secondKey).status == .unauthorized)
            #expect(try await api.allowed(root.access, "org:\(org)", "viewer", subject: ["service_account_id": account]) == false)
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM bindings WHERE subject_id = $1", UUID(uuidString: account)!)?.int("n") == 0)
            let actions = try await api.items("/v1/orgs/\(org)/audit?limit=6", token: alice.access).compactMap { $0["action"] as? String }
            #expect(actions.prefix(3) == ["service_account.deleted", "key.revoked", "key.created"])
        }
    }

    @Test("an org's max_key_ttl caps keys scoped to it", arguments: Backend.allCases)
    func orgKeyPolicy(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let org = try await api.createOrg(alice.access)
            let patched = try await api.send(.patch, "/v1/orgs/\(org)", json: ["settings": ["max_key_ttl": 3600]], token: alice.access)
            #expect((patched.json["settings"] as? [String: Any])?["max_key_ttl"] as? Int == 3600)
            #expect(try await api.send(.patch, "/v1/orgs/\(org)", json: ["settings": ["max_key_ttl": 5]], token: alice.access).status == .badRequest)

            let tooLong = try await api.send(.post, "/v1/keys", json: ["name": "k", "scopes": ["org:\(org)"], "expires_in": 7200], token: alice.access)
            #expect(tooLong.status == .badRequest)
            let defaulted = try await api.send(.post, "/v1/keys", json: ["name": "k", "scopes": ["org:\(org)"]], token: alice.access)
            #expect(defaulted.status == .created)
            let expires = try #require((defaulted.json["expires_at"] as? String).flatMap(RFC3339.date))
            let created = try #require((defaulted.json["created_at"] as? String).flatMap(RFC3339.date))
            #expect(abs(expires.timeIntervalSince(created) - 3600) < 1)
            // Unscoped keys are not bound by one org's policy; service-account keys always are.
            #expect(try await api.send(.post, "/v1/keys", json: ["name": "k", "expires_in": 7200], token: alice.access).status == .created)
            let account = try #require(try await api.send(.post, "/v1/orgs/\(org)/service-accounts", json: ["name": "ci", "role": "viewer"], token: alice.access).json["id"] as? String)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/service-accounts/\(account)/keys", json: ["name": "k", "expires_in": 7200], token: alice.access).status == .badRequest)
            let cleared = try await api.send(.patch, "/v1/orgs/\(org)", json: ["settings": ["max_key_ttl": NSNull()]], token: alice.access)
            #expect((cleared.json["settings"] as? [String: Any])?["max_key_ttl"] is NSNull)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/service-accounts/\(account)/keys", json: ["name": "k", "expires_in": 7200], token: alice.access).status == .created)
        }
    }

    @Test("a revoked key and a deleted service account stop working on another node", arguments: Backend.allCases)
    func crossNodeRevocation(_ backend: Backend) async throws {
        try await withApp(backend) { api, nodeA in
            let alice = try await api.signupAndLogin("alice@example.com")
            let (id, key) = try await api.createKey(alice.access)
            let org = try await api.createOrg(alice.access)
            let account = try #require(try await api.send(.post, "/v1/orgs/\(org)/service-accounts", json: ["name": "ci", "role": "viewer"], token: alice.access).json["id"] as? String)
            let accountKey = try #require(try await api.send(.post, "/v1/orgs/\(org)/service-accounts/\(account)/keys", json: ["name": "k"], token: alice.access).json["key"] as? String)
            try await withSecondNode(nodeA) { b, _ in
                #expect(try await b.send(.get, "/v1/me", token: key).status == .ok) // cached on B now
                #expect(try await api.send(.delete, "/v1/keys/\(id)", token: alice.access).status == .noContent)
                let took = try await eventually { try await b.send(.get, "/v1/me", token: key).status == .unauthorized }
                // How fast B follows is `make bench`'s to measure (propagation); this test, which runs beside
                // two hundred others on two cores, checks that it follows at all, within `eventually`'s guard.
                #expect(took != nil)

                #expect(try await b.allowed(accountKey, "org:\(org)", "viewer")) // cached on B
                let deleted = try await api.send(.delete, "/v1/orgs/\(org)/service-accounts/\(account)", token: alice.access)
                #expect(deleted.status == .noContent)
                // With the deletion's revision, B's very next answer already refuses the key.
                let after = try await b.send(.post, "/v1/authorize", json: ["object": "org:\(org)", "action": "viewer"], token: accountKey,
                                             headers: [HTTPField.Name("Portcullis-Revision")!: String(deleted.revision ?? 0)])
                #expect(after.status == .unauthorized)
                #expect(try await eventually { try await b.send(.get, "/v1/orgs/\(org)", token: accountKey).status == .unauthorized } != nil)
            }
        }
    }

    @Test("signing keys: rotation audited; automatic rotation only when old; JWKS drops a retired key after its tokens expired", arguments: Backend.allCases)
    func signingKeyRotation(_ backend: Backend) async throws {
        try await withServices(backend) { services in
            let t0 = Date()
            #expect(try await services.tokens.rotateIfOlder(than: .seconds(3600), now: t0) == nil)
            let first = try #require(services.tokens.activeKid)
            let later = t0.addingTimeInterval(7200)
            #expect(try await services.tokens.rotateIfOlder(than: .seconds(3600), now: later) != nil)
            let second = try #require(services.tokens.activeKid)
            #expect(first != second)
            func published(_ alg: String) -> [String] { services.tokens.jwks().filter { $0["alg"] == alg }.compactMap { $0["kid"] } }
            #expect(published("ES256").sorted() == [first, second].sorted())
            // Both algorithms rotate together: an old and a new RS256 key too.
            #expect(published("RS256").count == 2)
            // Past the retired keys' last possible token (a client's longest lifetime, a day, + 30 s leeway): gone.
            try await services.tokens.reload(now: later.addingTimeInterval(86_400 + 31))
            #expect(published("ES256") == [second])
            #expect(published("RS256").count == 1)
            let audited = try await services.database.query("SELECT action, actor_type FROM audit_events WHERE action = 'signing_key.rotated'")
            #expect(audited.count == 2)
            #expect(try audited.first?.string("actor_type") == "system")
        }
    }
}
