import Authority
import Foundation
import Identity
import Keys
import OpenID
import Policy
import Tenancy
import Wire

/// Counts of what a restore loaded.
public struct RestoreSummary: Sendable, Equatable {
    public var users: Int
    public var orgs: Int
    public var memberships: Int
    public var auditEvents: Int
    public var revision: Int64
}

/// Exports and restores whole instances, on either backend (a SQLite backup restores into
/// PostgreSQL and the other way round).
public struct SQLBackup: SQLStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    /// Reads everything in one transaction, so the document is one consistent state, and records
    /// the export in the audit log (a backup holds every password hash: who took one matters).
    public func export(actor: Actor?, now: Date = Date()) async throws -> BackupDocument {
        try await db.transaction { tx in
            if tx.dialect == .postgres {
                // One snapshot for every SELECT below (the default READ COMMITTED takes one per statement).
                try await tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            }
            // Recorded first, so the document carries the event of its own making.
            try await SQLTenancyStore.Writer(tx: tx).appendAudit(AuditEvent(
                at: now, actorType: actor?.type ?? "system", actorID: actor?.id, action: AuditAction.backupExported,
                orgID: nil, target: "instance"))
            let users = try await tx.query(
                "SELECT id, email, name, password_hash, email_verified, is_root, created_at, updated_at FROM users ORDER BY created_at, id"
            ).map { r in
                BackupDocument.User(
                    id: try r.uuid("id").lowercasedString, email: try r.string("email"), name: try r.string("name"), emailVerified: try r.bool("email_verified"),
                    isRoot: try r.bool("is_root"), passwordHash: try r.string("password_hash"),
                    createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"))
            }
            let orgs = try await tx.query("SELECT \(SQLTenancyStore.orgColumns) FROM orgs o ORDER BY o.created_at, o.id").map { r in
                let o = try SQLTenancyStore.decodeOrg(r)
                return BackupDocument.Org(id: o.id.lowercasedString, name: o.name, description: o.description, metadata: o.metadata, createdAt: o.createdAt, updatedAt: o.updatedAt, maxKeyTtl: o.maxKeyTTL)
            }
            let memberships = try await tx.query(
                "SELECT \(SQLTenancyStore.membershipColumns) FROM memberships m ORDER BY m.org_id, m.created_at, m.user_id"
            ).map { r in
                let m = try SQLTenancyStore.decodeMembership(r)
                return BackupDocument.Membership(orgId: m.orgID.lowercasedString, userId: m.userID.lowercasedString, role: m.role, expiresAt: m.expiresAt, createdAt: m.createdAt, updatedAt: m.updatedAt, auditEventId: m.auditEventID?.lowercasedString)
            }
            let bindings = try await tx.query("SELECT \(SQLPolicyStore.bindingColumns) FROM bindings ORDER BY created_at, id").map { r in
                let b = try SQLPolicyStore.decodeBinding(r)
                return BackupDocument.Binding(
                    id: b.id.lowercasedString, orgId: b.orgID.lowercasedString, subjectType: b.principal.typeName,
                    subjectId: b.principal.id.lowercasedString, resource: b.resource.string, role: b.role, expiresAt: b.expiresAt,
                    createdAt: b.createdAt, updatedAt: b.updatedAt, auditEventId: b.auditEventID?.lowercasedString)
            }
            let accounts = try await tx.query("SELECT \(SQLKeyStore.accountColumns) FROM service_accounts ORDER BY created_at, id").map { r in
                let a = try SQLKeyStore.decodeAccount(r)
                return BackupDocument.ServiceAccount(id: a.id.lowercasedString, orgId: a.orgID.lowercasedString, name: a.name, role: a.role, createdAt: a.createdAt)
            }
            let keys = try await tx.query("SELECT \(SQLKeyStore.keyColumns), secret_hash, before_proof FROM api_keys ORDER BY created_at, id").map { r in
                let k = try SQLKeyStore.decodeKey(r)
                var user: String?, account: String?
                switch k.owner {
                case .user(let u): user = u.lowercasedString
                case .serviceAccount(let a, _): account = a.lowercasedString
                }
                return BackupDocument.APIKey(
                    id: k.id.lowercasedString, prefix: k.prefix, secretHash: try r.string("secret_hash"), name: k.name, userId: user,
                    serviceAccountId: account, scopes: k.scopes, createdAt: k.createdAt, expiresAt: k.expiresAt, lastUsedAt: k.lastUsedAt, revokedAt: k.revokedAt,
                    beforeProof: try r.bool("before_proof"))
            }
            let platformInvites = try await tx.query(
                "SELECT id, email, state, token_hash, inviter_id, created_at, expires_at FROM platform_invites ORDER BY created_at, id").map { r in
                BackupDocument.PlatformInvite(
                    id: try r.uuid("id").lowercasedString, email: try r.string("email"), state: try r.string("state"), tokenHash: try r.string("token_hash"),
                    inviterId: try r.optionalUUID("inviter_id")?.lowercasedString, createdAt: try r.date("created_at"), expiresAt: try r.date("expires_at"))
            }
            let invites = try await tx.query(
                "SELECT id, org_id, email, role, state, dormant, token_hash, inviter_id, platform_invite_id, created_at, expires_at FROM invites ORDER BY created_at, id").map { r in
                BackupDocument.Invite(
                    id: try r.uuid("id").lowercasedString, orgId: try r.uuid("org_id").lowercasedString, email: try r.string("email"),
                    role: try SQLTenancyStore.decodeRole(r), state: try r.string("state"), dormant: try r.bool("dormant"), tokenHash: try r.string("token_hash"),
                    inviterId: try r.optionalUUID("inviter_id")?.lowercasedString, platformInviteId: try r.optionalUUID("platform_invite_id")?.lowercasedString,
                    createdAt: try r.date("created_at"), expiresAt: try r.date("expires_at"))
            }
            let audit = try await tx.query("SELECT \(SQLTenancyStore.auditColumns) FROM audit_events ORDER BY seq").map { r in
                let e = try SQLTenancyStore.decodeAudit(r)
                return BackupDocument.AuditEvent(id: e.id.lowercasedString, at: e.at, actorType: e.actorType, actorId: e.actorID?.lowercasedString, action: e.action, orgId: e.orgID?.lowercasedString, target: e.target, details: e.details)
            }
            let clients = try await tx.query("SELECT \(SQLClientStore.columns), secret_hash FROM oauth_clients ORDER BY created_at, id").map { r in
                let c = try SQLClientStore.decode(r)
                return BackupDocument.OAuthClient(
                    id: c.id.lowercasedString, orgId: c.orgID?.lowercasedString, name: c.name, kind: c.kind.rawValue,
                    secretHash: try r.optionalString("secret_hash"), redirectUris: c.redirectURIs, scopes: c.scopes, firstParty: c.firstParty,
                    createdAt: c.createdAt, updatedAt: c.updatedAt, idTokenSignedResponseAlg: c.idTokenAlgorithm.rawValue,
                    accessTokenLifetime: c.accessTokenLifetime, refreshTokenLifetime: c.refreshTokenLifetime, claimTemplate: c.claimTemplate?.json,
                    serviceAccountId: c.serviceAccountID?.lowercasedString)
            }
            let consents = try await tx.query("SELECT user_id, client_id, scopes, granted_at FROM oauth_consents ORDER BY granted_at, user_id, client_id").map { r in
                BackupDocument.OAuthConsent(
                    userId: try r.uuid("user_id").lowercasedString, clientId: try r.uuid("client_id").lowercasedString,
                    scopes: try r.stringList("scopes"), grantedAt: try r.date("granted_at"))
            }
            let (groups, groupMembers, overrides) = try await Self.exportGroups(tx)
            let (providers, identities) = try await Self.exportIdentities(tx)
            return BackupDocument(
                version: BackupDocument.currentVersion, createdAt: now, users: users, orgs: orgs, memberships: memberships,
                auditEvents: audit, bindings: bindings, serviceAccounts: accounts, apiKeys: keys, invites: invites, platformInvites: platformInvites,
                oauthClients: clients, oauthConsents: consents, groups: groups, groupMembers: groupMembers, overrides: overrides,
                identityProviders: providers, userIdentities: identities)
        }
    }

    /// Loads `document` into an empty instance in one transaction. "Empty" means no orgs and no
    /// users other than root administrators; those (and their sessions) are replaced by the
    /// backup's users, so the instance answers exactly as the backed-up one did.
    public func restore(_ document: BackupDocument, actor: Actor?, now: Date = Date()) async throws -> RestoreSummary {
        let records = try Self.validate(document)
        do {
            return try await write { tx in
                let occupied = [
                    "FROM orgs", "FROM users WHERE is_root = FALSE", "FROM audit_events", "FROM platform_invites", "FROM oauth_clients",
                    "FROM identity_providers",
                ]
                for rows in occupied where try await tx.count(rows) > 0 {
                    throw BackupError.conflict("restore needs an empty instance (no orgs, no audit events, no OpenID clients, no sign-in providers, no users but root administrators)")
                }
                // The root accounts that exist are replaced; their sessions end with them.
                let sessions = try await tx.query("SELECT id FROM sessions WHERE revoked_at IS NULL").map { try $0.uuid("id") }
                try await tx.execute("DELETE FROM users")
                for (id, u) in records.users {
                    try await tx.execute(
                        "INSERT INTO users (\(SQLIdentityStore.userColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        id, u.email, u.name, u.passwordHash, u.emailVerified, u.isRoot, u.createdAt, u.updatedAt)
                }
                let writer = SQLTenancyStore.Writer(tx: tx)
                for o in records.orgs { try await writer.insertOrg(o) }
                for m in records.memberships { try await writer.upsertMembership(m) }
                let keyWriter = SQLKeyStore.Writer(tx: tx)
                for a in records.serviceAccounts { try await keyWriter.insertServiceAccount(a) }
                for (k, hash) in records.apiKeys { try await keyWriter.insertKey(k, secretHash: hash) }
                for (id, beforeProof) in records.keysBeforeProof {
                    try await tx.execute("UPDATE api_keys SET before_proof = $2 WHERE id = $1", id, beforeProof)
                }
                try await Self.restoreGroups(records.groups, tx)
                try await Self.restoreIdentities(records.identities, tx)
                let bindingWriter = SQLPolicyStore.Writer(tx: tx)
                for b in records.bindings { try await bindingWriter.upsertBinding(b) }
                for p in records.platformInvites {
                    try await tx.execute(
                        "INSERT INTO platform_invites (id, email, state, token_hash, inviter_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        UUIDText.parse(p.id)!, p.email, p.state, p.tokenHash, p.inviterId.flatMap({ UUIDText.parse($0) }), p.createdAt, p.expiresAt)
                }
                for i in records.invites {
                    try await tx.execute(
                        """
                        INSERT INTO invites (id, org_id, email, role, state, dormant, token_hash, inviter_id, platform_invite_id, created_at, expires_at)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                        """,
                        UUIDText.parse(i.id)!, UUIDText.parse(i.orgId)!, i.email, i.role.rawValue, i.state, i.dormant, i.tokenHash,
                        i.inviterId.flatMap({ UUIDText.parse($0) }), i.platformInviteId.flatMap({ UUIDText.parse($0) }), i.createdAt, i.expiresAt)
                }
                let clientWriter = SQLClientStore.Writer(tx: tx)
                for (c, hash) in records.clients { try await clientWriter.insert(c, secretHash: hash) }
                for c in records.consents {
                    try await tx.execute(
                        "INSERT INTO oauth_consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)",
                        c.userID, c.clientID, StringList.json(c.scopes), c.grantedAt)
                }
                for e in records.auditEvents { try await writer.insertAudit(e) }
                let counts: [String: JSONValue] = [
                    "users": .number(Double(records.users.count)), "orgs": .number(Double(records.orgs.count)),
                    "memberships": .number(Double(records.memberships.count)), "audit_events": .number(Double(records.auditEvents.count)),
                    "bindings": .number(Double(records.bindings.count)), "service_accounts": .number(Double(records.serviceAccounts.count)),
                    "api_keys": .number(Double(records.apiKeys.count)), "oauth_clients": .number(Double(records.clients.count)),
                    "oauth_consents": .number(Double(records.consents.count)), "groups": .number(Double(records.groups.groups.count)),
                    "overrides": .number(Double(records.groups.overrides.count)),
                    "identity_providers": .number(Double(records.identities.providers.count)),
                    "user_identities": .number(Double(records.identities.identities.count)),
                    "backup_created_at": .string(RFC3339.string(document.createdAt)),
                ]
                try await writer.appendAudit(AuditEvent(
                    at: now, actorType: actor?.type ?? "system", actorID: actor?.id, action: AuditAction.backupRestored,
                    orgID: nil, target: "instance", details: counts))
                for id in sessions {
                    _ = try await writer.recordChange(.sessionRevoked(id), at: now)
                }
                let revision = try await writer.recordChange(.restored, at: now)
                return RestoreSummary(users: records.users.count, orgs: records.orgs.count, memberships: records.memberships.count,
                                      auditEvents: records.auditEvents.count, revision: revision)
            }
        } catch StorageError.uniqueViolation(let what) {
            throw BackupError.invalid("the backup repeats a record (\(what))")
        } catch StorageError.foreignKeyViolation {
            throw BackupError.invalid("the backup has a membership whose org or user is missing")
        }
    }
}
