import Foundation

/// Who holds grants: a user, an org's service account, or one of an org's groups (SPEC §17).
/// A group holds bindings and overrides for its members; it is never the subject of a decision.
public enum Principal: Sendable, Hashable {
    case user(UUID)
    case serviceAccount(UUID)
    case group(UUID)

    public var id: UUID {
        switch self {
        case .user(let id), .serviceAccount(let id), .group(let id): return id
        }
    }

    public var typeName: String {
        switch self {
        case .user: return "user"
        case .serviceAccount: return "service_account"
        case .group: return "group"
        }
    }

    /// The principal a stored `(type, id)` pair names; nil for an unknown type.
    public init?(typeName: String, id: UUID) {
        switch typeName {
        case "user": self = .user(id)
        case "service_account": self = .serviceAccount(id)
        case "group": self = .group(id)
        default: return nil
        }
    }

    /// `user:<id>`, `service_account:<id>` or `group:<id>` (audit details).
    public var label: String { typeName + ":" + id.lowercasedString }
}

/// What an API key's scopes leave of its owner's authority (SPEC §3).
public struct KeyScopes: Sendable, Equatable {
    /// nil: every org; otherwise only these.
    public var orgs: Set<UUID>?
    /// The highest role the key may act with.
    public var roleCap: Role?
    /// May ask decisions about other subjects.
    public var authzCheck: Bool

    public static let unrestricted = KeyScopes(orgs: nil, roleCap: nil, authzCheck: false)

    public init(orgs: Set<UUID>?, roleCap: Role?, authzCheck: Bool) {
        self.orgs = orgs
        self.roleCap = roleCap
        self.authzCheck = authzCheck
    }

    /// The role left in `org` of a holder whose grants give `role`.
    @inline(__always)
    public func narrow(_ role: Role?, in org: UUID) -> Role? {
        guard let role else { return nil }
        if let orgs, !orgs.contains(org) { return nil }
        if let roleCap { return min(role, roleCap) }
        return role
    }
}

/// The subject of a decision: a principal, narrowed by an API key's scopes when it came through one.
public struct Subject: Sendable, Equatable {
    public var principal: Principal
    public var scopes: KeyScopes?

    public init(principal: Principal, scopes: KeyScopes? = nil) {
        self.principal = principal
        self.scopes = scopes
    }

    public static func user(_ id: UUID) -> Subject { Subject(principal: .user(id)) }
}

extension UUID {
    /// The lowercase text form used in paths, object strings and the change log.
    public var lowercasedString: String { UUIDText.lowercased(self) }
}
