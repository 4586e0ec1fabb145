import Foundation
import Synchronization

/// Answers "is this session still alive?" for every authenticated request, from memory.
///
/// A session's state is read from the database once and then kept; local revocations update
/// it at once, and revocations made on other nodes arrive through the change feed
/// (`sessionRevoked`). The table is bounded: when full it is emptied and refilled on demand,
/// which costs a database read per session, never a wrong answer.
public final class SessionGuard: Sendable {
    private let store: any SessionStore
    private let capacity: Int
    private let states = Mutex([UUID: Entry]())

    struct Entry: Sendable {
        var userID: UUID
        var alive: Bool
        var expiresAt: Date
    }

    public init(store: any SessionStore, capacity: Int = 200_000) {
        self.store = store
        self.capacity = capacity
    }

    /// True when the session exists, belongs to `userID`, and is neither revoked nor expired.
    /// `readThrough` asks the database even when memory has an answer: for a node whose memory
    /// may be behind (SPEC §18).
    public func isAlive(sessionID: UUID, userID: UUID, now: Date = Date(), readThrough: Bool = false) async throws -> Bool {
        if !readThrough, let entry = states.withLock({ $0[sessionID] }) {
            return entry.alive && entry.userID == userID && entry.expiresAt > now
        }
        guard let session = try await store.session(id: sessionID) else { return false }
        let entry = Entry(userID: session.userID, alive: session.revokedAt == nil, expiresAt: session.expiresAt)
        states.withLock { table in
            if table.count >= capacity { table.removeAll(keepingCapacity: true) }
            // A revocation that raced with this read wins: never turn a dead entry back alive.
            if table[sessionID]?.alive == false { return }
            table[sessionID] = entry
        }
        return entry.alive && entry.userID == userID && entry.expiresAt > now
    }

    /// Marks sessions revoked (called after local revocations and for change-feed events).
    public func sessionsRevoked(_ ids: [UUID]) {
        guard !ids.isEmpty else { return }
        states.withLock { table in
            for id in ids {
                if var entry = table[id] {
                    entry.alive = false
                    table[id] = entry
                } else {
                    table[id] = Entry(userID: UUID(), alive: false, expiresAt: .distantFuture)
                }
            }
        }
    }

    public var count: Int { states.withLock { $0.count } }
}
