import Authority
import Foundation
import Tenancy
import Memberwise

/// Overrides (SPEC §17): explicit allows and denies of one permission on a resource and below,
/// at `/v1/orgs/{org_id}/overrides`, for admins (`bindings.write`). The rank rules:
/// - an override names a principal strictly below the actor (a user or service account that is
///   a current member, or a group whose every member is below the actor and whose reach the
///   actor's role covers); the root may name anyone;
/// - an allow may grant only a permission the actor's own role holds, and lifting a deny
///   likewise (it gives back what the deny took);
/// - one override per (subject, resource, permission): delete it to change it.
/// How overrides meet roles, key scopes and the last-owner rule is the engine's (`DecisionEngine`).
public struct OverrideService: Sendable {
    public let store: any GroupStore
    public let tenancy: TenancyService
    public let quotas: GroupQuotas
    let now: @Sendable () -> Date

    public static let maxReason = 500

    public init(store: any GroupStore, tenancy: TenancyService, quotas: GroupQuotas = GroupQuotas(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.tenancy = tenancy
        self.quotas = quotas
        self.now = now
    }

    public func list(actor: Actor, orgID: UUID, limit: Int, offset: Int) async throws -> ([Override], Int) {
        _ = try await tenancy.access(Permission.bindingsWrite, actor: actor, orgID: orgID)
        return try await store.overrides(orgID: orgID, limit: limit, offset: offset)
    }

    @PublicInit
    public struct Fields: Sendable {
        public var subject: Principal
        public var resource: String
        public var permission: String
        public var effect: OverrideGrant.Effect
        public var expiresAt: Date?
        public var reason: String
    }

    public func create(actor: Actor, orgID: UUID, fields: Fields) async throws -> (Override, Int64) {
        let object: ObjectRef
        do { object = try Binding.resource(fields.resource, in: orgID) } catch .invalid(let m) { throw GroupError.invalid(m) } catch { throw GroupError.invalid("\(error)") }
        guard let least = tenancy.permissions.role(for: fields.permission) else {
            throw GroupError.invalid("permission must be one of GET /v1/permissions (a role name cannot be overridden)")
        }
        let reason = fields.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else { throw GroupError.invalid("reason is required: say why this override exists") }
        guard reason.unicodeScalars.count <= Self.maxReason else { throw GroupError.invalid("reason must be at most \(Self.maxReason) characters") }
        let at = now()
        if let expiresAt = fields.expiresAt, expiresAt <= at { throw GroupError.invalid("expires_at must be in the future") }
        return try await store.writeGroups(lockingOrg: orgID) { tx, groups in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.bindingsWrite, actor: actor, orgID: orgID, in: tx, at: at)
            if fields.effect == .allow, !actor.isRoot, !RankRules.mayGrant(actor: actorRole, role: least) {
                throw GroupError.forbidden("you may allow only permissions your own role holds")
            }
            try await Self.mayName(fields.subject, actor: actor, actorRole, orgID: orgID, at: at, groups, tenancy.permissions, required: true)
            guard try await groups.override(orgID: orgID, subject: fields.subject, path: object.path, permission: fields.permission) == nil else {
                throw GroupError.conflict(code: "conflict", "this subject already has an override of \(fields.permission) on this resource; delete it first")
            }
            guard try await groups.overrideCount(orgID: orgID) < quotas.overridesPerOrg else {
                throw GroupError.quotaExceeded("this org holds \(quotas.overridesPerOrg) overrides, its quota; delete some first")
            }
            let id = UUID()
            var details: [String: JSONValue] = [
                "subject": .string(fields.subject.label), "resource": .string(object.string), "permission": .string(fields.permission),
                "effect": .string(fields.effect.rawValue), "reason": .string(reason),
            ]
            if let expiresAt = fields.expiresAt { details["expires_at"] = .string(TenancyService.timestamp(expiresAt)) }
            let event = TenancyService.event(actor, at: at, AuditAction.overrideCreated, org: orgID, target: Self.target(id), details, viaRoot: viaRoot)
            let override = Override(id: id, orgID: orgID, subject: fields.subject, resource: object, permission: fields.permission, effect: fields.effect,
                                    expiresAt: fields.expiresAt, reason: reason, createdAt: at, auditEventID: event.id)
            try await groups.insertOverride(override)
            try await tx.appendAudit(event)
            return (override, try await tx.recordChange(.overrideChanged(org: orgID), at: at))
        }
    }

    public func remove(actor: Actor, orgID: UUID, overrideID: UUID) async throws -> Int64 {
        let at = now()
        return try await store.writeGroups(lockingOrg: orgID) { tx, groups in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.bindingsWrite, actor: actor, orgID: orgID, in: tx, at: at)
            guard let o = try await groups.override(id: overrideID, orgID: orgID) else { throw GroupError.notFound("no such override") }
            if o.effect == .deny, !actor.isRoot, let least = tenancy.permissions.role(for: o.permission), !RankRules.mayGrant(actor: actorRole, role: least) {
                throw GroupError.forbidden("lifting this deny would give back \(o.permission), which your role does not hold")
            }
            try await Self.mayName(o.subject, actor: actor, actorRole, orgID: orgID, at: at, groups, tenancy.permissions, required: false)
            try await groups.deleteOverride(id: overrideID)
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.overrideRemoved, org: orgID, target: Self.target(overrideID),
                ["subject": .string(o.subject.label), "resource": .string(o.resource.string), "permission": .string(o.permission),
                 "effect": .string(o.effect.rawValue)],
                viaRoot: viaRoot))
            return try await tx.recordChange(.overrideChanged(org: orgID), at: at)
        }
    }

    static func target(_ id: UUID) -> String { "override:\(id.lowercasedString)" }

    /// The subject lies strictly below the actor: its membership role, or for a group every
    /// member's and what the group confers. `required`: the subject must exist (creating).
    static func mayName(
        _ subject: Principal, actor: Actor, _ actorRole: Role, orgID: UUID, at: Date, _ groups: any GroupWriter, _ permissions: PermissionTable, required: Bool
    ) async throws {
        var people: [Principal] = [subject]
        if case .group(let id) = subject {
            let tree = try await groups.tree(orgID: orgID, permissions: permissions)
            guard tree.contains(id) else {
                if required { throw GroupError.invalid("subject.group_id is not a group of this org") }
                return
            }
            try GroupService.mayReach(actor, actorRole, tree.reach(of: id), "this group")
            people = Array(tree.people(in: id))
        }
        for person in people {
            let role = try await groups.memberRole(person, orgID: orgID, at: at)
            if role == nil, required, person == subject {
                throw GroupError.invalid("the subject is not a current member of this org")
            }
            if actor.isRoot { continue }
            if person == actor.subject.principal { throw GroupError.forbidden("you may not set overrides on yourself or a group you are in") }
            if let role, role >= actorRole {
                throw GroupError.forbidden("overrides may name only principals below your role")
            }
        }
    }
}
