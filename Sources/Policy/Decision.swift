import Authority
import Foundation
import Tenancy
import Memberwise

/// The answer to "may this subject do this action on this object?".
///
/// The reason is kept as a small value and turned into text only when asked for: a decision
/// made millions of times a second must not build a string each time.
@PublicInit
public struct Decision: Sendable, Equatable {
    public enum Why: Sendable, Equatable {
        case noGrant
        case outOfScope
        case allowed(action: String, needs: Role)
        case below(action: String, needs: Role, capped: Bool)
        /// An override denies the permission on the object or an ancestor.
        case deniedByOverride(action: String)
        /// An override allows the permission where the role does not reach.
        case allowedByOverride(action: String)
        case text(String)
    }

    public var allowed: Bool
    /// The subject's effective role on the object (after key scopes), nil when it has none.
    public var role: Role?
    public var why: Why

    public init(allowed: Bool, role: Role?, reason: String) {
        self.init(allowed: allowed, role: role, why: .text(reason))
    }

    /// Short human text.
    public var reason: String {
        var text = ""
        forEachReasonPiece { text += $0 }
        return text
    }

    /// The reason's text in pieces, in order: a writer streams it without building a string
    /// (a batch writes a thousand reasons a request).
    public func forEachReasonPiece(_ piece: (String) -> Void) {
        let held = role?.rawValue ?? ""
        switch why {
        case .noGrant: piece(DecisionEngine.noGrant)
        case .outOfScope: piece("the key's scopes do not include this org")
        case .allowed(let action, let needs) where action == needs.rawValue:
            piece(held); piece(" is at least "); piece(action)
        case .allowed(let action, let needs):
            piece(held); piece(" may "); piece(action); piece(" (needs "); piece(needs.rawValue); piece(")")
        case .below(let action, let needs, let capped):
            piece(held)
            if capped { piece(" (capped by the key's scopes)") }
            piece(" is below "); piece(needs.rawValue); piece(", needed for "); piece(action)
        case .deniedByOverride(let action): piece("an override denies "); piece(action); piece(" here")
        case .allowedByOverride(let action): piece("an override allows "); piece(action); piece(" here")
        case .text(let text): piece(text)
        }
    }
}

/// One grant on a decision's path, for `explain`.
public struct GrantOnPath: Sendable, Equatable {
    public enum Kind: String, Sendable { case membership, binding, override }
    public var kind: Kind
    /// The role a membership or binding gives; nil for an override.
    public var role: Role?
    /// The object the grant is on (the org for memberships).
    public var resource: String
    public var bindingID: UUID?
    /// The group whose binding or override this is, and the chain that makes the subject one of
    /// its members: the subject's own group first, then each parent up to this group.
    public var groupID: UUID?
    public var via: [UUID] = []
    public var overrideID: UUID?
    public var effect: OverrideGrant.Effect?
    public var permission: String?
    public var reason: String?
    public var expiresAt: Instant
    public var auditEventID: UUID?
    /// Whether this grant is the one the decision came from.
    public var decisive: Bool
}

/// A decision with the grants that made it.
public struct Explanation: Sendable, Equatable {
    public var decision: Decision
    public var requiredRole: Role
    public var grants: [GrantOnPath]
    /// The names of the groups the grants mention.
    public var groupNames: [UUID: String] = [:]
}

/// A resolved action: the least role that performs it.
public struct Requirement: Sendable, Equatable {
    public var action: String
    public var role: Role
    /// Whether the action names a permission (which overrides may allow or deny) rather than a role.
    public var isPermission: Bool

    public init(action: String, role: Role) {
        self.action = action
        self.role = role
        isPermission = Role(rawValue: action) == nil
    }
}

/// Pure decision logic over one org's grants (SPEC §5, §17):
/// 1. the held role is the highest current one from the membership, the subject's bindings and
///    the bindings of every group it is in (directly or nested), on the object or an ancestor;
/// 2. for a permission, an override on the object or an ancestor then decides: a deny refuses
///    whatever the role says, else an allow grants; a role name is never overridden;
/// 3. a key's scopes narrow last: the org must be in them, and the role or the allowed
///    permission must lie within the key's role cap.
/// A deny never takes an owner-level permission from a current owner: no override can leave an
/// org without an owner able to manage owners.
public enum DecisionEngine {
    public static let noGrant = "no current membership or binding grants access"

