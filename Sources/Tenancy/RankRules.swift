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

    /// Changing `target`'s role to `newRole`.
    public static func mayChange(actor: Role, target: Role, to newRole: Role, managesOwners: Bool) -> Bool {
        mayManage(actor: actor, target: target, managesOwners: managesOwners) && mayGrant(actor: actor, role: newRole)
    }
}
