import Authority

/// Who may grant, change or remove whom inside an org (SPEC §4).
///
/// - An actor grants only roles at or below its own.
/// - An actor changes or removes only members of strictly lower rank; an actor holding
///   `members.owners` (owners, by the permission table) also manages owners.
/// - Anyone may leave (remove themselves); the last-owner rule is checked separately against
///   the stored state, inside the writing transaction.
public enum RankRules {
    public static func mayGrant(actor: Role, role: Role) -> Bool {
        role <= actor
    }

    public static func mayManage(actor: Role, target: Role, managesOwners: Bool) -> Bool {
        target < actor || (target == .owner && managesOwners)
    }

    /// Managing a grant (a binding, a service account, an invite): at or below the actor's own
    /// rank. Members are managed only strictly below (`mayManage`): two admins must not remove
    /// each other. A grant is not a peer, so an admin may manage an admin-level grant it could
    /// have made itself.
    public static func mayManageGrant(actor: Role, grant: Role) -> Bool {
        grant <= actor
    }

    /// Holding `role` satisfies a need for `needed` (permissions and decisions: equal suffices).
    public static func atLeast(_ role: Role, _ needed: Role) -> Bool {
        role >= needed
    }

    /// Changing `target`'s role to `newRole`.
    public static func mayChange(actor: Role, target: Role, to newRole: Role, managesOwners: Bool) -> Bool {
        mayManage(actor: actor, target: target, managesOwners: managesOwners) && mayGrant(actor: actor, role: newRole)
    }
}
