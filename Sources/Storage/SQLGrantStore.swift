import Foundation
import OpenID

/// Authorization codes and consents on either SQL backend.
public struct SQLGrantStore: SQLStore, GrantStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    public func insertCode(hash: String, _ c: AuthorizationCode, at: Date) async throws {
        // Spent and expired codes are kept a day (a late second use still revokes), then dropped.
        try await db.execute("DELETE FROM oauth_codes WHERE expires_at < $1", at.addingTimeInterval(-86_400))
        try await db.execute(
            """
            INSERT INTO oauth_codes (code_hash, client_id, user_id, redirect_uri, scopes, nonce, code_challenge, auth_time, created_at, expires_at, org_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            """,
            hash, c.clientID, c.userID, c.redirectURI, StringList.json(c.scopes), c.nonce, c.codeChallenge, c.authTime, at, c.expiresAt, c.orgID)
    }

    public func redeemCode(hash: String, clientID: UUID, at: Date) async throws -> CodeRedemption {
        let columns = "client_id, user_id, redirect_uri, scopes, nonce, code_challenge, auth_time, expires_at, org_id"
        if let row = try await db.queryFirst(
            "UPDATE oauth_codes SET used_at = $2 WHERE code_hash = $1 AND client_id = $3 AND used_at IS NULL AND expires_at > $2 RETURNING \(columns)",
            hash, at, clientID) {
            return .redeemed(AuthorizationCode(
                clientID: try row.uuid("client_id"), userID: try row.uuid("user_id"), redirectURI: try row.string("redirect_uri"),
                scopes: try row.stringList("scopes"),
                nonce: try row.optionalString("nonce"), codeChallenge: try row.optionalString("code_challenge"),
                authTime: try row.date("auth_time"), expiresAt: try row.date("expires_at"), orgID: try row.optionalUUID("org_id")))
        }
        guard let row = try await db.queryFirst("SELECT user_id, used_at, issued_session_id FROM oauth_codes WHERE code_hash = $1 AND client_id = $2", hash, clientID),
              try row.optionalDate("used_at") != nil else { return .invalid }
        return .reused(userID: try row.uuid("user_id"), issuedSession: try row.optionalUUID("issued_session_id"))
    }

    public func recordIssuedSession(codeHash: String, sessionID: UUID) async throws {
        try await db.transaction { tx in
            try await tx.execute("UPDATE oauth_codes SET issued_session_id = $2 WHERE code_hash = $1", codeHash, sessionID)
            try await tx.execute(
                """
                INSERT INTO oauth_sessions (session_id, client_id, org_id, auth_time)
                SELECT $2, client_id, org_id, auth_time FROM oauth_codes WHERE code_hash = $1
                """, codeHash, sessionID)
        }
    }

    public func sessionGrant(sessionID: UUID) async throws -> ClientSessionGrant? {
        try await db.queryFirst("SELECT client_id, org_id, auth_time FROM oauth_sessions WHERE session_id = $1", sessionID).map { row in
            ClientSessionGrant(clientID: try row.uuid("client_id"), orgID: try row.optionalUUID("org_id"), authTime: try row.optionalDate("auth_time"))
        }
    }

    public func consent(userID: UUID, clientID: UUID) async throws -> [String]? {
        guard let row = try await db.queryFirst("SELECT scopes FROM oauth_consents WHERE user_id = $1 AND client_id = $2", userID, clientID) else { return nil }
        return try row.stringList("scopes")
    }

    public func consents(userID: UUID) async throws -> [Consent] {
        try await db.query(
            """
            SELECT c.client_id, o.name, c.scopes, c.granted_at FROM oauth_consents c JOIN oauth_clients o ON o.id = c.client_id
            WHERE c.user_id = $1 ORDER BY c.granted_at DESC
            """, userID
        ).map { row in
            Consent(clientID: try row.uuid("client_id"), clientName: try row.string("name"),
                    scopes: try row.stringList("scopes"),
                    grantedAt: try row.date("granted_at"))
        }
    }

    public func revokeConsent(userID: UUID, clientID: UUID) async throws -> [UUID] {
        try await db.transaction { tx in
            try await tx.execute("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2", userID, clientID)
            return try await tx.query(
                """
                SELECT s.id FROM sessions s JOIN oauth_sessions o ON o.session_id = s.id
                WHERE s.user_id = $1 AND o.client_id = $2 AND s.revoked_at IS NULL
                """, userID, clientID).map { try $0.uuid("id") }
        }
    }

    public func saveConsent(userID: UUID, clientID: UUID, scopes: [String], at: Date) async throws {
        try await db.execute(
            """
            INSERT INTO oauth_consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at
            """,
            userID, clientID, StringList.json(scopes), at)
    }
}
