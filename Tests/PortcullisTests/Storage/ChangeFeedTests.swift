import Foundation
import Identity
import Storage
import Synchronization
import Testing

/// How another node learns of a write: the change applier following the log.
/// Serialized: one test cuts every listening connection, which would slow the other's follower.
@Suite("Change feed", .serialized)
struct ChangeFeedTests {
    func user(_ email: String) -> UserCredentials {
        let now = Date()
        return UserCredentials(
            user: User(id: UUID(), email: email, name: "N", emailVerified: false, isRoot: false, createdAt: now, updatedAt: now),
            passwordHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA")
    }

    /// Runs a follower on its own connection (as a second node's would be) that polls only every
    /// ten seconds, and hands `body` the revisions it has applied so far.
    func withFollower(
        _ db: any SQLDatabase, _ body: @escaping @Sendable (@escaping @Sendable () -> [Int64]) async throws -> Void
    ) async throws {
        let feed = ChangeFeed(database: try await db.dedicated(), interval: .seconds(10))
        let seen = Mutex<[Int64]>([])
        let applier = ChangeApplier(feed: feed, from: try await feed.latestRevision()) { changes in
            seen.withLock { $0 += changes.map(\.revision) }
        }
        let follower = Task { await applier.run() }
        defer { follower.cancel() }
        try await body { seen.withLock { $0 } }
        follower.cancel()
        await follower.value
    }

    /// Waits up to three seconds (against the follower's ten-second poll) for `revision` to arrive.
    func arrives(_ revision: Int64, _ seen: () -> [Int64]) async throws -> Bool {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(3) {
            if seen().contains(revision) { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    @Test("on PostgreSQL a commit wakes the follower at once, not at its next poll")
    func notifiedAtCommit() async throws {
        try await withDatabase(.postgres) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            try await withFollower(db) { seen in
                // Let the follower read the log once and start listening.
                try await Task.sleep(for: .milliseconds(300))
                let first = try await store.createUser(user("one@example.com"), verification: nil)
                #expect(try await arrives(first, seen))
                // By now every start-up read is behind the follower: only a wake-up brings this one.
                let second = try await store.createUser(user("two@example.com"), verification: nil)
                #expect(try await arrives(second, seen))
                #expect(seen() == [first, second])
            }
        }
    }

    @Test("a follower whose listening connection is cut still polls, and listens again")
    func listenReestablished() async throws {
        try await withDatabase(.postgres) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let store = SQLIdentityStore(database: db)
            try await withFollower(db) { seen in
                try await Task.sleep(for: .milliseconds(300))
                // An administrator (or a failover) ends the sessions that listen. Other suites'
                // followers may be among them; they poll often and recover the same way.
                let cut = try await db.query(
                    "SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()")
                #expect(try cut.contains { try $0.bool("cut") })
                let during = try await store.createUser(user("during@example.com"), verification: nil)
                // The poll timer (ten seconds here) or the listen coming back picks it up.
                let start = ContinuousClock.now
                while !seen().contains(during), ContinuousClock.now - start < .seconds(30) {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(seen().contains(during))
                let after = try await store.createUser(user("after@example.com"), verification: nil)
                #expect(try await arrives(after, seen))
            }
        }
    }
}
