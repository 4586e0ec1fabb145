import Authority
import Foundation
import Memberwise

/// Reads of orgs, memberships and the audit log. Implemented by the Storage module.
public protocol TenancyStore: Sendable {
    func org(id: UUID) async throws -> Org?
    func membership(orgID: UUID, userID: UUID) async throws -> Membership?
    /// Orgs where `userID` holds a current membership, oldest first, optionally filtered by a
    /// case-insensitive substring of the name, and to the orgs in `scope` when given (a scoped
    /// key's); with the total count. Filtered in the query: the page and total are exact.
    func orgs(memberUserID userID: UUID, within scope: Set<UUID>?, now: Date, nameContains: String?, limit: Int, offset: Int) async throws -> ([OrgView], Int)
    /// Every org (root's `?scope=all`), with `userID`'s current role where it has one.
    func allOrgs(viewerUserID userID: UUID, now: Date, nameContains: String?, limit: Int, offset: Int) async throws -> ([OrgView], Int)
    /// Members of an org, oldest first (expired grants included, so admins can see and renew them).
    func members(orgID: UUID, limit: Int, offset: Int) async throws -> ([Member], Int)
    func member(orgID: UUID, userID: UUID) async throws -> Member?
    /// Audit events, newest first; `orgID: nil` lists every event.
    func auditEvents(orgID: UUID?, filter: AuditFilter, limit: Int, offset: Int) async throws -> ([AuditEvent], Int)
    func auditEvent(id: UUID) async throws -> AuditEvent?

    /// Runs `body` in one transaction. With `lockingOrg`, the org's row is locked first so that
    /// rank and last-owner checks inside `body` see a state no concurrent writer can change.
    func write<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter) async throws -> T) async throws -> T
}

/// Reads and writes inside one transaction.
public protocol TenancyWriter: Sendable {
    func org(id: UUID) async throws -> Org?
    func insertOrg(_ org: Org) async throws
    func updateOrg(_ org: Org) async throws
    /// Deletes the org (its rows go through the schema's cascades) and ends the sessions its
    /// OpenID clients opened; returns those sessions.
    func deleteOrg(id: UUID, at: Date) async throws -> [UUID]
    func membership(orgID: UUID, userID: UUID) async throws -> Membership?
    /// Inserts or replaces the membership of (org, user).
    func upsertMembership(_ membership: Membership) async throws
    func deleteMembership(orgID: UUID, userID: UUID) async throws
    /// Owners whose grant does not expire: the ones that keep an org from being orphaned.
    func permanentOwnerCount(orgID: UUID) async throws -> Int
    /// How many orgs `userID` holds the owner role in (for the orgs-per-user quota).
    func ownedOrgCount(userID: UUID) async throws -> Int
    func user(id: UUID) async throws -> UserRef?
    func user(email: String) async throws -> UserRef?
    func appendAudit(_ event: AuditEvent) async throws
    /// Revokes the pending invites `inviterID` sent in the org for a role above `maxRole`
    /// (every one when nil) and returns them.
    func revokePendingInvites(orgID: UUID, inviterID: UUID, above maxRole: Role?) async throws -> [EndedInvite]
    /// Appends to the change log; returns the revision of this transaction's write.
    func recordChange(_ event: ChangeEvent, at: Date) async throws -> Int64
}

/// A pending invite ended because its inviter lost the standing to send it.
@PublicInit
public struct EndedInvite: Sendable, Equatable {
    public var id: UUID
    public var email: String
    public var role: Role
}