    /// What the overrides on the path say of one permission.
    struct Verdict {
        var allow: OverrideGrant?
        var deny: OverrideGrant?
    }

    @inline(__always)
    static func verdict(_ grants: OrgGrants, _ subject: Subject, _ object: ObjectRef, _ required: Requirement, now: Instant) -> Verdict {
        var v = Verdict()
        guard required.isPermission, !grants.overrideHolders.isEmpty else { return v }
        for (_, o) in grants.overrides(of: subject.principal, on: object.path, at: now) where o.permission == required.action {
            if o.effect == .deny { v.deny = v.deny ?? o } else { v.allow = v.allow ?? o }
        }
        if v.deny != nil, ownerExempt(grants, subject.principal, least: required.role, now: now) { v.deny = nil }
        return v
    }

    /// The last-owner rule's part in overrides: a current owner keeps every owner-level permission.
    @inline(__always)
    static func ownerExempt(_ grants: OrgGrants, _ principal: Principal, least: Role, now: Instant) -> Bool {
        guard least == .owner, let m = grants.members[principal] else { return false }
        return m.role == .owner && m.expiresAt > now
    }

    @inline(__always)
    public static func decide(_ grants: OrgGrants?, subject: Subject, object: ObjectRef, required: Requirement, now: Instant) -> Decision {
        // An unknown org and an org without a grant for the subject read the same: ids cannot be probed.
        guard let grants else { return Decision(allowed: false, role: nil, why: .noGrant) }
        let held = grants.role(of: subject.principal, on: object.path, at: now)
        let v = verdict(grants, subject, object, required, now: now)
        guard held != nil || v.allow != nil else { return Decision(allowed: false, role: nil, why: .noGrant) }
        if let orgs = subject.scopes?.orgs, !orgs.contains(object.orgID) {
            return Decision(allowed: false, role: nil, why: .outOfScope)
        }
        let role = subject.scopes.map { $0.narrow(held, in: object.orgID) } ?? held
        if v.deny != nil {
            return Decision(allowed: false, role: role, why: .deniedByOverride(action: required.action))
        }
        if let role, role >= required.role {
            return Decision(allowed: true, role: role, why: .allowed(action: required.action, needs: required.role))
        }
        if v.allow != nil, subject.scopes?.roleCap.map({ $0 >= required.role }) ?? true {
            return Decision(allowed: true, role: role, why: .allowedByOverride(action: required.action))
        }
        guard let role else { return Decision(allowed: false, role: nil, why: .noGrant) }
        return Decision(allowed: false, role: role, why: .below(action: required.action, needs: required.role, capped: held.map { role < $0 } ?? false))
    }

    /// The subject's effective role on the object (after its scopes) and every permission it holds there.
    public static func capabilities(_ grants: OrgGrants?, subject: Subject, object: ObjectRef, table: PermissionTable, now: Instant) -> (Role?, [String]) {
        guard let grants else { return (nil, []) }
        if let orgs = subject.scopes?.orgs, !orgs.contains(object.orgID) { return (nil, []) }
        let held = grants.role(of: subject.principal, on: object.path, at: now)
        let role = subject.scopes.map { $0.narrow(held, in: object.orgID) } ?? held
        var permissions = role.map(table.permissions(of:)) ?? []
        let overrides = grants.overrides(of: subject.principal, on: object.path, at: now)
        guard !overrides.isEmpty else { return (role, permissions) }
        var held_ = Set(permissions)
        let cap = subject.scopes?.roleCap
        for (_, o) in overrides where o.effect == .allow {
            if let least = table.role(for: o.permission), cap.map({ $0 >= least }) ?? true { held_.insert(o.permission) }
        }
        for (_, o) in overrides where o.effect == .deny {
            if let least = table.role(for: o.permission), !ownerExempt(grants, subject.principal, least: least, now: now) { held_.remove(o.permission) }
        }
        permissions = held_.sorted()
        return (role, permissions)
    }

