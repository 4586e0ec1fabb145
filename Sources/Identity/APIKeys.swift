import Authority
import Foundation
import Synchronization
import Memberwise

/// Who an API key acts for: a user (narrowed by the key's scopes), or an org's service account.
public enum KeyOwner: Sendable, Equatable, Hashable {
    case user(UUID)
    case serviceAccount(id: UUID, orgID: UUID)
}

/// An API key as stored and listed; the secret itself is never kept.
@PublicInit
public struct APIKey: Sendable, Equatable {
    public var id: UUID
    public var prefix: String
    public var name: String
    public var owner: KeyOwner
    public var scopes: [String]
    public var createdAt: Date
    public var expiresAt: Date?
    public var lastUsedAt: Date?
    public var revokedAt: Date?

    public func isUsable(at now: Date) -> Bool {
        revokedAt == nil && (expiresAt.map { $0 > now } ?? true)
    }
}

/// `pcl_<prefix>_<secret>`: the prefix (12 hex characters) finds the row, the secret (256 random
/// bits, base64url, 43 characters) proves possession.
///
/// Only SHA-256 of the secret is stored. A fast hash is right here, unlike for passwords: the
/// secret is 256 uniformly random bits, so there is nothing to guess or look up in a dictionary,
/// and a slow hash would cost every API request tens of milliseconds for no gain.
public enum APIKeyFormat {
    public static let scheme = "pcl"

    public struct Minted: Sendable {
        public let prefix: String
        public let secretHash: String
        /// The whole key, shown once.
        public let key: String
    }

    public static func mint() -> Minted {
        var generator = SystemRandomNumberGenerator()
        let prefix = Secrets.hex((0..<6).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let secret = Secrets.token(bytes: 32)
        return Minted(prefix: prefix, secretHash: Secrets.hash(secret), key: "\(scheme)_\(prefix)_\(secret)")
    }

    /// Splits a presented key; nil when it does not have the shape of one.
    public static func parse(_ key: String) -> (prefix: String, secret: String)? {
        let parts = key.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == scheme, parts[1].utf8.count == 12,
              parts[1].utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }),
              parts[2].utf8.count >= 43, parts[2].utf8.count <= 64 else { return nil }
        return (String(parts[1]), String(parts[2]))
    }

    public static func looksLikeKey(_ token: String) -> Bool { token.hasPrefix(scheme + "_") }
}

/// Finds a key by its prefix, with the stored hash of its secret.
public protocol APIKeyLookup: Sendable {
    func key(prefix: String) async throws -> (APIKey, secretHash: String)?
    /// Writes coalesced `last_used_at` values (only ever moving them forward).
    func recordUse(_ uses: [UUID: Date]) async throws
}

/// Verifies presented API keys: one in-memory lookup and one constant-time comparison on the
/// hot path. Revocations (local, or from the change log) drop the cached entry at once.
public final class APIKeyVerifier: Sendable {
    let lookup: any APIKeyLookup
    private let cache = Mutex([String: (APIKey, String)]())
    /// Prefixes the database did not know, and until when that answer is trusted: guessed
    /// keys cost no query each (SPEC §18). Short-lived, bounded, and cleared by any invalidation.
    private let absent = Mutex([String: ContinuousClock.Instant]())
    static let absentFor: Duration = .seconds(5)
    static let absentCapacity = 50_000
    private let uses = Mutex([UUID: Date]())
    let capacity: Int

    public init(lookup: any APIKeyLookup, capacity: Int = 100_000) {
        self.lookup = lookup
        self.capacity = capacity
    }

    /// The key, if `presented` is a usable key; nil otherwise (unknown, wrong secret, expired, revoked).
    /// `readThrough` asks the database even when memory has the key: for a node whose memory
    /// may be behind (SPEC §18).
    public func verify(_ presented: String, now: Date, readThrough: Bool = false) async throws -> APIKey? {
        guard let (prefix, secret) = APIKeyFormat.parse(presented) else { return nil }
        var entry = readThrough ? nil : cache.withLock { $0[prefix] }
        if entry == nil {
            let clock = ContinuousClock.now
            if !readThrough, let until = absent.withLock({ $0[prefix] }), until > clock { return nil }
            guard let loaded = try await lookup.key(prefix: prefix) else {
                cache.withLock { _ = $0.removeValue(forKey: prefix) }
                absent.withLock { table in
                    if table.count >= Self.absentCapacity { table = table.filter { $0.value > clock } }
                    if table.count >= Self.absentCapacity { table.removeAll(keepingCapacity: true) }
                    table[prefix] = clock + Self.absentFor
                }
                return nil
            }
            cache.withLock { table in
                if table.count >= capacity { table.removeAll(keepingCapacity: true) }
                table[prefix] = loaded
            }
            entry = loaded
        }
        guard let (key, hash) = entry else { return nil }
        guard Secrets.constantTimeEquals(Secrets.hash(secret), hash), key.isUsable(at: now) else { return nil }
        uses.withLock { $0[key.id] = now }
        return key
    }

    /// Forgets cached keys matching `predicate` (a revocation, a deleted service account).
    /// Forgets the keys a committed change revoked: one key, a service account's, an org's
    /// service accounts' (the org is gone), or all after a restore.
    public func apply(_ event: ChangeEvent) {
        switch event {
        case .keyRevoked(let id):
            invalidate { $0.id == id }
        case .serviceAccountChanged(let org, let account):
            invalidate { $0.owner == .serviceAccount(id: account, orgID: org) }
        case .orgDeleted(let id):
            invalidate { if case .serviceAccount(_, let org) = $0.owner { return org == id } else { return false } }
        case .restored:
            invalidate { _ in true }
        default:
            break
        }
    }

    public func invalidate(where predicate: (APIKey) -> Bool) {
        cache.withLock { table in
            for (prefix, entry) in table where predicate(entry.0) { table.removeValue(forKey: prefix) }
        }
        // A restore may bring back a prefix answered as absent.
        absent.withLock { $0.removeAll() }
    }

    /// Prefixes remembered as unknown (for tests and metrics).
    public var absentCount: Int { absent.withLock { $0.count } }

    /// When this node last saw the key used, if after its last flush.
    public func pendingUse(_ id: UUID) -> Date? { uses.withLock { $0[id] } }

    /// Writes the uses seen since the last flush: one UPDATE per key per flush, not per request.
    public func flushUses() async throws {
        // Kept in memory until written: a reader in between sees the use, not "never used".
        let batch = uses.withLock { $0 }
        guard !batch.isEmpty else { return }
        try await lookup.recordUse(batch)
        // Written now, except for keys used again meanwhile: the newer use waits for the next flush.
        uses.withLock { table in
            for (id, at) in batch where table[id] == at { table.removeValue(forKey: id) }
        }
    }
}
