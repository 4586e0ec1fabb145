import Authority
import Foundation
import Identity
import Memberwise

/// A browser's sign-in at an upstream, between leaving for it and coming back: kept server-side
/// under the hash of its `state` (which is also in the browser's cookie), spent once.
@PublicInit
public struct UpstreamFlow: Sendable, Equatable {
    public enum Intent: Sendable, Equatable {
        /// Sign in, or make an account (with the hash of an invite's token when signup is by invitation).
        case signIn(inviteTokenHash: String?)
        /// Link the upstream identity to this signed-in account.
        case link(userID: UUID)
    }

    public var stateHash: String
    public var providerID: String
    public var nonce: String
    public var codeVerifier: String
    public var intent: Intent
    public var returnTo: String?
    public var createdAt: Date
    public var expiresAt: Date
}

public enum UnlinkOutcome: Sendable, Equatable {
    case unlinked(Revision)
    case notFound
    /// It is the account's last way to sign in.
    case lastCredential
}

/// Persistence for upstream providers, linked identities and sign-in flows.
/// Implemented by the Storage module on both backends.
public protocol FederationStore: Sendable {
    func providers() async throws -> [UpstreamProvider]
    func provider(id: String) async throws -> UpstreamProvider?
    /// Throws `FederationError.conflict` when the id is taken.
    func createProvider(_ provider: UpstreamProvider, actor: Principal) async throws -> Revision
    /// Nil when there is no such provider.
    func updateProvider(_ provider: UpstreamProvider, actor: Principal) async throws -> Revision?
    /// Drops the provider and every identity linked through it; nil when there is none.
    func deleteProvider(id: String, actor: Principal, now: Date) async throws -> Revision?

    func identities(userID: UUID) async throws -> [LinkedIdentity]
    func identity(providerID: String, subject: String) async throws -> LinkedIdentity?
    func identityCount(providerID: String) async throws -> Int
    /// Links, audited as `identity.linked`; `FederationError.conflict` when the identity is
    /// linked already (to anyone).
    func link(_ identity: LinkedIdentity) async throws -> Revision
    /// Unlinks unless it is the account's last way to sign in (no password, no other identity),
    /// decided under the account's lock so two unlinks cannot both pass.
    func unlink(identityID: UUID, userID: UUID, now: Date) async throws -> UnlinkOutcome
    /// Creates the account and its first identity in one transaction. With an invite token's
    /// hash the token must be a pending invite for the account's address (nil otherwise).
    /// Throws `IdentityError.emailTaken` when an account has the address.
    func createUser(_ user: User, identity: LinkedIdentity, inviteTokenHash: String?, inviteLifetime: TimeInterval) async throws -> Revision?
    /// A sign-in through `identity`: its last use and address, audited as `identity.signed_in`.
    func recordSignIn(_ identity: LinkedIdentity, email: String, now: Date) async throws

    func saveFlow(_ flow: UpstreamFlow) async throws
    /// Removes and returns the flow when it exists and has not expired: a flow is spent once.
    func takeFlow(stateHash: String, now: Date) async throws -> UpstreamFlow?
}

/// Outbound HTTP to upstream providers: a seam so the flow logic does not know the client library.
public protocol UpstreamHTTP: Sendable {
    func get(_ url: String, headers: [(String, String)]) async throws -> UpstreamResponse
    func postForm(_ url: String, fields: [(String, String)], headers: [(String, String)]) async throws -> UpstreamResponse
}

@PublicInit
public struct UpstreamResponse: Sendable {
    public var status: Int
    public var body: Data
}