    /// The grants of `subject` that lie on `object`'s path, with the decisive one marked.
    public static func explain(_ grants: OrgGrants?, subject: Subject, object: ObjectRef, required: Requirement, now: Instant) -> Explanation {
        let decision = decide(grants, subject: subject, object: object, required: required, now: now)
        var sources: [GrantOnPath] = []
        let orgString = ObjectRef(orgID: object.orgID).string
        // A key scoped away from this org holds nothing here, and shows nothing of its owner's grants.
        let inScope = subject.scopes?.orgs.map { $0.contains(object.orgID) } ?? true
        if let grants, inScope {
            let principal = subject.principal
            if let m = grants.members[principal] {
                sources.append(GrantOnPath(kind: .membership, role: m.role, resource: orgString, expiresAt: m.expiresAt, auditEventID: m.auditEventID, decisive: false))
            }
            // The same index walk as the decision: the object's ancestors, never every binding held.
            var probes = 0
            grants.forEachBinding(of: principal, onPathTo: object.path, probes: &probes) { b in
                sources.append(GrantOnPath(kind: .binding, role: b.role, resource: orgString + b.path, bindingID: b.id,
                                           expiresAt: b.expiresAt, auditEventID: b.auditEventID, decisive: false))
            }
            // Each group the subject is in now, with the chain that makes it a member.
            let memberNow = grants.members[principal].map { $0.expiresAt > now } ?? false
            var seen = Set<UUID>()
            for edge in grants.groupEdges[principal] ?? [] where memberNow && edge.expiresAt > now {
                var chain: [UUID] = []
                for g in grants.ancestry(of: edge.group) {
                    chain.append(g)
                    guard seen.insert(g).inserted else { continue }
                    grants.forEachBinding(of: .group(g), onPathTo: object.path, probes: &probes) { b in
                        sources.append(GrantOnPath(kind: .binding, role: b.role, resource: orgString + b.path, bindingID: b.id, groupID: g, via: chain,
                                                   expiresAt: min(b.expiresAt, edge.expiresAt), auditEventID: b.auditEventID, decisive: false))
                    }
                }
            }
            if required.isPermission {
                for (holder, o) in grants.overrides(of: principal, on: object.path, at: now) where o.permission == required.action {
                    var via: [UUID] = []
                    if case .group(let g) = holder {
                        // The shortest chain from one of the subject's own groups up to the holder.
                        via = (grants.groupEdges[principal] ?? []).lazy.filter { $0.expiresAt > now }.map { grants.ancestry(of: $0.group) }
                            .compactMap { chain in chain.firstIndex(of: g).map { Array(chain[...$0]) } }.min { $0.count < $1.count } ?? [g]
                    }
                    sources.append(GrantOnPath(kind: .override, role: nil, resource: orgString + o.path, groupID: via.last, via: via,
                                               overrideID: o.id, effect: o.effect, permission: o.permission, reason: o.reason,
                                               expiresAt: o.expiresAt, auditEventID: o.auditEventID, decisive: false))
                }
            }
        }
        // The decisive grant: the override that decided, else the highest current role (the membership wins a tie).
        switch decision.why {
        case .deniedByOverride, .allowedByOverride:
            let effect: OverrideGrant.Effect = decision.allowed ? .allow : .deny
            if let i = sources.firstIndex(where: { $0.kind == .override && $0.effect == effect }) { sources[i].decisive = true }
        default:
            let current = sources.indices.filter { sources[$0].role != nil && sources[$0].expiresAt > now }
            if let best = current.max(by: { sources[$0].role! < sources[$1].role! || (sources[$0].role! == sources[$1].role! && $0 > $1) }) {
                sources[best].decisive = true
            }
        }
        var names: [UUID: String] = [:]
        for g in sources.flatMap({ $0.via + ($0.groupID.map { [$0] } ?? []) }) { names[g] = grants?.groupNames[g] }
        return Explanation(decision: decision, requiredRole: required.role, grants: sources, groupNames: names)
    }
}
