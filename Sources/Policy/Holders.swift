import Authority
import Foundation
import Tenancy

extension OrgGrants {
    /// Every principal of `type` ("user" or "service_account") the engine allows `required` on
    /// the object, with its role there, ordered by id (stable pages). One pass over the org's
    /// principals (members, bound, in a group, or holding an override), each decided as a check would be.
    public func holders(on object: ObjectRef, holding required: Requirement, type: String, at now: Instant) -> [(principal: Principal, role: Role?)] {
        var candidates = Set(members.keys)
        candidates.formUnion(bindingCeiling.keys)
        candidates.formUnion(groupEdges.keys)
        candidates.formUnion(overrideHolders)
        var found: [(principal: Principal, role: Role?)] = []
        for principal in candidates where principal.typeName == type {
            let d = DecisionEngine.decide(self, subject: Subject(principal: principal), object: object, required: required, now: now)
            if d.allowed { found.append((principal, d.role)) }
        }
        // Sorted on keys made once, not on a string made at each comparison.
        return found.map { ($0.principal.id.uuidString, $0) }.sorted { $0.0 < $1.0 }.map(\.1)
    }
}

extension PolicyService {
    /// Who holds `required` on `object` (AuthZEN's subject search): the org's grants as the
    /// cache or, for `strong`, the database has them.
    public func holders(of object: ObjectRef, holding required: Requirement, type: String, consistency: Consistency) async throws -> [(principal: Principal, role: Role?)] {
        let grants: OrgGrants?
        switch consistency {
        case .cached: grants = try await cache.grants(object.orgID)
        case .strong: grants = try await cache.loader.grants(orgID: object.orgID)
        }
        return grants?.holders(on: object, holding: required, type: type, at: now().instant) ?? []
    }
}

extension Authorizer {
    /// The principals of `type` that hold `required` on `object`. It answers about others, so
    /// it needs the root, or an `authz:check` asker that administers the object's org.
    public func holders(of object: ObjectRef, holding required: Requirement, type: String, by asker: Actor) async throws -> [(principal: Principal, role: Role?)] {
        if !asker.isRoot {
            guard asker.mayAskAboutOthers else { throw AuthorizerError.mayNotAskAboutOthers }
            guard try await administers(asker, object.orgID) else { throw AuthorizerError.notAdministered }
        }
        let consistency = try await settle(.cached, atLeast: nil)
        return try await policy.holders(of: object, holding: required, type: type, consistency: consistency)
    }
}
