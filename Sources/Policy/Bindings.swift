import Authority
import Foundation
import Tenancy
import Memberwise

/// A role on one object of an org (and everything below it), for a user or service account.
@PublicInit
public struct Binding: Sendable, Equatable {
    public var id: UUID
    public var orgID: UUID
    public var principal: Principal
    public var resource: ObjectRef
    public var role: Role
    public var expiresAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var auditEventID: UUID?
}

/// Reads and org-locked writes of bindings. Implemented by the Storage module.
public protocol BindingStore: Sendable {
    func bindings(orgID: UUID, limit: Int, offset: Int) async throws -> ([Binding], Int)
    /// Runs `body` in one transaction with the org row locked, with tenancy and binding statements.
    func writeBindings<T: Sendable>(lockingOrg orgID: UUID, _ body: @escaping @Sendable (any TenancyWriter, any BindingWriter) async throws -> T) async throws -> T
}

public protocol BindingWriter: Sendable {
    func binding(id: UUID, orgID: UUID) async throws -> Binding?
    func binding(orgID: UUID, principal: Principal, resourcePath: String) async throws -> Binding?
    func upsertBinding(_ binding: Binding) async throws
    func deleteBinding(id: UUID) async throws
    /// Whether the principal may hold a binding in the org: an existing user, or one of the org's service accounts.
    func principalExists(_ principal: Principal, orgID: UUID) async throws -> Bool
    /// Bindings in the org, and those of one principal in it (counted under the org's lock).
    func bindingCount(orgID: UUID) async throws -> Int
    func bindingCount(orgID: UUID, principal: Principal) async throws -> Int
}

/// How many bindings an org, and one principal in an org, may hold (SPEC §18). Every check and
/// lookup is bounded by these too: they cap what one tenant can make another account carry.
@PublicInit
public struct BindingQuotas: Sendable, Equatable {
    public var perOrg: Int = defaultPerOrg
    public var perPrincipal: Int = defaultPerPrincipal

    public static let defaultPerOrg = 10_000
    public static let defaultPerPrincipal = 1_000
}

/// Why a binding write was refused (mapped to a problem at the HTTP edge).
public enum BindingError: Error, Sendable, Equatable {
    /// A field failed validation (400).
    case invalid(String)
    /// The caller's role does not reach the binding (403).
    case forbidden(String)
    /// No such binding (404).
    case notFound(String)
    /// The org's or principal's binding quota is full (409 `quota_exceeded`).
    case quotaExceeded(String)
}

extension Binding {
    /// A binding's resource: the org or an object inside it. A binding on the org object
    /// grants its role over the whole org in decisions, but is not a membership: only a
    /// membership makes someone part of the org (its routes, asking about others there).
    public static func resource(_ text: String, in org: UUID) throws(BindingError) -> ObjectRef {
        let object: ObjectRef
        do { object = try ObjectRef.parse(text) } catch { throw .invalid(error.message) }
        guard object.orgID == org else { throw .invalid("resource must lie in this org (org:\(org.lowercasedString)…)") }
        return object
    }
}

/// `PUT/GET/DELETE /v1/orgs/{org_id}/bindings`: admin+ (`bindings.write`), never above one's own role.
public struct BindingService: Sendable {
    public let store: any BindingStore
    public let tenancy: TenancyService
    public let quotas: BindingQuotas
    let now: @Sendable () -> Date

