import Authority
import Memberwise

/// Built-in permission names (SPEC §4).
public enum Permission {
    public static let orgRead = "org.read"
    public static let orgUpdate = "org.update"
    public static let orgDelete = "org.delete"
    public static let membersRead = "members.read"
    public static let membersWrite = "members.write"
    public static let membersOwners = "members.owners"
    public static let invitesRead = "invites.read"
    public static let invitesWrite = "invites.write"
    public static let bindingsWrite = "bindings.write"
    public static let serviceAccountsWrite = "service_accounts.write"
    public static let auditRead = "audit.read"
}

/// The one table mapping each permission to the least role that holds it. Every access check
/// in the product goes through it; custom permissions are merged in from the policy file.
@PublicInit
public struct PermissionTable: Sendable, Equatable {
    public private(set) var leastRole: [String: Role]

    public static let builtIn = PermissionTable(leastRole: [
        Permission.orgRead: .viewer,
        Permission.membersRead: .viewer,
        Permission.orgUpdate: .admin,
        Permission.membersWrite: .admin,
        Permission.invitesRead: .admin,
        Permission.invitesWrite: .admin,
        Permission.bindingsWrite: .admin,
        Permission.serviceAccountsWrite: .admin,
        Permission.auditRead: .admin,
        Permission.orgDelete: .owner,
        Permission.membersOwners: .owner,
    ])

    /// The least role for `permission`; nil for a permission nobody declared.
    public func role(for permission: String) -> Role? { leastRole[permission] }

    /// Whether `role` holds `permission`. An unknown permission is held by nobody.
    public func allows(_ role: Role, _ permission: String) -> Bool {
        guard let least = leastRole[permission] else { return false }
        return role >= least
    }

    /// Every permission `role` holds, sorted by name.
    public func permissions(of role: Role) -> [String] {
        leastRole.filter { role >= $0.value }.map(\.key).sorted()
    }
}
