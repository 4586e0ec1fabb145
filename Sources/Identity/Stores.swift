import Authority
import Foundation
import Memberwise

/// Persistence for users. Implemented by the Storage module for SQLite and PostgreSQL.
public protocol UserStore: Sendable {
    /// Inserts the user (and, in the same transaction, its e-mail verification token and mail);
    /// throws `IdentityError.emailTaken` when the e-mail is in use.
    func createUser(_ credentials: UserCredentials, verification: PendingToken?) async throws -> Revision
    /// Stores a password-reset token and its mail together.
    func createResetToken(userID: UUID, _ token: PendingToken, now: Date) async throws
    /// Spends a reset token, in one transaction: sets the new hash, marks the address proven
    /// (waking its dormant invites), revokes every session and every API key the account made
    /// while its address was unproven. Nil when the token is unknown, spent, expired or for
    /// another purpose.
    func resetPassword(tokenHash: String, newHash: String, now: Date, inviteLifetime: TimeInterval) async throws -> PasswordResetOutcome?
    /// Stores a fresh e-mail verification token and its mail (made by `token` from the account)
    /// when `email` has an account whose address is not verified yet; otherwise does nothing.
    func createVerificationToken(email: String, _ token: @escaping @Sendable (User) -> PendingToken, now: Date) async throws
    /// Spends a verification token: marks the e-mail verified and wakes the dormant invites for
    /// it (pending again, expiring after `inviteLifetime`). Nil for a bad token.
    func verifyEmail(tokenHash: String, now: Date, inviteLifetime: TimeInterval) async throws -> (userID: UUID, revision: Revision)?
    func user(id: UUID) async throws -> User?
    func credentials(email: String) async throws -> UserCredentials?
    func credentials(id: UUID) async throws -> UserCredentials?
    /// Changes the display name; nil when the user does not exist.
    func updateName(userID: UUID, name: String, now: Date) async throws -> (User, Revision)?
    /// Stores a new password hash and revokes every session of the user except `keep`,
    /// in one transaction. Returns the revision and the sessions revoked.
    func setPassword(userID: UUID, hash: String, keepSession keep: UUID?, reason: RevokeReason, now: Date) async throws -> (Revision, [UUID])
    func rootExists() async throws -> Bool
    /// Stores an e-mail sign-in code (for any address: the request path must not differ).
    func saveSignInCode(_ code: SignInCode) async throws
    /// Queues the code's mail when a verified account has `email`; otherwise does nothing.
    func mailSignInCode(email: String, _ mail: @escaping @Sendable (User) -> OutgoingMail, now: Date) async throws
    /// Tries a code: when `codeHash` matches the flow's live code for `email` (compared in
    /// constant time) the code is spent and the verified account's id returned; otherwise a
    /// try is counted, and after `maxTries` misses the code is dead; after `maxMissesPerDay`
    /// misses over all of the address's codes of the last day, every code for it is.
    func spendSignInCode(flowHash: String, email: String, codeHash: String, maxTries: Int, maxMissesPerDay: Int, now: Date) async throws -> UUID?
    /// Users whose address or name contains `text` (all when nil), by address, and their count.
    func users(matching text: String?, limit: Int, offset: Int) async throws -> ([User], Int)
}

/// What a spent password-reset token ended.
@PublicInit
public struct PasswordResetOutcome: Sendable {
    public var userID: UUID
    public var revision: Revision
    public var revokedSessions: [UUID]
    public var revokedKeys: [UUID]
}

/// What presenting a refresh token led to.
public enum RefreshOutcome: Sendable {
    /// The token was current: it is now spent and `newHash` is the session's current token.
    case rotated(Session, Revision)
    /// The token had been spent before: the session is now revoked (reuse detection).
    case reused(sessionID: UUID, Revision)
    /// Unknown, expired, or its session is no longer active.
    case invalid
}

/// Persistence for sessions and their refresh tokens.
public protocol SessionStore: Sendable {
    func createSession(_ session: Session, refreshHash: String, refreshExpiresAt: Date) async throws -> Revision
    /// Only a session opened for `clientID` (nil: Portcullis's own login) is rotated; another is `.invalid`.
    func rotateRefreshToken(oldHash: String, newHash: String, newExpiresAt: Date, clientID: String?, now: Date) async throws -> RefreshOutcome
    func session(id: UUID) async throws -> Session?
    /// The session a refresh token (current or spent) belongs to.
    func session(refreshHash: String) async throws -> Session?
    /// Revokes the session a refresh token (current or spent) belongs to, if it was opened for
    /// `clientID`; nil when there is none such.
    func revokeSession(refreshHash: String, clientID: String?, reason: RevokeReason, now: Date) async throws -> Revision?
    /// Active sessions of a user, newest first, and their total count.
    func activeSessions(userID: UUID, now: Date, limit: Int, offset: Int) async throws -> ([Session], Int)
    /// Revokes one session of the user; nil when no such active session exists.
    func revokeSession(id: UUID, userID: UUID, reason: RevokeReason, now: Date) async throws -> Revision?
    /// Revokes every active session of the user; returns the revision and the sessions revoked.
    func revokeAllSessions(userID: UUID, reason: RevokeReason, now: Date) async throws -> (Revision, [UUID])
}

/// A signing key as stored: the private half sealed with the master key.
@PublicInit
public struct SigningKeyRecord: Sendable, Equatable {
    public var kid: String
    public var algorithm: String
    public var publicKeyPEM: String
    public var sealedPrivateKey: String
    public var createdAt: Date
    public var retiredAt: Date?
    /// After this instant the key is dropped from JWKS and no longer verifies anything.
    public var publishUntil: Date?
}

public protocol SigningKeyStore: Sendable {
    func signingKeys() async throws -> [SigningKeyRecord]
    /// Inserts `key` as the active key of its algorithm unless one exists already (several nodes
    /// starting at once on an empty database make exactly one). Returns whether it inserted.
    func activateFirstKey(_ key: SigningKeyRecord) async throws -> Bool
    /// Inserts `key` as the active key and retires every other active key of its algorithm, publishing the
    /// retired ones until `retiredPublishUntil`, and audits it as done by `actor` ("system" when
    /// nil). Returns the change's revision.
    func rotateKey(to key: SigningKeyRecord, retiredPublishUntil: Date, actor: Principal?) async throws -> Revision
    /// The same, but only when the active key was created before `cutoff` (automatic rotation:
    /// several nodes may decide at once, one rotates). Nil when the active key is recent enough.
    func rotateKey(ifActiveOlderThan cutoff: Date, to key: SigningKeyRecord, retiredPublishUntil: Date) async throws -> Revision?
}
