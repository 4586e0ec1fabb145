import Authority
import Foundation

/// Audit events, timestamps and targets as every tenancy write spells them.
extension TenancyService {
    // MARK: Helpers

    /// An org must always keep an owner whose grant does not run out.
    static func isPermanentOwner(_ m: Membership, at now: Date) -> Bool {
        m.role == .owner && m.expiresAt == nil
    }

    /// A member removed or demoted can no longer stand behind the invites they sent above their
    /// new role (every one, when removed): those end now, audited, in the same transaction, so
    /// nobody accepts an admin invite from someone who is no longer an admin.
    static func endInvites(_ tx: any TenancyWriter, sentBy inviter: UUID, in orgID: UUID, above role: Role?, actor: Actor, at: Date) async throws {
        for invite in try await tx.revokePendingInvites(orgID: orgID, inviterID: inviter, above: role) {
            try await tx.appendAudit(event(
                actor, at: at, "invite.revoked", org: orgID, target: "invite:\(invite.id.lowercasedString)",
                ["email": .string(invite.email), "role": .string(invite.role.rawValue), "reason": .string(role == nil ? "inviter_removed" : "inviter_demoted")]))
            _ = try await tx.recordChange(.inviteChanged(invite.id), at: at)
        }
    }

    static func requireAnotherOwner(_ tx: any TenancyWriter, orgID: UUID) async throws {
        if try await tx.permanentOwnerCount(orgID: orgID) <= 1 { throw TenancyError.lastOwner }
    }

    static func validateExpiry(_ expiresAt: Date?, now: Date) throws {
        if let expiresAt, expiresAt <= now { throw TenancyError.invalid("expires_at must be in the future") }
    }

    public static func event(_ actor: Actor, at: Date, _ action: String, org: UUID?, target: String, _ details: [String: JSONValue], viaRoot: Bool = false) -> AuditEvent {
        var details = details
        if viaRoot { details["as_root"] = .bool(true) }
        return AuditEvent(at: at, actorType: actor.type, actorID: actor.id, action: action, orgID: org, target: target, details: details)
    }

    /// Timestamps in audit details read like the API's (UTC, milliseconds).
    public static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }

    public static func orgTarget(_ id: UUID) -> String { "org:\(id.lowercasedString)" }
    public static func userTarget(_ id: UUID) -> String { "user:\(id.lowercasedString)" }
}
