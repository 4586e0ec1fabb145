import Authority
import Foundation

/// What an actor may do in one org, for a console to offer only the choices the server would
/// accept (SPEC §13: "an admin is not offered owner"). It asks the same `Standing`,
/// `PermissionTable` and `RankRules` the writes ask; the writes still decide.
public struct OrgAbilities: Sendable {
    public let org: Org
    /// The actor's own role here; nil for the root acting in an org it is not a member of.
    public let role: Role?
    let standing: TenancyService.Standing
    let permissions: PermissionTable

    public func may(_ permission: String) -> Bool {
        standing.passes { permissions.allows($0, permission) } != nil
    }

    /// Roles the actor may give a new member, an invite or a grant.
    public var grantableRoles: [Role] {
        Role.ranked.filter { role in
            standing.passes {
                permissions.allows($0, role == .owner ? Permission.membersOwners : Permission.membersWrite) && RankRules.mayGrant(actor: $0, role: role)
            } != nil
        }
    }

    /// Roles a grant (binding, service account) may carry: at or below the actor's own.
    public var grantRoles: [Role] {
        Role.ranked.filter { role in standing.passes { RankRules.mayGrant(actor: $0, role: role) } != nil }
    }

    /// The roles a member holding `current` may be changed to by this actor (empty: hands off).
    public func roleChoices(for current: Role) -> [Role] {
        Role.ranked.filter { role in
            standing.passes {
                permissions.allows($0, Permission.membersWrite)
                    && RankRules.mayChange(actor: $0, target: current, to: role, managesOwners: permissions.allows($0, Permission.membersOwners))
            } != nil
        }
    }

    /// Whether this actor may remove a member holding `current` (leaving aside: anyone may leave).
    public func mayRemove(_ current: Role) -> Bool {
        standing.passes {
            permissions.allows($0, Permission.membersWrite)
                && RankRules.mayManage(actor: $0, target: current, managesOwners: permissions.allows($0, Permission.membersOwners))
        } != nil
    }
}

extension TenancyService {
    /// The actor's abilities in an org; 404 when it may not see the org at all.
    public func abilities(actor: Actor, orgID: UUID) async throws -> OrgAbilities {
        async let org = store.org(id: orgID)
        async let membership = store.membership(orgID: orgID, userID: actor.userID)
        let (found, held) = (try await org, try await membership)
        let standing = try standing(org: found, membership: held, actor: actor, at: now())
        return OrgAbilities(org: found!, role: standing.role, standing: standing, permissions: permissions)
    }
}
