import Authority
import Foundation
import Tenancy
import Synchronization

/// Loads one org's grants from the database; nil when the org does not exist.
public protocol GrantLoader: Sendable {
    func grants(orgID: UUID) async throws -> OrgGrants?
    /// Only what `principal` holds in the org (its membership and bindings), for strong reads:
    /// what it costs depends on the principal's grants, never on the org's size or existence,
    /// so an outsider cannot tell a real org from a random id by the time it takes (issue 21).
    func grants(orgID: UUID, of principal: Principal) async throws -> OrgGrants
    /// What `principal` holds itself in the org: its membership, its own bindings, the groups it
    /// is directly in and its own overrides; no group tree, no group's grants. What a member's
    /// change patches into a cached org (`OrgGrants.replace`), read in one round trip.
    func held(orgID: UUID, by principal: Principal) async throws -> OrgGrants
}

extension GrantLoader {
    /// For loaders without a narrower query (benchmarks, tests): the org's grants, filtered.
    public func grants(orgID: UUID, of principal: Principal) async throws -> OrgGrants {
        guard let all = try await grants(orgID: orgID) else { return OrgGrants() }
        return all.only(principal)
    }

    /// For loaders without a one-statement read: the narrow load, which holds at least as much.
    public func held(orgID: UUID, by principal: Principal) async throws -> OrgGrants {
        try await grants(orgID: orgID, of: principal)
    }
}

extension OrgGrants {
    /// The grants of one principal only.
    public func only(_ principal: Principal) -> OrgGrants {
        var g = OrgGrants(members: members[principal].map { [principal: $0] } ?? [:])
        let holders = Set([principal] + (groupReach[principal] ?? []).map { Principal.group($0.group) })
        for (holder, b) in bindings.entries where holders.contains(holder) { g.addBinding(b, for: holder) }
        for (key, list) in overrideIndex where holders.contains(key.principal) {
            for o in list { g.addOverride(o, for: key.principal) }
        }
        g.setGroups(names: groupNames, parents: groupParent, edges: (groupEdges[principal] ?? []).map { (principal, $0) })
        g.seal()
        return g
    }
}

/// One org's grants as the cache holds them, immutable and shared by every reader; nil grants
/// remember an org that does not exist.
public final class GrantSnapshot: Sendable {
    public let grants: OrgGrants?

    init(_ grants: OrgGrants?) { self.grants = grants }
}

/// Every org's grants, held in memory so that decisions never wait on the database.
///
/// Orgs load lazily on first use (one query per table) and stay until a write touches them:
/// a change to one member is patched in (`refresh`), any other drops the org at once, and its
/// next decision reloads it. A generation number per shard keeps a load or a patch that raced
/// with another change from installing stale grants.
/// Lookups take one uncontended lock of one of 64 shards.
public final class GrantCache: Sendable {
    struct Shard: Sendable {
        var entries: [UUID: GrantSnapshot] = [:]
        var absentCount = 0
        /// Bumped by every invalidation in the shard; a load started before it must not install.
        var generation: UInt64 = 0
        /// Counted under the shard's lock, which the lookup holds anyway: no shared counter on the hot path.
        var hits = 0
        var misses = 0
    }

    static let shardCount = 64
    /// Unknown org ids are remembered too (so probing random ids costs no query), but only this many per shard.
    static let absentLimit = 4096

    /// Mutex is non-copyable, so each shard's lives in a small box the array can hold.
    final class ShardBox: Sendable {
        let state = Mutex(Shard())
        func withLock<R>(_ body: (inout Shard) -> R) -> R { state.withLock { body(&$0) } }
    }

    public let loader: any GrantLoader
    /// The time one batch's patches may take together: once it is spent (a slow database), the
    /// remaining orgs are dropped, so a follower waits at most this plus one read.
    public let patchBudget: Duration
    private let shards: [ShardBox]

    public init(loader: any GrantLoader, patchBudget: Duration = .milliseconds(100)) {
        self.loader = loader
        self.patchBudget = patchBudget
        shards = (0..<Self.shardCount).map { _ in ShardBox() }
    }

    @inline(__always)
    private func shard(_ org: UUID) -> ShardBox {
        // The UUID's last byte is random in v4 ids and spreads orgs evenly.
        shards[Int(org.uuid.15) & (Self.shardCount - 1)]
    }

    /// The cached grants when present, without loading: the hot path's first try. The snapshot
    /// is shared, not copied: reading it costs one reference count, not one per table.
    @inline(__always)
    public func cached(_ org: UUID) -> GrantSnapshot? {
        shard(org).withLock { s in
            let e = s.entries[org]
            if e != nil { s.hits &+= 1 }
            return e
        }
    }

