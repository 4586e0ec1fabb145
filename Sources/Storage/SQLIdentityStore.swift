import Authority
import Foundation
import Identity
import Policy
import Tenancy

/// Users, sessions, refresh tokens and signing keys on either SQL backend.
public struct SQLIdentityStore: SQLStore, UserStore, SessionStore, SigningKeyStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    // MARK: Users

    static let userColumns = "id, email, name, password_hash, email_verified, is_root, created_at, updated_at"

    static func decodeUser(_ row: SQLRow) throws -> UserCredentials {
        UserCredentials(
            user: User(
                id: try row.uuid("id"), email: try row.string("email"), name: try row.string("name"),
                emailVerified: try row.bool("email_verified"), isRoot: try row.bool("is_root"),
                createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at")),
            passwordHash: try row.string("password_hash"))
    }

    public func createUser(_ credentials: UserCredentials, verification: PendingToken?) async throws -> Revision {
        do {
            return try await write { tx in
                try await Self.insertUser(tx, credentials)
                if let verification {
                    try await Self.insertToken(tx, verification, purpose: "verify_email", userID: credentials.user.id, at: credentials.user.createdAt)
                }
                return try await ChangeLog.append(tx, .userCreated(credentials.user.id), at: credentials.user.createdAt)
            }
        } catch StorageError.uniqueViolation {
            throw IdentityError.emailTaken
        }
    }

    static func insertUser(_ tx: any SQLExecutor, _ credentials: UserCredentials) async throws {
        let u = credentials.user
        try await tx.execute(
            "INSERT INTO users (\(Self.userColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            u.id, u.email, u.name, credentials.passwordHash, u.emailVerified, u.isRoot, u.createdAt, u.updatedAt)
    }

    /// A token's hash and its mail, in the caller's transaction.
    static func insertToken(_ tx: any SQLExecutor, _ token: PendingToken, purpose: String, userID: UUID, at: Date) async throws {
        try await tx.execute(
            "INSERT INTO action_tokens (token_hash, purpose, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            token.hash, purpose, userID, at, token.expiresAt)
        try await SQLOutbox.enqueue(tx, token.mail, at: at)
    }

    /// Marks a token used; returns its user when it was unused, unexpired and for `purpose`.
    static func spendToken(_ tx: any SQLExecutor, hash: String, purpose: String, now: Date) async throws -> UUID? {
        try await tx.queryFirst(
            "UPDATE action_tokens SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 RETURNING user_id",
            hash, purpose, now
        )?.uuid("user_id")
    }

    public func createResetToken(userID: UUID, _ token: PendingToken, now: Date) async throws {
        try await write { tx in
            try await Self.insertToken(tx, token, purpose: "password_reset", userID: userID, at: now)
        }
    }

    public func resetPassword(tokenHash: String, newHash: String, now: Date, inviteLifetime: TimeInterval) async throws -> PasswordResetOutcome? {
        try await write { tx in
            guard let userID = try await Self.spendToken(tx, hash: tokenHash, purpose: "password_reset", now: now) else { return nil }
            // Every other reset link of the account dies with this one.
            try await tx.execute(
                "UPDATE action_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL", userID, now)
            // The mailed link proves the address: it is verified from now on, and its dormant invites wake.
            guard let row = try await tx.queryFirst(
                "UPDATE users SET password_hash = $1, email_verified = TRUE, updated_at = $2 WHERE id = $3 RETURNING email", newHash, now, userID)
            else { return nil }
            try await SQLInviteStore.wakeDormantInvites(tx, email: try row.string("email"), now: now, lifetime: inviteLifetime)
            let revoked = try await Self.revokeSessions(tx, userID: userID, except: nil, reason: .passwordReset, now: now)
            // Keys made while the address was unproven may be a squatter's: they end here.
            let keys = try await tx.query(
                "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND before_proof = TRUE RETURNING id, name, prefix",
                userID, now)
            var revokedKeys: [UUID] = []
            let writer = SQLTenancyStore.Writer(tx: tx)
            for key in keys {
                let id = try key.uuid("id")
                revokedKeys.append(id)
                try await writer.appendAudit(AuditEvent(
                    at: now, actorType: "user", actorID: userID, action: AuditAction.keyRevoked, orgID: nil, target: "key:\(id.lowercasedString)",
                    details: ["name": .string(try key.string("name")), "prefix": .string(try key.string("prefix")), "reason": .string("password_reset")]))
                _ = try await ChangeLog.append(tx, .keyRevoked(id), at: now)
            }
            let revision = try await ChangeLog.append(tx, .userUpdated(userID), at: now)
            return PasswordResetOutcome(userID: userID, revision: revision, revokedSessions: revoked, revokedKeys: revokedKeys)
        }
    }

    public func createVerificationToken(email: String, _ token: @escaping @Sendable (User) -> PendingToken, now: Date) async throws {
        try await write { tx in
            guard let row = try await tx.queryFirst("SELECT \(Self.userColumns) FROM users WHERE email = $1", email) else { return }
            let user = try Self.decodeUser(row).user
            guard !user.emailVerified else { return }
            // A fresh link replaces the earlier ones.
            try await tx.execute(
                "UPDATE action_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'verify_email' AND used_at IS NULL", user.id, now)
            try await Self.insertToken(tx, token(user), purpose: "verify_email", userID: user.id, at: now)
        }
    }

    public func verifyEmail(tokenHash: String, now: Date, inviteLifetime: TimeInterval) async throws -> (userID: UUID, revision: Revision)? {
        try await write { tx in
            guard let userID = try await Self.spendToken(tx, hash: tokenHash, purpose: "verify_email", now: now),
                  let row = try await tx.queryFirst("UPDATE users SET email_verified = TRUE, updated_at = $2 WHERE id = $1 RETURNING email", userID, now)
            else { return nil }
            try await SQLInviteStore.wakeDormantInvites(tx, email: try row.string("email"), now: now, lifetime: inviteLifetime)
            let revision = try await ChangeLog.append(tx, .userUpdated(userID), at: now)
            return (userID, revision)
        }
    }

    public func user(id: UUID) async throws -> User? {
        try await credentials(id: id)?.user
    }

    public func credentials(email: String) async throws -> UserCredentials? {
        try await db.queryFirst("SELECT \(Self.userColumns) FROM users WHERE email = $1", email).map(Self.decodeUser)
    }

    public func credentials(id: UUID) async throws -> UserCredentials? {
        try await db.queryFirst("SELECT \(Self.userColumns) FROM users WHERE id = $1", id).map(Self.decodeUser)
    }

    public func updateName(userID: UUID, name: String, now: Date) async throws -> (User, Revision)? {
        try await write { tx in
            guard let row = try await tx.queryFirst(
                "UPDATE users SET name = $1, updated_at = $2 WHERE id = $3 RETURNING \(Self.userColumns)", name, now, userID)
            else { return nil }
            let revision = try await ChangeLog.append(tx, .userUpdated(userID), at: now)
            return (try Self.decodeUser(row).user, revision)
        }
    }

    public func setPassword(userID: UUID, hash: String, keepSession keep: UUID?, reason: RevokeReason, now: Date) async throws -> (Revision, [UUID]) {
        try await write { tx in
            let updated = try await tx.query(
                "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 RETURNING id", hash, now, userID)
            guard !updated.isEmpty else { throw IdentityError.notFound }
            let revoked = try await Self.revokeSessions(tx, userID: userID, except: keep, reason: reason, now: now)
            let revision = try await ChangeLog.append(tx, .userUpdated(userID), at: now)
            return (revision, revoked)
        }
    }

    public func rootExists() async throws -> Bool {
        try await db.queryFirst("SELECT id FROM users WHERE is_root = TRUE LIMIT 1") != nil
    }

    // MARK: Sessions

    static let sessionColumns = "id, user_id, created_at, last_used_at, expires_at, revoked_at, user_agent, ip, client_id, scope"

    static func decodeSession(_ row: SQLRow) throws -> Session {
        Session(
            id: try row.uuid("id"), userID: try row.uuid("user_id"), createdAt: try row.date("created_at"),
            lastUsedAt: try row.date("last_used_at"), expiresAt: try row.date("expires_at"),
            revokedAt: try row.optionalDate("revoked_at"), userAgent: try row.string("user_agent"), ip: try row.string("ip"),
            clientID: try row.optionalString("client_id"), scope: try row.optionalString("scope"))
    }

    public func createSession(_ s: Session, refreshHash: String, refreshExpiresAt: Date) async throws -> Revision {
        try await write { tx in
            try await tx.execute(
                "INSERT INTO sessions (\(Self.sessionColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                s.id, s.userID, s.createdAt, s.lastUsedAt, s.expiresAt, s.revokedAt, s.userAgent, s.ip, s.clientID, s.scope)
            try await tx.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                refreshHash, s.id, s.createdAt, refreshExpiresAt)
            return try await ChangeLog.append(tx, .sessionCreated(s.id), at: s.createdAt)
        }
    }

    public func rotateRefreshToken(oldHash: String, newHash: String, newExpiresAt: Date, clientID: String?, now: Date) async throws -> RefreshOutcome {
        try await write { tx in
            // Lock the token row (PostgreSQL); SQLite's BEGIN IMMEDIATE already serializes writers.
            let lock = tx.dialect == .postgres ? " FOR UPDATE" : ""
            guard let token = try await tx.queryFirst(
                "SELECT session_id, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1\(lock)", oldHash)
            else { return .invalid }
            let sessionID = try token.uuid("session_id")
            guard let sessionRow = try await tx.queryFirst(
                "SELECT \(Self.sessionColumns) FROM sessions WHERE id = $1\(lock)", sessionID)
            else { return .invalid }
            var session = try Self.decodeSession(sessionRow)
            // A refresh token is bound to the client it was issued to: another one learns nothing
            // and spends nothing.
            guard session.clientID == clientID else { return .invalid }
            if try token.optionalDate("used_at") != nil {
                // Reuse of a spent token: someone else holds a copy. Kill the whole session.
                guard session.revokedAt == nil else { return .invalid }
                try await tx.execute(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3",
                    now, RevokeReason.refreshReuse.rawValue, sessionID)
                let revision = try await ChangeLog.append(tx, .sessionRevoked(sessionID), at: now)
                return .reused(sessionID: sessionID, revision)
            }
            guard session.isActive(at: now), try token.date("expires_at") > now else { return .invalid }
            try await tx.execute("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2", now, oldHash)
            try await tx.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                newHash, sessionID, now, newExpiresAt)
            try await tx.execute(
                "UPDATE sessions SET last_used_at = $1, expires_at = $2 WHERE id = $3", now, newExpiresAt, sessionID)
            session.lastUsedAt = now
            session.expiresAt = newExpiresAt
            let revision = try await ChangeLog.append(tx, .sessionRefreshed(sessionID), at: now)
            return .rotated(session, revision)
        }
    }

    public func session(id: UUID) async throws -> Session? {
        try await db.queryFirst("SELECT \(Self.sessionColumns) FROM sessions WHERE id = $1", id).map(Self.decodeSession)
    }

    public func activeSessions(userID: UUID, now: Date, limit: Int, offset: Int) async throws -> ([Session], Int) {
        try await db.page(
            select: Self.sessionColumns, "FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            orderBy: "created_at DESC, id", [userID.sqlValue, now.sqlValue], limit: limit, offset: offset, Self.decodeSession)
    }

    public func session(refreshHash: String) async throws -> Session? {
        try await db.queryFirst(
            "SELECT \(Self.sessionColumns) FROM sessions WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)", refreshHash
        ).map(Self.decodeSession)
    }

    public func revokeSession(refreshHash: String, clientID: String?, reason: RevokeReason, now: Date) async throws -> Revision? {
        try await write { tx in
            guard let row = try await tx.queryFirst(
                "SELECT s.id, s.client_id FROM sessions s JOIN refresh_tokens r ON r.session_id = s.id WHERE r.token_hash = $1 AND s.revoked_at IS NULL",
                refreshHash), try row.optionalString("client_id") == clientID else { return nil }
            let id = try row.uuid("id")
            try await tx.execute("UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3", now, reason.rawValue, id)
            return try await ChangeLog.append(tx, .sessionRevoked(id), at: now)
        }
    }

    public func revokeSession(id: UUID, userID: UUID, reason: RevokeReason, now: Date) async throws -> Revision? {
        try await write { tx in
            let rows = try await tx.query(
                "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL RETURNING id",
                now, reason.rawValue, id, userID)
            guard !rows.isEmpty else { return nil }
            return try await ChangeLog.append(tx, .sessionRevoked(id), at: now)
        }
    }

    public func revokeAllSessions(userID: UUID, reason: RevokeReason, now: Date) async throws -> (Revision, [UUID]) {
        try await write { tx in
            let revoked = try await Self.revokeSessions(tx, userID: userID, except: nil, reason: reason, now: now)
            let revision = try await ChangeLog.append(tx, .sessionsRevoked(user: userID), at: now)
            return (revision, revoked)
        }
    }

    /// Revokes the user's live sessions (except one) and logs one change per session.
    static func revokeSessions(_ tx: any SQLExecutor, userID: UUID, except keep: UUID?, reason: RevokeReason, now: Date) async throws -> [UUID] {
        let rows: [SQLRow]
        if let keep {
            rows = try await tx.query(
                "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4 RETURNING id",
                now, reason.rawValue, userID, keep)
        } else {
            rows = try await tx.query(
                "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL RETURNING id",
                now, reason.rawValue, userID)
        }
        let ids = try rows.map { try $0.uuid("id") }
        for id in ids {
            _ = try await ChangeLog.append(tx, .sessionRevoked(id), at: now)
        }
        return ids
    }
}
