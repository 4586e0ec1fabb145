import Foundation
import Synchronization

/// Access tokens whose signature and claims were verified, keyed by the token's SHA-256, until
/// they expire. An ES256 verification costs more than a whole decision, so a service presenting
/// the same token again skips it; the session check still runs on every request. Bounded: when
/// full it is emptied and refills on demand.
public final class VerifiedTokenCache: Sendable {
    private let entries = Mutex([String: VerifiedAccessToken]())
    let capacity: Int

    public init(capacity: Int = 100_000) { self.capacity = capacity }

    func get(_ key: String, now: Date) -> VerifiedAccessToken? {
        guard let hit = entries.withLock({ $0[key] }) else { return nil }
        return hit.expiresAt > now ? hit : nil
    }

    func put(_ key: String, _ token: VerifiedAccessToken) {
        entries.withLock { table in
            if table.count >= capacity { table.removeAll(keepingCapacity: true) }
            table[key] = token
        }
    }

    public var count: Int { entries.withLock { $0.count } }
}

/// Users by id, so an authenticated request does not read the users table each time.
/// Local writes and change-feed events (`user.*`, restores) drop entries.
public final class UserCache: Sendable {
    private let entries = Mutex([UUID: User]())
    let capacity: Int

    public init(capacity: Int = 100_000) { self.capacity = capacity }

    func get(_ id: UUID) -> User? { entries.withLock { $0[id] } }

    func put(_ user: User) {
        entries.withLock { table in
            if table.count >= capacity { table.removeAll(keepingCapacity: true) }
            table[user.id] = user
        }
    }

    public func invalidate(_ id: UUID) { _ = entries.withLock { $0.removeValue(forKey: id) } }
    public func invalidateAll() { entries.withLock { $0.removeAll() } }
}