    /// The org's grants, loading them on a miss; nil when the org does not exist.
    public func grants(_ org: UUID) async throws -> OrgGrants? {
        if let hit = cached(org) { return hit.grants }
        let shard = shard(org)
        let generation = shard.withLock { s in
            s.misses &+= 1
            return s.generation
        }
        var loaded = try await loader.grants(orgID: org)
        loaded?.seal()
        let snapshot = GrantSnapshot(loaded)
        shard.withLock { s in
            guard s.generation == generation else { return }
            if loaded != nil {
                s.entries[org] = snapshot
            } else {
                if s.absentCount >= Self.absentLimit {
                    s.entries = s.entries.filter { $0.value.grants != nil }
                    s.absentCount = 0
                }
                s.entries[org] = snapshot
                s.absentCount += 1
            }
        }
        return loaded
    }

    /// Installs grants directly (preloading, benchmarks).
    public func install(_ org: UUID, _ grants: OrgGrants) {
        var sealed = grants
        sealed.seal()
        let snapshot = GrantSnapshot(sealed)
        shard(org).withLock { $0.entries[org] = snapshot }
    }

    /// At most this many principals of one batch of changes are patched in; the orgs of a larger
    /// batch (a bulk import, a follower catching up) are dropped instead, which costs each org one
    /// load on its next decision rather than a read per changed principal now.
    public static let patchLimit = 16

    /// Brings the cache up to committed changes, given in log order. A change to one member or
    /// service account of a cached org is applied in place from a load of that principal alone
    /// (issue 18: a reload of the whole org made the next decision wait for it, on every node).
    /// Any other change to an org's grants drops the org, and its next decision reloads it.
    public func apply(_ events: [ChangeEvent]) async {
        struct Patch: Hashable { var org: UUID, principal: Principal }
        var patches: [Patch] = []
        for event in events {
            switch event {
            case .membershipChanged(let org, let user):
                patches.append(Patch(org: org, principal: .user(user)))
            case .serviceAccountChanged(let org, let account):
                patches.append(Patch(org: org, principal: .serviceAccount(account)))
            case .orgCreated(let org), .orgDeleted(let org), .bindingChanged(let org), .groupChanged(let org), .overrideChanged(let org):
                invalidate(org)
            case .restored:
                invalidateAll()
                return
            default:
                break
            }
        }
        // Patches go last: each reads the database after every change of the batch committed, so
        // it is exact whatever came before it; an org dropped above is simply not patched.
        var seen = Set<Patch>()
        patches = patches.filter { seen.insert($0).inserted }
        if patches.count > Self.patchLimit {
            for p in patches { invalidate(p.org) }
            return
        }
        let deadline = ContinuousClock.now + patchBudget
        for p in patches {
            if ContinuousClock.now < deadline { await refresh(p.org, p.principal) } else { invalidate(p.org) }
        }
    }

    /// Replaces what `principal` holds in the cached `org` with what the database holds now.
    /// The patch installs only over the snapshot it was made from and with no invalidation or
    /// other patch in the shard since; otherwise, or when the org is not cached or the read
    /// fails, the org is dropped as before. Either way no decision after this returns sees
    /// the grants from before the change.
    func refresh(_ org: UUID, _ principal: Principal) async {
        let shard = shard(org)
        let (base, generation) = shard.withLock { s in (s.entries[org], s.generation) }
        guard let base, var patched = base.grants,
              let fresh = try? await loader.held(orgID: org, by: principal) else {
            invalidate(org)
            return
        }
        patched.replace(principal, from: fresh)
        let snapshot = GrantSnapshot(patched)
        let installed = shard.withLock { s in
            guard s.generation == generation, s.entries[org] === base else { return false }
            s.entries[org] = snapshot
            // A load or a patch that started before this one must not install over it.
            s.generation &+= 1
            return true
        }
        if !installed { invalidate(org) }
    }

    public func invalidate(_ org: UUID) {
        shard(org).withLock { s in
            if let removed = s.entries.removeValue(forKey: org), removed.grants == nil { s.absentCount -= 1 }
            s.generation &+= 1
        }
    }

    public func invalidateAll() {
        for shard in shards {
            shard.withLock { s in
                s.entries.removeAll()
                s.absentCount = 0
                s.generation &+= 1
            }
        }
    }

    /// Orgs held (present or known absent), for metrics and tests.
    public var count: Int { shards.reduce(0) { n, s in n + s.withLock { $0.entries.count } } }

    /// Lookups answered from memory and lookups that went to the database, since start.
    public var stats: (hits: Int, misses: Int) {
        shards.reduce((0, 0)) { n, s in s.withLock { (n.0 + $0.hits, n.1 + $0.misses) } }
    }
}
