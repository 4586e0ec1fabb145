import Authority
import Federation
import Foundation
import Identity
import Tenancy

/// Upstream providers, linked identities and sign-in flows on either SQL backend.
public struct SQLFederationStore: SQLStore, FederationStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    // MARK: Providers

    static let providerColumns = "id, kind, display_name, client_id, sealed_secret, scopes, issuer, web_base_url, api_base_url, enabled, created_at, updated_at"

    static func decodeProvider(_ row: SQLRow) throws -> UpstreamProvider {
        UpstreamProvider(
            id: try row.string("id"), kind: ProviderKind(rawValue: try row.string("kind")) ?? .oidc, displayName: try row.string("display_name"),
            clientID: try row.string("client_id"), sealedSecret: try row.string("sealed_secret"),
            scopes: try row.string("scopes").split(separator: " ").map(String.init), issuer: try row.optionalString("issuer"),
            webBaseURL: try row.optionalString("web_base_url"), apiBaseURL: try row.optionalString("api_base_url"),
            enabled: try row.bool("enabled"), createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }

    public func providers() async throws -> [UpstreamProvider] {
        try await db.query("SELECT \(Self.providerColumns) FROM identity_providers ORDER BY id").map(Self.decodeProvider)
    }

    public func provider(id: String) async throws -> UpstreamProvider? {
        try await db.queryFirst("SELECT \(Self.providerColumns) FROM identity_providers WHERE id = $1", id).map(Self.decodeProvider)
    }

    static func audit(_ tx: any SQLExecutor, _ action: String, actor: Principal?, target: String, at: Date, _ details: [String: JSONValue]) async throws {
        try await SQLTenancyStore.Writer(tx: tx).appendAudit(AuditEvent(
            at: at, actorType: actor?.typeName ?? "system", actorID: actor?.id, action: action, orgID: nil, target: target, details: details))
    }

    static func details(_ p: UpstreamProvider) -> [String: JSONValue] {
        ["kind": .string(p.kind.rawValue), "display_name": .string(p.displayName), "client_id": .string(p.clientID), "enabled": .bool(p.enabled)]
    }

    public func createProvider(_ p: UpstreamProvider, actor: Principal) async throws -> Revision {
        do {
            return try await write { tx in
                try await tx.execute(
                    "INSERT INTO identity_providers (\(Self.providerColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    p.id, p.kind.rawValue, p.displayName, p.clientID, p.sealedSecret, p.scopes.joined(separator: " "), p.issuer,
                    p.webBaseURL, p.apiBaseURL, p.enabled, p.createdAt, p.updatedAt)
                try await Self.audit(tx, "identity_provider.created", actor: actor, target: "identity_provider:\(p.id)", at: p.createdAt, Self.details(p))
                return try await ChangeLog.append(tx, .other(kind: "identity_provider.changed", subject: p.id), at: p.createdAt)
            }
        } catch StorageError.uniqueViolation {
            throw FederationError.conflict(code: "conflict", "an identity provider with the id \(p.id) exists")
        }
    }

    public func updateProvider(_ p: UpstreamProvider, actor: Principal) async throws -> Revision? {
        try await write { tx -> Revision? in
            guard try await tx.queryFirst(
                """
                UPDATE identity_providers SET display_name = $2, client_id = $3, sealed_secret = $4, scopes = $5, issuer = $6,
                web_base_url = $7, api_base_url = $8, enabled = $9, updated_at = $10 WHERE id = $1 RETURNING id
                """,
                p.id, p.displayName, p.clientID, p.sealedSecret, p.scopes.joined(separator: " "), p.issuer, p.webBaseURL, p.apiBaseURL,
                p.enabled, p.updatedAt) != nil else { return nil }
            try await Self.audit(tx, "identity_provider.updated", actor: actor, target: "identity_provider:\(p.id)", at: p.updatedAt, Self.details(p))
            return try await ChangeLog.append(tx, .other(kind: "identity_provider.changed", subject: p.id), at: p.updatedAt)
        }
    }

    public func deleteProvider(id: String, actor: Principal, now: Date) async throws -> Revision? {
        try await write { tx -> Revision? in
            // Linked identities go with it (explicitly: SQLite's foreign keys may be off).
            let linked = try await tx.query("DELETE FROM user_identities WHERE provider_id = $1 RETURNING user_id", id)
            guard try await tx.queryFirst("DELETE FROM identity_providers WHERE id = $1 RETURNING id", id) != nil else { return nil }
            try await tx.execute("DELETE FROM upstream_flows WHERE provider_id = $1", id)
            try await Self.audit(tx, "identity_provider.deleted", actor: actor, target: "identity_provider:\(id)", at: now, ["identities_removed": .number(Double(linked.count))])
            for row in linked { _ = try await ChangeLog.append(tx, .userUpdated(try row.uuid("user_id")), at: now) }
            return try await ChangeLog.append(tx, .other(kind: "identity_provider.changed", subject: id), at: now)
        }
    }

    // MARK: Identities

    static let identityColumns = "id, user_id, provider_id, subject, email, created_at, last_used_at"

    static func decodeIdentity(_ row: SQLRow) throws -> LinkedIdentity {
        LinkedIdentity(
            id: try row.uuid("id"), userID: try row.uuid("user_id"), providerID: try row.string("provider_id"), subject: try row.string("subject"),
            email: try row.string("email"), createdAt: try row.date("created_at"), lastUsedAt: try row.optionalDate("last_used_at"))
    }

    public func identities(userID: UUID) async throws -> [LinkedIdentity] {
        try await db.query("SELECT \(Self.identityColumns) FROM user_identities WHERE user_id = $1 ORDER BY created_at, id", userID).map(Self.decodeIdentity)
    }

    public func identity(providerID: String, subject: String) async throws -> LinkedIdentity? {
        try await db.queryFirst("SELECT \(Self.identityColumns) FROM user_identities WHERE provider_id = $1 AND subject = $2", providerID, subject)
            .map(Self.decodeIdentity)
    }

    public func identityCount(providerID: String) async throws -> Int {
        try await db.count("FROM user_identities WHERE provider_id = $1", providerID)
    }

    static func identityDetails(_ i: LinkedIdentity) -> [String: JSONValue] {
        ["identity_id": .string(i.id.lowercasedString), "provider_id": .string(i.providerID), "subject": .string(i.subject), "email": .string(i.email)]
    }

    static func insertIdentity(_ tx: any SQLExecutor, _ i: LinkedIdentity) async throws {
        try await tx.execute(
            "INSERT INTO user_identities (\(identityColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            i.id, i.userID, i.providerID, i.subject, i.email, i.createdAt, i.lastUsedAt)
    }

    public func link(_ identity: LinkedIdentity) async throws -> Revision {
        do {
            return try await write { tx in
                try await Self.insertIdentity(tx, identity)
                try await Self.audit(
                    tx, "identity.linked", actor: .user(identity.userID), target: "user:\(identity.userID.lowercasedString)", at: identity.createdAt,
                    Self.identityDetails(identity))
                return try await ChangeLog.append(tx, .userUpdated(identity.userID), at: identity.createdAt)
            }
        } catch StorageError.uniqueViolation {
            throw FederationError.conflict(code: "identity_taken", "this upstream account is linked to an account already")
        }
    }

    public func unlink(identityID: UUID, userID: UUID, now: Date) async throws -> UnlinkOutcome {
        try await write { tx in
            // The account's row lock (PostgreSQL; SQLite has one writer): two unlinks of the last
            // two identities of a passwordless account cannot both see "one more is left".
            let lock = tx.dialect == .postgres ? " FOR UPDATE" : ""
            guard let user = try await tx.queryFirst("SELECT password_hash FROM users WHERE id = $1\(lock)", userID) else { return .notFound }
            guard let row = try await tx.queryFirst(
                "SELECT \(Self.identityColumns) FROM user_identities WHERE id = $1 AND user_id = $2", identityID, userID) else { return .notFound }
            let identity = try Self.decodeIdentity(row)
            let others = try await tx.count("FROM user_identities WHERE user_id = $1 AND id <> $2", userID, identityID)
            if try user.string("password_hash").isEmpty, others == 0 { return .lastCredential }
            try await tx.execute("DELETE FROM user_identities WHERE id = $1", identityID)
            try await Self.audit(tx, "identity.unlinked", actor: .user(userID), target: "user:\(userID.lowercasedString)", at: now, Self.identityDetails(identity))
            return .unlinked(try await ChangeLog.append(tx, .userUpdated(userID), at: now))
        }
    }

    public func createUser(_ user: User, identity: LinkedIdentity, inviteTokenHash: String?, inviteLifetime: TimeInterval) async throws -> Revision? {
        do {
            return try await write { tx -> Revision? in
                let at = user.createdAt
                if let inviteTokenHash {
                    guard try await SQLInviteStore.spendSignupInvite(tx, tokenHash: inviteTokenHash, email: user.email, now: at) else { return nil }
                }
                try await SQLIdentityStore.insertUser(tx, UserCredentials(user: user, passwordHash: ""))
                try await SQLInviteStore.wakeDormantInvites(tx, email: user.email, now: at, lifetime: inviteLifetime)
                try await Self.insertIdentity(tx, identity)
                try await Self.audit(tx, "identity.linked", actor: .user(user.id), target: "user:\(user.id.lowercasedString)", at: at, Self.identityDetails(identity))
                try await Self.audit(tx, "identity.signed_in", actor: .user(user.id), target: "user:\(user.id.lowercasedString)", at: at, Self.identityDetails(identity))
                return try await ChangeLog.append(tx, .userCreated(user.id), at: at)
            }
        } catch StorageError.uniqueViolation {
            throw IdentityError.emailTaken
        }
    }

    public func recordSignIn(_ identity: LinkedIdentity, email: String, now: Date) async throws {
        _ = try await write { tx in
            try await tx.execute("UPDATE user_identities SET last_used_at = $2, email = $3 WHERE id = $1", identity.id, now, email)
            var seen = identity
            seen.email = email
            try await Self.audit(tx, "identity.signed_in", actor: .user(identity.userID), target: "user:\(identity.userID.lowercasedString)", at: now, Self.identityDetails(seen))
            return try await ChangeLog.append(tx, .userUpdated(identity.userID), at: now)
        }
    }

    // MARK: Flows

    public func saveFlow(_ f: UpstreamFlow) async throws {
        var linkUser: UUID?, invite: String?
        switch f.intent {
        case .link(let user): linkUser = user
        case .signIn(let hash): invite = hash
        }
        let (linkUserID, inviteToken) = (linkUser, invite)
        try await db.execute("DELETE FROM upstream_flows WHERE expires_at <= $1", f.createdAt)
        try await db.execute(
            """
            INSERT INTO upstream_flows (state_hash, provider_id, nonce, code_verifier, link_user_id, invite_token_hash, return_to, created_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """,
            f.stateHash, f.providerID, f.nonce, f.codeVerifier, linkUserID, inviteToken, f.returnTo, f.createdAt, f.expiresAt)
    }

    public func takeFlow(stateHash: String, now: Date) async throws -> UpstreamFlow? {
        // DELETE … RETURNING: of two callbacks racing with one state, exactly one gets the flow.
        guard let row = try await db.queryFirst(
            """
            DELETE FROM upstream_flows WHERE state_hash = $1
            RETURNING state_hash, provider_id, nonce, code_verifier, link_user_id, invite_token_hash, return_to, created_at, expires_at
            """, stateHash) else { return nil }
        let expires = try row.date("expires_at")
        guard expires > now else { return nil }
        let intent: UpstreamFlow.Intent = try row.optionalUUID("link_user_id").map { .link(userID: $0) } ?? .signIn(inviteTokenHash: try row.optionalString("invite_token_hash"))
        return UpstreamFlow(
            stateHash: stateHash, providerID: try row.string("provider_id"), nonce: try row.string("nonce"), codeVerifier: try row.string("code_verifier"),
            intent: intent, returnTo: try row.optionalString("return_to"), createdAt: try row.date("created_at"), expiresAt: expires)
    }
}
