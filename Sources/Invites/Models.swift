import Authority
import Foundation
import Identity
import Tenancy
import Memberwise

/// Invite states. `expired` is never stored: a pending invite past `expiresAt` reads as expired.
public enum InviteState: String, Sendable, Codable, CaseIterable {
    case pending, accepted, declined, revoked, expired
}

/// An invitation to join an org with a role.
public struct Invite: Sendable, Equatable {
    public var id: UUID
    public var orgID: UUID
    public var orgName: String
    public var email: String
    public var role: Role
    /// As stored: pending, accepted, declined or revoked.
    public var storedState: InviteState
    /// For an e-mail with no account yet: it waits for the signup (or verification) to wake it.
    public var dormant: Bool
    public var inviterID: UUID?
    public var platformInviteID: UUID?
    public var createdAt: Date
    public var expiresAt: Date

    public init(id: UUID, orgID: UUID, orgName: String, email: String, role: Role, storedState: InviteState, dormant: Bool,
                inviterID: UUID?, platformInviteID: UUID?, createdAt: Date, expiresAt: Date) {
        self.id = id
        self.orgID = orgID
        self.orgName = orgName
        self.email = email
        self.role = role
        self.storedState = storedState
        self.dormant = dormant
        self.inviterID = inviterID
        self.platformInviteID = platformInviteID
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    /// The state as of `now`: a pending, awake invite past its expiry is expired.
    public func state(at now: Date) -> InviteState {
        storedState == .pending && !dormant && expiresAt <= now ? .expired : storedState
    }
}

/// A root's invitation to the platform, optionally with org invites that wait for the signup.
@PublicInit
public struct PlatformInvite: Sendable, Equatable {
    public var id: UUID
    public var email: String
    public var storedState: InviteState
    public var inviterID: UUID?
    public var createdAt: Date
    public var expiresAt: Date
    public var orgInvites: [Invite]

    public func state(at now: Date) -> InviteState {
        storedState == .pending && expiresAt <= now ? .expired : storedState
    }
}

public enum InviteError: Error, Sendable, Equatable {
    /// 410 `invite_expired`.
    case expired
    /// 409: the invite was already answered or revoked.
    case notPending(InviteState)
    /// A field failed validation (400).
    case invalid(String)
    /// The caller may not do this to this invite (403).
    case forbidden(String)
    /// No such invite, or not one the caller may know of (404).
    case notFound(String)
    /// 409, with the reason.
    case conflict(String)
    /// The invitee is a member already (409 `already_member`).
    case alreadyMember
    /// The invite waits for the invitee to prove the address (409 `invite_dormant`).
    case dormant
    /// A signup's invite token that is malformed, used, expired or for another address (400 `invalid_invite_token`).
    case invalidToken(String)
}

/// Reads and writes of invites. Implemented by the Storage module.
public protocol InviteStore: Sendable {
    func invites(orgID: UUID, state: InviteState?, now: Date, limit: Int, offset: Int) async throws -> ([Invite], Int)
    /// The invites addressed to `email` that are awake (not dormant).
    func invites(email: String, state: InviteState?, now: Date, limit: Int, offset: Int) async throws -> ([Invite], Int)
    func invite(id: UUID) async throws -> Invite?
    func invite(tokenHash: String) async throws -> Invite?
    func platformInvites(state: InviteState?, now: Date, limit: Int, offset: Int) async throws -> ([PlatformInvite], Int)
    func platformInvite(id: UUID) async throws -> PlatformInvite?
    func writeInvites<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter, any InviteWriter) async throws -> T) async throws -> T
    /// Creates an account through an invite token, in one transaction: the user (verified), the
    /// platform invite accepted, every dormant invite for the address woken. Nil for a bad token.
    func signup(_ credentials: UserCredentials, inviteTokenHash: String, now: Date, inviteLifetime: TimeInterval) async throws -> Int64?
}

public protocol InviteWriter: Sendable {
    func invite(id: UUID) async throws -> Invite?
    func invite(tokenHash: String) async throws -> Invite?
    /// A pending invite of the org for the address that has not expired (at most one may exist).
    func livePendingInvite(orgID: UUID, email: String, now: Date) async throws -> Invite?
    func insertInvite(_ invite: Invite, tokenHash: String) async throws
    func setState(inviteID: UUID, _ state: InviteState) async throws
    /// A new token and expiry (resend): the old link stops working.
    func renew(inviteID: UUID, tokenHash: String, expiresAt: Date) async throws
    func platformInvite(id: UUID) async throws -> PlatformInvite?
    /// A pending platform invite for the address that has not expired (at most one may exist).
    /// Concurrent writers asking for the same address are served one after the other.
    func livePendingPlatformInvite(email: String, now: Date) async throws -> PlatformInvite?
    func insertPlatformInvite(_ invite: PlatformInvite, tokenHash: String) async throws
    func setPlatformState(id: UUID, _ state: InviteState) async throws
    func enqueue(_ mail: OutgoingMail, at: Date) async throws
}
