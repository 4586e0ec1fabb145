import Foundation
import Tenancy

/// Who holds grants: a user or an org's service account.
public enum Principal: Sendable, Hashable {
    case user(UUID)
    case serviceAccount(UUID)

    public var id: UUID {
        switch self {
        case .user(let id), .serviceAccount(let id): return id
        }
    }

    public var typeName: String {
        switch self {
        case .user: return "user"
        case .serviceAccount: return "service_account"
        }
    }
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

    /// Parses `org:<id>`, `role:<role>`, `authz:check`; unknown or malformed scopes are errors.
    public static func parse(_ scopes: [String]) throws(PolicyError) -> KeyScopes {
        var orgs: Set<UUID>?
        var cap: Role?
        var check = false
        for scope in scopes {
            if scope == "authz:check" {
                check = true
            } else if scope.hasPrefix("org:"), let id = UUID(uuidString: String(scope.dropFirst(4))) {
                orgs = (orgs ?? []).union([id])
            } else if scope.hasPrefix("role:"), let role = Role(rawValue: String(scope.dropFirst(5))) {
                cap = min(cap ?? role, role)
            } else {
                throw .invalidSubject("unknown scope \"\(scope.prefix(80))\" (use org:<org_id>, role:<role> or authz:check)")
            }
        }
        return KeyScopes(orgs: orgs, roleCap: cap, authzCheck: check)
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
