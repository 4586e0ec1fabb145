import Authority
import Foundation
import Identity
import Storage
import Synchronization
import Testing

/// The store contract, run against SQLite and PostgreSQL alike.
@Suite("Store contract")
struct StoreContractTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    func makeUser(_ email: String, at: Date = now) -> UserCredentials {
        UserCredentials(
            user: User(id: UUID(), email: email, name: "N", emailVerified: false, isRoot: false, createdAt: at, updatedAt: at),
            passwordHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA")
    }

    func makeSession(_ user: UserCredentials, created: Date = now) -> Session {
        Session(id: UUID(), userID: user.user.id, createdAt: created, lastUsedAt: created,
                expiresAt: created.addingTimeInterval(3600), revokedAt: nil, userAgent: "ua", ip: "127.0.0.1")
    }

    @Test("migrations apply once and re-running is a no-op", arguments: Backend.allCases)
    func migrationsIdempotent(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            let migrator = try Migrator(dialect: db.dialect)
            let first = try await migrator.migrate(db)
            #expect(first == migrator.migrations.map(\.version))
            #expect(try await migrator.migrate(db).isEmpty)
            let status = try await migrator.status(db)
            #expect(status.allSatisfy { $0.applied })
            #expect(status.count == migrator.migrations.count)
        }
    }

    @Test("upgrading to RS256 ID tokens: clients registered before keep ES256, new ones get RS256", arguments: Backend.allCases)
    func upgradeKeepsES256(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            let migrator = try Migrator(dialect: db.dialect)
            try await migrator.upTo(10).migrate(db)
            let client = UUID()
            try await db.execute(
                """
                INSERT INTO oauth_clients (id, org_id, name, kind, secret_hash, redirect_uris, scopes, first_party, created_at, updated_at)
                VALUES ($1, NULL, 'Wiki', 'public', NULL, '["https://wiki.example.com/cb"]', '["openid"]', FALSE, $2, $2)
                """, client, Self.now)
            #expect(try await migrator.migrate(db).contains(11))
            let row = try #require(try await db.queryFirst("SELECT id_token_alg, secret_rotated_at FROM oauth_clients WHERE id = $1", client))
            #expect(try row.string("id_token_alg") == "ES256")
            #expect(try row.optionalDate("secret_rotated_at") == nil)
            // A client registered after the upgrade without saying gets the database's RS256.
            let later = UUID()
            try await db.execute(
                """
                INSERT INTO oauth_clients (id, org_id, name, kind, secret_hash, redirect_uris, scopes, first_party, created_at, updated_at)
                VALUES ($1, NULL, 'New', 'public', NULL, '["https://new.example.com/cb"]', '["openid"]', FALSE, $2, $2)
                """, later, Self.now)
            #expect(try await db.queryFirst("SELECT id_token_alg FROM oauth_clients WHERE id = $1", later)?.string("id_token_alg") == "RS256")
        }
    }

    @Test("concurrent migrators apply each migration exactly once", arguments: Backend.allCases)
    func concurrentMigrations(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            let migrator = try Migrator(dialect: db.dialect)
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 { group.addTask { try await migrator.migrate(db) } }
                var all: [Int] = []
                for try await a in group { all += a }
                return all
            }
            #expect(applied.sorted() == migrator.migrations.map(\.version).sorted())
        }
    }

    @Test("a database with unknown migrations is refused", arguments: Backend.allCases)
    func unknownMigrationRefused(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            let migrator = try Migrator(dialect: db.dialect)
            try await migrator.migrate(db)
            try await db.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 'x')")
            await #expect(throws: StorageError.self) { try await migrator.migrate(db) }
        }
    }

    @Test("users: create, find case-insensitively stored e-mail, reject duplicates", arguments: Backend.allCases)
    func users(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            let alice = makeUser("alice@example.com")
            let r1 = try await store.createUser(alice, verification: nil)
            #expect(try await store.credentials(email: "alice@example.com")?.user == alice.user)
            #expect(try await store.user(id: alice.user.id) == alice.user)
            #expect(try await store.user(id: UUID()) == nil)
            await #expect(throws: IdentityError.emailTaken) { try await store.createUser(makeUser("alice@example.com"), verification: nil) }
            let r2 = try await store.createUser(makeUser("bob@example.com"), verification: nil)
            #expect(r2 > r1, "revisions are monotonic")
            #expect(try await store.rootExists() == false)
            let renamed = try #require(try await store.updateName(userID: alice.user.id, name: "Alice", now: Self.now.addingTimeInterval(5)))
            #expect(renamed.0.name == "Alice")
            #expect(renamed.0.updatedAt == Self.now.addingTimeInterval(5))
            #expect(renamed.1 > r2)
            #expect(try await store.updateName(userID: UUID(), name: "x", now: Self.now) == nil)
            // The directory: by address, narrowed by a substring of address or name, LIKE's
            // wildcards matched literally.
            _ = try await store.createUser(makeUser("per%cent_x@example.com"), verification: nil)
            #expect(try await store.users(matching: nil, limit: 10, offset: 0).0.map(\.email) == ["alice@example.com", "bob@example.com", "per%cent_x@example.com"])
            #expect(try await store.users(matching: nil, limit: 1, offset: 1).0.map(\.email) == ["bob@example.com"])
            #expect(try await store.users(matching: "alice", limit: 10, offset: 0).1 == 1)
            #expect(try await store.users(matching: "%", limit: 10, offset: 0).0.map(\.email) == ["per%cent_x@example.com"])
            #expect(try await store.users(matching: "_", limit: 10, offset: 0).1 == 1)
            #expect(try await store.users(matching: "nobody", limit: 10, offset: 0).1 == 0)
        }
    }

    @Test("refresh tokens rotate once; a spent token revokes the session", arguments: Backend.allCases)
    func refreshRotation(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            let user = makeUser("carol@example.com")
            _ = try await store.createUser(user, verification: nil)
            let session = makeSession(user)
            _ = try await store.createSession(session, refreshHash: "h1", refreshExpiresAt: session.expiresAt)
            let later = Self.now.addingTimeInterval(10)
            guard case .rotated(let rotated, _) = try await store.rotateRefreshToken(oldHash: "h1", newHash: "h2", newExpiresAt: later.addingTimeInterval(3600), clientID: nil, now: later) else {
                Issue.record("first use must rotate"); return
            }
            #expect(rotated.id == session.id)
            #expect(rotated.lastUsedAt == later)
            guard case .reused(let sid, _) = try await store.rotateRefreshToken(oldHash: "h1", newHash: "h3", newExpiresAt: later, clientID: nil, now: later) else {
                Issue.record("second use must be detected as reuse"); return
            }
            #expect(sid == session.id)
            #expect(try await store.session(id: session.id)?.revokedAt != nil)
            // The current token of a revoked session is dead too.
            guard case .invalid = try await store.rotateRefreshToken(oldHash: "h2", newHash: "h4", newExpiresAt: later, clientID: nil, now: later) else {
                Issue.record("tokens of a revoked session must be invalid"); return
            }
            guard case .invalid = try await store.rotateRefreshToken(oldHash: "unknown", newHash: "h5", newExpiresAt: later, clientID: nil, now: later) else {
                Issue.record("unknown tokens must be invalid"); return
            }
        }
    }

    @Test("a client's refresh token rotates only for that client, keeps its client and scope, and revokes by its hash", arguments: Backend.allCases)
    func clientBoundRefresh(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            let user = makeUser("olga@example.com")
            _ = try await store.createUser(user, verification: nil)
            var session = makeSession(user)
            session.clientID = "client-a"
            session.scope = "openid offline_access"
            _ = try await store.createSession(session, refreshHash: "c1", refreshExpiresAt: session.expiresAt)
            let later = Self.now.addingTimeInterval(10)
            // Portcullis's own refresh and another client's are refused, and spend nothing.
            for other in [nil, "client-b"] as [String?] {
                guard case .invalid = try await store.rotateRefreshToken(oldHash: "c1", newHash: "x", newExpiresAt: later, clientID: other, now: later) else {
                    Issue.record("\(other ?? "portcullis") must not rotate client-a's token"); return
                }
            }
            guard case .rotated(let rotated, _) = try await store.rotateRefreshToken(oldHash: "c1", newHash: "c2", newExpiresAt: later.addingTimeInterval(3600), clientID: "client-a", now: later) else {
                Issue.record("the client's own refresh must rotate"); return
            }
            #expect(rotated.clientID == "client-a")
            #expect(rotated.scope == "openid offline_access")
            #expect(try await store.revokeSession(refreshHash: "c2", clientID: "client-b", reason: .logout, now: later) == nil)
            #expect(try await store.session(id: session.id)?.revokedAt == nil)
            #expect(try await store.revokeSession(refreshHash: "c2", clientID: "client-a", reason: .logout, now: later) != nil)
            #expect(try await store.session(id: session.id)?.revokedAt != nil)
        }
    }

    @Test("concurrent refreshes of one token: exactly one rotates", arguments: Backend.allCases)
    func concurrentRefresh(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            let user = makeUser("dan@example.com")
            _ = try await store.createUser(user, verification: nil)
            let session = makeSession(user)
            _ = try await store.createSession(session, refreshHash: "same", refreshExpiresAt: session.expiresAt)
            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<6 {
                    group.addTask {
                        switch try await store.rotateRefreshToken(oldHash: "same", newHash: "n\(i)", newExpiresAt: Self.now.addingTimeInterval(3600), clientID: nil, now: Self.now) {
                        case .rotated: return "rotated"
                        case .reused: return "reused"
                        case .invalid: return "invalid"
                        }
                    }
                }
                var all: [String] = []
                for try await o in group { all.append(o) }
                return all
            }
            #expect(outcomes.filter { $0 == "rotated" }.count == 1)
            #expect(outcomes.filter { $0 == "reused" }.count == 1)
        }
    }

    @Test("sessions: list active, revoke one, revoke all but one", arguments: Backend.allCases)
    func sessions(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            let user = makeUser("erin@example.com")
            _ = try await store.createUser(user, verification: nil)
            var ids: [UUID] = []
            for i in 0..<3 {
                let s = makeSession(user, created: Self.now.addingTimeInterval(Double(i)))
                _ = try await store.createSession(s, refreshHash: "r\(i)", refreshExpiresAt: s.expiresAt)
                ids.append(s.id)
            }
            let (page, total) = try await store.activeSessions(userID: user.user.id, now: Self.now, limit: 2, offset: 0)
            #expect(total == 3)
            #expect(page.map(\.id) == [ids[2], ids[1]], "newest first")
            #expect(try await store.revokeSession(id: ids[0], userID: user.user.id, reason: .deleted, now: Self.now) != nil)
            #expect(try await store.revokeSession(id: ids[0], userID: user.user.id, reason: .deleted, now: Self.now) == nil, "already revoked")
            #expect(try await store.revokeSession(id: ids[1], userID: UUID(), reason: .deleted, now: Self.now) == nil, "other user's session")
            let (_, revoked) = try await store.setPassword(userID: user.user.id, hash: "new", keepSession: ids[2], reason: .passwordChanged, now: Self.now)
            #expect(revoked == [ids[1]])
            #expect(try await store.credentials(id: user.user.id)?.passwordHash == "new")
            let (_, all) = try await store.revokeAllSessions(userID: user.user.id, reason: .logoutAll, now: Self.now)
            #expect(all == [ids[2]])
            #expect(try await store.activeSessions(userID: user.user.id, now: Self.now, limit: 10, offset: 0).1 == 0)
        }
    }

    @Test("signing keys: first activation is idempotent, rotation retires the old key", arguments: Backend.allCases)
    func signingKeys(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            func key(_ kid: String, _ t: Double) -> SigningKeyRecord {
                SigningKeyRecord(kid: kid, algorithm: "ES256", publicKeyPEM: "pem", sealedPrivateKey: "sealed", createdAt: Self.now.addingTimeInterval(t))
            }
            #expect(try await store.activateFirstKey(key("a", 0)))
            #expect(try await store.activateFirstKey(key("b", 1)) == false)
            let before = try await ChangeFeed(database: db).latestRevision()
            #expect(try await store.rotateKey(to: key("c", 2), retiredPublishUntil: Self.now.addingTimeInterval(900), actor: nil) > before)
            let keys = try await store.signingKeys()
            #expect(keys.map(\.kid) == ["a", "c"])
            #expect(keys[0].retiredAt == Self.now.addingTimeInterval(2))
            #expect(keys[0].publishUntil == Self.now.addingTimeInterval(900))
            #expect(keys[1].retiredAt == nil)
        }
    }

    @Test("the change feed returns every change in order", arguments: Backend.allCases)
    func changeFeed(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            let feed = ChangeFeed(database: db)
            let start = try await feed.latestRevision()
            let u = makeUser("feed@example.com")
            let r = try await store.createUser(u, verification: nil)
            let changes = try await feed.changes(after: start)
            #expect(changes.map(\.revision) == [r])
            #expect(changes.first?.kind == "user.created")
            #expect(changes.first?.subject == u.user.id.uuidString.lowercased())
        }
    }

    @Test("the identity store hands each write's changes to its observer after the commit", arguments: Backend.allCases)
    func identityObserver(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let seen = Mutex<[Change]>([])
            let store = SQLIdentityStore(database: db, observer: { changes in seen.withLock { $0 += changes } })
            let u = makeUser("observed@example.com")
            let created = try await store.createUser(u, verification: nil)
            let s = makeSession(u)
            _ = try await store.createSession(s, refreshHash: String(repeating: "a", count: 64), refreshExpiresAt: Self.now.addingTimeInterval(3600))
            let (revoked, ids) = try await store.revokeAllSessions(userID: u.user.id, reason: .logout, now: Self.now)
            let events = seen.withLock { $0 }
            #expect(events.first?.revision == created && events.first?.event == .userCreated(u.user.id))
            #expect(events.map(\.event).contains(.sessionRevoked(s.id)) && ids == [s.id])
            #expect(events.last?.revision == revoked && events.last?.event == .sessionsRevoked(user: u.user.id))
            // Revisions arrive in commit order.
            #expect(events.map(\.revision) == events.map(\.revision).sorted())
        }
    }
}