    public init(store: any BindingStore, tenancy: TenancyService, quotas: BindingQuotas = BindingQuotas(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.tenancy = tenancy
        self.quotas = quotas
        self.now = now
    }

    public func list(actor: Actor, orgID: UUID, limit: Int, offset: Int) async throws -> ([Binding], Int) {
        _ = try await tenancy.access(Permission.bindingsWrite, actor: actor, orgID: orgID)
        return try await store.bindings(orgID: orgID, limit: limit, offset: offset)
    }

    /// Creates or replaces the binding of (principal, resource). Returns it, whether it is new, and the revision.
    public func set(actor: Actor, orgID: UUID, principal: Principal, resource: String, role: Role, expiresAt: Date?) async throws -> (Binding, created: Bool, revision: Int64) {
        let object = try Binding.resource(resource, in: orgID)
        let at = now()
        if let expiresAt, expiresAt <= at { throw BindingError.invalid("expires_at must be in the future") }
        return try await store.writeBindings(lockingOrg: orgID) { tx, bindings in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.bindingsWrite, actor: actor, orgID: orgID, in: tx, at: at)
            guard RankRules.mayGrant(actor: actorRole, role: role) else { throw BindingError.forbidden("you may bind only roles up to your own") }
            guard try await bindings.principalExists(principal, orgID: orgID) else {
                throw BindingError.invalid("the subject is not a user, nor a service account or group of this org")
            }
            let existing = try await bindings.binding(orgID: orgID, principal: principal, resourcePath: object.path)
            if let existing, !RankRules.mayManageGrant(actor: actorRole, grant: existing.role) {
                throw BindingError.forbidden("this binding grants more than your role; only a higher role may replace it")
            }
            // Only a new binding can pass a quota; replacing one never adds. Counted under the org's
            // lock, so concurrent writes cannot both slip in under the limit.
            if existing == nil {
                if try await bindings.bindingCount(orgID: orgID) >= quotas.perOrg {
                    throw BindingError.quotaExceeded("this org holds \(quotas.perOrg) bindings, its quota; remove some first")
                }
                if try await bindings.bindingCount(orgID: orgID, principal: principal) >= quotas.perPrincipal {
                    throw BindingError.quotaExceeded("this subject holds \(quotas.perPrincipal) bindings in this org, its quota; remove some first")
                }
            }
            var details: [String: JSONValue] = [
                "subject": .string("\(principal.typeName):\(principal.id.lowercasedString)"), "resource": .string(object.string), "role": .string(role.rawValue),
            ]
            if let expiresAt { details["expires_at"] = .string(TenancyService.timestamp(expiresAt)) }
            if let existing { details["previous_role"] = .string(existing.role.rawValue) }
            let id = existing?.id ?? UUID()
            let event = TenancyService.event(actor, at: at, AuditAction.bindingSet, org: orgID, target: "binding:\(id.lowercasedString)", details, viaRoot: viaRoot)
            let binding = Binding(
                id: id, orgID: orgID, principal: principal, resource: object, role: role, expiresAt: expiresAt,
                createdAt: existing?.createdAt ?? at, updatedAt: at, auditEventID: event.id)
            try await bindings.upsertBinding(binding)
            try await tx.appendAudit(event)
            let revision = try await tx.recordChange(.bindingChanged(org: orgID), at: at)
            return (binding, existing == nil, revision)
        }
    }

    public func remove(actor: Actor, orgID: UUID, bindingID: UUID) async throws -> Int64 {
        let at = now()
        return try await store.writeBindings(lockingOrg: orgID) { tx, bindings in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.bindingsWrite, actor: actor, orgID: orgID, in: tx, at: at)
            guard let binding = try await bindings.binding(id: bindingID, orgID: orgID) else { throw BindingError.notFound("no such binding") }
            guard RankRules.mayManageGrant(actor: actorRole, grant: binding.role) else { throw BindingError.forbidden("this binding grants more than your role") }
            try await bindings.deleteBinding(id: bindingID)
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.bindingRemoved, org: orgID, target: "binding:\(bindingID.lowercasedString)",
                ["subject": .string("\(binding.principal.typeName):\(binding.principal.id.lowercasedString)"),
                 "resource": .string(binding.resource.string), "role": .string(binding.role.rawValue)],
                viaRoot: viaRoot))
            return try await tx.recordChange(.bindingChanged(org: orgID), at: at)
        }
    }
}
