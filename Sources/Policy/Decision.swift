import Authority
import Foundation
import Tenancy

/// The answer to "may this subject do this action on this object?".
///
/// The reason is kept as a small value and turned into text only when asked for: a decision
/// made millions of times a second must not build a string each time.
public struct Decision: Sendable, Equatable {
    public enum Why: Sendable, Equatable {
        case noGrant
        case outOfScope
        case allowed(action: String, needs: Role)
        case below(action: String, needs: Role, capped: Bool)
        case text(String)
    }

    public var allowed: Bool
    /// The subject's effective role on the object (after key scopes), nil when it has none.
    public var role: Role?
    public var why: Why

    public init(allowed: Bool, role: Role?, why: Why) {
        self.allowed = allowed
        self.role = role
        self.why = why
    }

    public init(allowed: Bool, role: Role?, reason: String) {
        self.init(allowed: allowed, role: role, why: .text(reason))
    }

    /// Short human text.
    public var reason: String {
        switch why {
        case .noGrant: return DecisionEngine.noGrant
        case .outOfScope: return "the key's scopes do not include this org"
        case .allowed(let action, let needs): return "\(role?.rawValue ?? "") may \(action) (needs \(needs.rawValue))"
        case .below(let action, let needs, let capped):
            return "\(role?.rawValue ?? "")\(capped ? " (capped by the key's scopes)" : "") is below \(needs.rawValue), needed for \(action)"
        case .text(let text): return text
        }
    }
}

/// One grant on a decision's path, for `explain`.
public struct GrantOnPath: Sendable, Equatable {
    public enum Kind: String, Sendable { case membership, binding }
    public var kind: Kind
    public var role: Role
    /// The object the grant is on (the org for memberships).
    public var resource: String
    public var bindingID: UUID?
    public var expiresAt: Instant
    public var auditEventID: UUID?
    /// Whether this grant is the one the effective role came from.
    public var decisive: Bool
}

/// A decision with the grants that made it.
public struct Explanation: Sendable, Equatable {
    public var decision: Decision
    public var requiredRole: Role
    public var grants: [GrantOnPath]
}

/// A resolved action: the least role that performs it.
public struct Requirement: Sendable, Equatable {
    public var action: String
    public var role: Role

    public init(action: String, role: Role) {
        self.action = action
        self.role = role
    }
}

/// Pure decision logic over one org's grants.
public enum DecisionEngine {
    public static let noGrant = "no current membership or binding grants access"

    @inline(__always)
    public static func decide(_ grants: OrgGrants?, subject: Subject, object: ObjectRef, required: Requirement, now: Instant) -> Decision {
        // An unknown org and an org without a grant for the subject read the same: ids cannot be probed.
        guard let held = grants?.role(of: subject.principal, on: object.path, at: now) else {
            return Decision(allowed: false, role: nil, why: .noGrant)
        }
        let role = subject.scopes.map { $0.narrow(held, in: object.orgID) } ?? held
        guard let role else {
            return Decision(allowed: false, role: nil, why: .outOfScope)
        }
        if role >= required.role {
            return Decision(allowed: true, role: role, why: .allowed(action: required.action, needs: required.role))
        }
        return Decision(allowed: false, role: role, why: .below(action: required.action, needs: required.role, capped: role < held))
    }

    /// The grants of `subject` that lie on `object`'s path, with the decisive one marked.
    public static func explain(_ grants: OrgGrants?, subject: Subject, object: ObjectRef, required: Requirement, now: Instant) -> Explanation {
        let decision = decide(grants, subject: subject, object: object, required: required, now: now)
        var sources: [GrantOnPath] = []
        let orgString = ObjectRef(orgID: object.orgID).string
        // A key scoped away from this org holds nothing here, and shows nothing of its owner's grants.
        let inScope = subject.scopes?.orgs.map { $0.contains(object.orgID) } ?? true
        if let grants, inScope {
            if let m = grants.members[subject.principal] {
                sources.append(GrantOnPath(kind: .membership, role: m.role, resource: orgString, bindingID: nil,
                                           expiresAt: m.expiresAt, auditEventID: m.auditEventID, decisive: false))
            }
            // The same index walk as the decision: the object's ancestors, never every binding held.
            var probes = 0
            grants.forEachBinding(of: subject.principal, onPathTo: object.path, probes: &probes) { b in
                sources.append(GrantOnPath(kind: .binding, role: b.role, resource: orgString + b.path, bindingID: b.id,
                                           expiresAt: b.expiresAt, auditEventID: b.auditEventID, decisive: false))
            }
        }
        // The decisive grant: the highest current one (the membership wins a tie).
        let current = sources.indices.filter { sources[$0].expiresAt > now }
        if let best = current.max(by: { sources[$0].role < sources[$1].role || (sources[$0].role == sources[$1].role && $0 > $1) }) {
            sources[best].decisive = true
        }
        return Explanation(decision: decision, requiredRole: required.role, grants: sources)
    }
}
