import Authority
import Foundation
import Memberwise

/// An organization: the tenant that owns memberships, invites, bindings and keys.
@PublicInit
public struct Org: Sendable, Equatable {
    public var id: UUID
    public var name: String
    public var description: String
    public var metadata: [String: JSONValue]
    public var createdAt: Date
    public var updatedAt: Date
    /// `settings.max_key_ttl`: keys scoped to this org live at most this many seconds.
    public var maxKeyTTL: Int?
}

/// An org together with the caller's current role in it (nil: the root looking at an org it is not in).
@PublicInit
public struct OrgView: Sendable, Equatable {
    public var org: Org
    public var role: Role?
}

/// A user's role in an org; with `expiresAt` it is a time-bound grant that stops counting after it.
@PublicInit
public struct Membership: Sendable, Equatable {
    public var orgID: UUID
    public var userID: UUID
    public var role: Role
    public var expiresAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
    /// The audit event that last set this membership (for `explain`).
    public var auditEventID: UUID?

    /// Whether the membership counts at `now`.
    public func isCurrent(at now: Date) -> Bool {
        expiresAt.map { $0 > now } ?? true
    }
}

/// A membership with the member's user details, as listed.
@PublicInit
public struct Member: Sendable, Equatable {
    public var membership: Membership
    public var email: String
    public var name: String
}

/// Just enough of a user to add them to an org.
@PublicInit
public struct UserRef: Sendable, Equatable {
    public var id: UUID
    public var email: String
    public var name: String
    public var emailVerified: Bool = false
}

/// Who does something: a user in a session, a user through an API key (narrowed by its
/// scopes), or an org's service account. The same principal-plus-scopes `Subject` that
/// decisions are made for, so scope narrowing exists once (`KeyScopes.narrow`).
@PublicInit
public struct Actor: Sendable, Equatable {
    public var subject: Subject
    public var isRoot: Bool
    /// A service account's one grant: its org and role.
    public var serviceAccountGrant: ServiceAccountGrant?

    @PublicInit
    public struct ServiceAccountGrant: Sendable, Equatable {
        public var orgID: UUID
        public var role: Role
    }

    public static func user(_ id: UUID, isRoot: Bool, scopes: KeyScopes? = nil) -> Actor {
        Actor(subject: Subject(principal: .user(id), scopes: scopes), isRoot: isRoot)
    }

    public static func serviceAccount(_ id: UUID, scopes: KeyScopes?, grant: ServiceAccountGrant) -> Actor {
        Actor(subject: Subject(principal: .serviceAccount(id), scopes: scopes), isRoot: false, serviceAccountGrant: grant)
    }

    /// "user" or "service_account", as audit entries name actors.
    public var type: String { subject.principal.typeName }
    public var id: UUID { subject.principal.id }
    /// The user whose org memberships count for this actor (for a service account: its own id,
    /// which has no memberships).
    public var userID: UUID { subject.principal.id }
    /// A key's `org:` scopes: the only orgs it may act in (nil: any).
    public var orgs: Set<UUID>? { subject.scopes?.orgs }
    /// A key's `role:` scope: the highest role it may act with.
    public var roleCap: Role? { subject.scopes?.roleCap }

    /// The role this actor may act with in `org`, given the membership role found for `userID`.
    public func effectiveRole(membership: Role?, in org: UUID) -> Role? {
        let held = serviceAccountGrant.map { $0.orgID == org ? $0.role : nil } ?? membership
        guard let scopes = subject.scopes else { return held }
        return scopes.narrow(held, in: org)
    }
}

/// One entry of the audit log, written in the same transaction as the change it records.
@PublicInit
public struct AuditEvent: Sendable, Equatable {
    public var id: UUID = UUID()
    public var at: Date
    public var actorType: String
    public var actorID: UUID?
    public var action: String
    public var orgID: UUID?
    public var target: String
    public var details: [String: JSONValue] = [:]
}

/// Audit action names.
public enum AuditAction {
    public static let orgCreated = "org.created"
    public static let orgUpdated = "org.updated"
    public static let orgDeleted = "org.deleted"
    public static let memberAdded = "member.added"
    public static let memberRoleChanged = "member.role_changed"
    public static let memberUpdated = "member.updated"
    public static let memberRemoved = "member.removed"
    public static let memberLeft = "member.left"
    public static let backupRestored = "backup.restored"
    public static let backupExported = "backup.exported"
    public static let bindingSet = "binding.set"
    public static let bindingRemoved = "binding.removed"
    public static let groupCreated = "group.created"
    public static let groupUpdated = "group.updated"
    public static let groupDeleted = "group.deleted"
    public static let groupMemberSet = "group.member_set"
    public static let groupMemberRemoved = "group.member_removed"
    public static let overrideCreated = "override.created"
    public static let overrideRemoved = "override.removed"
    public static let keyCreated = "key.created"
    public static let keyRevoked = "key.revoked"
    public static let serviceAccountCreated = "service_account.created"
    public static let serviceAccountDeleted = "service_account.deleted"
    public static let signingKeyRotated = "signing_key.rotated"
    public static let clientCreated = "client.created"
    public static let clientUpdated = "client.updated"
    public static let clientSecretRotated = "client.secret_rotated"
    public static let clientDeleted = "client.deleted"
}

/// Who a new member is: an existing user by id or by e-mail.
public enum MemberTarget: Sendable, Equatable {
    case id(UUID)
    case email(String)
}

/// A partial update: a field left out stays as it is.
public enum FieldUpdate<Value: Sendable & Equatable>: Sendable, Equatable {
    case keep
    case set(Value)
}

/// Fields of `PATCH /v1/orgs/{id}`.
@PublicInit
public struct OrgPatch: Sendable, Equatable {
    public var name: FieldUpdate<String> = .keep
    public var description: FieldUpdate<String> = .keep
    public var metadata: FieldUpdate<[String: JSONValue]> = .keep
    public var maxKeyTTL: FieldUpdate<Int?> = .keep
}

/// Fields of `PATCH /v1/orgs/{id}/members/{user_id}`; `expiresAt: .set(nil)` makes the grant permanent.
@PublicInit
public struct MemberPatch: Sendable, Equatable {
    public var role: FieldUpdate<Role> = .keep
    public var expiresAt: FieldUpdate<Date?> = .keep
}
