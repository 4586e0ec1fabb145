import Authority
import Foundation
import Tenancy
import Memberwise

public enum Consistency: String, Sendable {
    /// From memory (the default): exact locally at once, on other nodes within the propagation bound.
    case cached
    /// Reads the org's grants from the database for this decision.
    case strong
}

/// Grants read through the database within one request: each org at most once (issue 21: a
/// strong batch of 1,000 checks read the same org 1,000 times).
///
/// An org asked about for one principal only reads that principal's grants (so the cost never
/// depends on the org's size or existence); an org asked about for several reads whole, once.
public struct ReadThrough: Sendable {
    var loaded: [UUID: OrgGrants] = [:]
    /// Orgs this request asks about for more than one principal.
    var shared: Set<UUID> = []

    public init() {}

    /// Prepares for these (org, principal) pairs; call before deciding a batch.
    public init(asking pairs: some Sequence<(UUID, Principal)>) {
        var seen: [UUID: Principal] = [:]
        for (org, principal) in pairs {
            if let other = seen[org], other != principal { shared.insert(org) } else { seen[org] = principal }
        }
    }
}

/// Decisions, explanations and capabilities over the grant cache.
public struct PolicyService: Sendable {
    public let cache: GrantCache
    public let permissions: PermissionTable
    let now: @Sendable () -> Date

    public init(cache: GrantCache, permissions: PermissionTable, now: @escaping @Sendable () -> Date = { Date() }) {
        self.cache = cache
        self.permissions = permissions
        self.now = now
    }

    /// Brings the cached grants up to committed changes (`GrantCache.apply`).
    public func apply(_ events: [ChangeEvent]) async { await cache.apply(events) }

    /// The grant cache's hits and misses so far, and the orgs it holds (metrics).
    public var cacheStats: (hits: Int, misses: Int, orgs: Int) {
        let (hits, misses) = cache.stats
        return (hits, misses, cache.count)
    }

    public func requirement(_ action: String) throws(PolicyError) -> Requirement {
        try permissions.requirement(for: action)
    }

    func grants(_ org: UUID, for principal: Principal, _ consistency: Consistency, _ reads: inout ReadThrough) async throws -> OrgGrants? {
        switch consistency {
        case .cached:
            return try await cache.grants(org)
        case .strong:
            if let hit = reads.loaded[org] { return hit }
            let loaded: OrgGrants
            if reads.shared.contains(org) {
                loaded = try await cache.loader.grants(orgID: org) ?? OrgGrants()
            } else {
                loaded = try await cache.loader.grants(orgID: org, of: principal)
            }
            reads.loaded[org] = loaded
            return loaded
        }
    }

    public func decide(_ subject: Subject, _ object: ObjectRef, _ required: Requirement, consistency: Consistency = .cached) async throws -> Decision {
        var reads = ReadThrough()
        return try await decide(subject, object, required, consistency: consistency, reads: &reads)
    }

    public func decide(_ subject: Subject, _ object: ObjectRef, _ required: Requirement, consistency: Consistency, reads: inout ReadThrough) async throws -> Decision {
        if consistency == .cached, let hit = cache.cached(object.orgID) {
            return DecisionEngine.decide(hit.grants, subject: subject, object: object, required: required, now: now().instant)
        }
        let grants = try await grants(object.orgID, for: subject.principal, consistency, &reads)
        return DecisionEngine.decide(grants, subject: subject, object: object, required: required, now: now().instant)
    }

    /// The subject's current membership role in `org`, narrowed by its key's scopes (bindings,
    /// even on the org object, are not membership). `strong` reads it from the database.
    public func membershipRole(of subject: Subject, in org: UUID, consistency: Consistency = .cached) async throws -> Role? {
        var reads = ReadThrough()
        guard let m = try await grants(org, for: subject.principal, consistency, &reads)?.members[subject.principal], m.expiresAt > now().instant else { return nil }
        return subject.scopes.map { $0.narrow(m.role, in: org) } ?? m.role
    }

    /// One check of a batch; a nil subject is one that did not resolve (an invalid token).
    @PublicInit
    public struct Check: Sendable {
        public var subject: Subject?
        public var object: ObjectRef
        public var requirement: Requirement
        public var consistency: Consistency
    }

    /// Decides checks in order, each org read through at most once, pacing the loop (it stops
    /// when the request is cancelled). Stops early after a decision `stop` accepts; a nil
    /// result is a check without a subject (and `stop` sees nil for it). `decided` sees each decision as it is made.
    public func decide(
        batch checks: [Check], stop: (Decision?) -> Bool = { _ in false }, pacer: inout Pacer, decided: (Decision) -> Void = { _ in }
    ) async throws -> [Decision?] {
        var reads = ReadThrough(asking: checks.lazy.filter { $0.consistency == .strong }.compactMap { c in c.subject.map { (c.object.orgID, $0.principal) } })
        var results: [Decision?] = []
        results.reserveCapacity(checks.count)
        for check in checks {
            try await pacer.step()
            guard let subject = check.subject else {
                results.append(nil)
                if stop(nil) { break }
                continue
            }
            let d = try await decide(subject, check.object, check.requirement, consistency: check.consistency, reads: &reads)
            decided(d)
            results.append(d)
            if stop(d) { break }
        }
        return results
    }

    /// The subject's grants come from the database at either consistency: the cache keeps what
    /// decisions need, not where each membership came from (its audit event), which explain shows.
    public func explain(_ subject: Subject, _ object: ObjectRef, _ required: Requirement) async throws -> Explanation {
        let grants = try await cache.loader.grants(orgID: object.orgID, of: subject.principal)
        return DecisionEngine.explain(grants, subject: subject, object: object, required: required, now: now().instant)
    }

    /// The subject's effective role on the object and every permission it holds there.
    public func capabilities(_ subject: Subject, _ object: ObjectRef, consistency: Consistency = .cached) async throws -> (Role?, [String]) {
        var reads = ReadThrough()
        return try await capabilities(subject, object, consistency: consistency, reads: &reads)
    }

    public func capabilities(_ subject: Subject, _ object: ObjectRef, consistency: Consistency, reads: inout ReadThrough) async throws -> (Role?, [String]) {
        let grants = try await grants(object.orgID, for: subject.principal, consistency, &reads)
        return DecisionEngine.capabilities(grants, subject: subject, object: object, table: permissions, now: now().instant)
    }
}
