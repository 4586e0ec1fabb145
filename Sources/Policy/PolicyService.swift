import Foundation
import Tenancy

public enum Consistency: String, Sendable {
    /// From memory (the default): exact locally at once, on other nodes within the propagation bound.
    case cached
    /// Reads the org's grants from the database for this decision.
    case strong
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

    public func requirement(_ action: String) throws(PolicyError) -> Requirement {
        try permissions.requirement(for: action)
    }

    func grants(_ org: UUID, _ consistency: Consistency) async throws -> OrgGrants? {
        switch consistency {
        case .cached: return try await cache.grants(org)
        case .strong: return try await cache.loader.grants(orgID: org)
        }
    }

    public func decide(_ subject: Subject, _ object: ObjectRef, _ required: Requirement, consistency: Consistency = .cached) async throws -> Decision {
        if consistency == .cached, let hit = cache.cached(object.orgID) {
            return DecisionEngine.decide(hit, subject: subject, object: object, required: required, now: now().instant)
        }
        let grants = try await grants(object.orgID, consistency)
        return DecisionEngine.decide(grants, subject: subject, object: object, required: required, now: now().instant)
    }

    public func explain(_ subject: Subject, _ object: ObjectRef, _ required: Requirement, consistency: Consistency = .cached) async throws -> Explanation {
        let grants = try await grants(object.orgID, consistency)
        return DecisionEngine.explain(grants, subject: subject, object: object, required: required, now: now().instant)
    }

    /// The subject's effective role on the object and every permission it holds there.
    public func capabilities(_ subject: Subject, _ object: ObjectRef, consistency: Consistency = .cached) async throws -> (Role?, [String]) {
        let grants = try await grants(object.orgID, consistency)
        guard let held = grants?.role(of: subject.principal, on: object.path, at: now().instant) else { return (nil, []) }
        guard let role = subject.scopes.map({ $0.narrow(held, in: object.orgID) }) ?? held else { return (nil, []) }
        return (role, permissions.permissions(of: role))
    }
}
