import Authority
import Foundation
import Identity
import Policy
import Tenancy

/// A whole instance as one JSON document: users (with their argon2id hashes, so logins keep
/// working), orgs, memberships and the audit log. Sessions, refresh tokens and signing keys are
/// left out on purpose: they are bound to the instance's master key and die with a restore.
/// No secret appears in clear, but the hashes make a backup sensitive.
public struct BackupDocument: Codable, Sendable, Equatable {
    public static let currentVersion = 1

    public var version: Int
    public var createdAt: Date
    public var users: [User]
    public var orgs: [Org]
    public var memberships: [Membership]
    public var auditEvents: [AuditEvent]
    public var bindings: [Binding]
    public var serviceAccounts: [ServiceAccount]
    /// Keys with the SHA-256 of their secret (never the secret): they keep working after a restore.
    public var apiKeys: [APIKey]
    /// Invites with the hash of their token (links already mailed keep working).
    public var invites: [Invite]
    public var platformInvites: [PlatformInvite]?

    // Ids are lowercase strings, as in the API (JSONEncoder would write UUIDs in upper case).
    public struct User: Codable, Sendable, Equatable {
        public var id: String
        public var email: String
        public var name: String
        public var emailVerified: Bool
        public var isRoot: Bool
        public var passwordHash: String
        public var createdAt: Date
        public var updatedAt: Date
    }

    public struct Org: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        public var description: String
        public var metadata: [String: JSONValue]
        public var createdAt: Date
        public var updatedAt: Date
        public var maxKeyTtl: Int?
    }

    public struct Membership: Codable, Sendable, Equatable {
        public var orgId: String
        public var userId: String
        public var role: Role
        public var expiresAt: Date?
        public var createdAt: Date
        public var updatedAt: Date
        public var auditEventId: String?
    }

    public struct Binding: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String
        /// `user` or `service_account`.
        public var subjectType: String
        public var subjectId: String
        /// The full object string.
        public var resource: String
        public var role: Role
        public var expiresAt: Date?
        public var createdAt: Date
        public var updatedAt: Date
        public var auditEventId: String?
    }

    public struct Invite: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String
        public var email: String
        public var role: Role
        public var state: String
        public var dormant: Bool
        public var tokenHash: String
        public var inviterId: String?
        public var platformInviteId: String?
        public var createdAt: Date
        public var expiresAt: Date
    }

    public struct PlatformInvite: Codable, Sendable, Equatable {
        public var id: String
        public var email: String
        public var state: String
        public var tokenHash: String
        public var inviterId: String?
        public var createdAt: Date
        public var expiresAt: Date
    }

    public struct ServiceAccount: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String
        public var name: String
        public var role: Role
        public var createdAt: Date
    }

    public struct APIKey: Codable, Sendable, Equatable {
        public var id: String
        public var prefix: String
        public var secretHash: String
        public var name: String
        public var userId: String?
        public var serviceAccountId: String?
        public var scopes: [String]
        public var createdAt: Date
        public var expiresAt: Date?
        public var lastUsedAt: Date?
        public var revokedAt: Date?
        /// Made while the owner's address was unproven (a password reset revokes it); absent in
        /// older backups, where it is taken from the owner's current state.
        public var beforeProof: Bool?
    }

    public struct AuditEvent: Codable, Sendable, Equatable {
        public var id: String
        public var at: Date
        public var actorType: String
        public var actorId: String?
        public var action: String
        public var orgId: String?
        public var target: String
        public var details: [String: JSONValue]
    }

    /// Snake_case keys, lowercase UUIDs, RFC 3339 timestamps with microseconds (the stored precision).
    public static func encode(_ document: BackupDocument) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(RFC3339.string(date, fractionDigits: 6))
        }
        return try encoder.encode(document)
    }

    public static func decode(_ data: Data) throws -> BackupDocument {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            guard let date = RFC3339.date(try c.decode(String.self)) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 timestamp")
            }
            return date
        }
        do {
            return try decoder.decode(BackupDocument.self, from: data)
        } catch let error as DecodingError {
            throw TenancyError.invalid("not a Portcullis backup: \(Self.describe(error))")
        } catch {
            throw TenancyError.invalid("not a Portcullis backup: the document is not valid JSON")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? KeyCase.snake($0.stringValue) }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let c): return "missing \(path(c).isEmpty ? "" : path(c) + ".")\(KeyCase.snake(key.stringValue))"
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "the document is not valid JSON" : "\(path(c)) is not valid"
        @unknown default: return "the document is not valid"
        }
    }
}

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
public struct SQLBackup: Sendable {
    public let db: any SQLDatabase
    let observer: ChangeObserver?

    public init(database: any SQLDatabase, observer: ChangeObserver? = nil) {
        db = database
        self.observer = observer
    }

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
            return BackupDocument(
                version: BackupDocument.currentVersion, createdAt: now, users: users, orgs: orgs, memberships: memberships,
                auditEvents: audit, bindings: bindings, serviceAccounts: accounts, apiKeys: keys, invites: invites, platformInvites: platformInvites)
        }
    }

    /// Loads `document` into an empty instance in one transaction. "Empty" means no orgs and no
    /// users other than root administrators; those (and their sessions) are replaced by the
    /// backup's users, so the instance answers exactly as the backed-up one did.
    public func restore(_ document: BackupDocument, actor: Actor?, now: Date = Date()) async throws -> RestoreSummary {
        let records = try Self.validate(document)
        let collector = ChangeCollector()
        do {
            let summary = try await db.transaction { tx in
                collector.reset()
                let orgCount = try await tx.queryFirst("SELECT COUNT(*) AS n FROM orgs")?.int("n") ?? 0
                let userCount = try await tx.queryFirst("SELECT COUNT(*) AS n FROM users WHERE is_root = FALSE")?.int("n") ?? 0
                let auditCount = try await tx.queryFirst("SELECT COUNT(*) AS n FROM audit_events")?.int("n") ?? 0
                let platformCount = try await tx.queryFirst("SELECT COUNT(*) AS n FROM platform_invites")?.int("n") ?? 0
                guard orgCount == 0, userCount == 0, auditCount == 0, platformCount == 0 else {
                    throw TenancyError.conflict("restore needs an empty instance (no orgs, no audit events, no users but root administrators)")
                }
                // The root accounts that exist are replaced; their sessions end with them.
                let sessions = try await tx.query("SELECT id FROM sessions WHERE revoked_at IS NULL").map { try $0.uuid("id") }
                try await tx.execute("DELETE FROM users")
                for (id, u) in records.users {
                    try await tx.execute(
                        "INSERT INTO users (\(SQLIdentityStore.userColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        id, u.email, u.name, u.passwordHash, u.emailVerified, u.isRoot, u.createdAt, u.updatedAt)
                }
                let writer = SQLTenancyStore.Writer(tx: tx, collector: collector)
                for o in records.orgs { try await writer.insertOrg(o) }
                for m in records.memberships { try await writer.upsertMembership(m) }
                let keyWriter = SQLKeyStore.Writer(tx: tx)
                for a in records.serviceAccounts { try await keyWriter.insertServiceAccount(a) }
                for (k, hash) in records.apiKeys { try await keyWriter.insertKey(k, secretHash: hash) }
                for (id, beforeProof) in records.keysBeforeProof {
                    try await tx.execute("UPDATE api_keys SET before_proof = $2 WHERE id = $1", id, beforeProof)
                }
                let bindingWriter = SQLPolicyStore.Writer(tx: tx)
                for b in records.bindings { try await bindingWriter.upsertBinding(b) }
                for p in records.platformInvites {
                    try await tx.execute(
                        "INSERT INTO platform_invites (id, email, state, token_hash, inviter_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        UUID(uuidString: p.id)!, p.email, p.state, p.tokenHash, p.inviterId.flatMap(UUID.init(uuidString:)), p.createdAt, p.expiresAt)
                }
                for i in records.invites {
                    try await tx.execute(
                        """
                        INSERT INTO invites (id, org_id, email, role, state, dormant, token_hash, inviter_id, platform_invite_id, created_at, expires_at)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                        """,
                        UUID(uuidString: i.id)!, UUID(uuidString: i.orgId)!, i.email, i.role.rawValue, i.state, i.dormant, i.tokenHash,
                        i.inviterId.flatMap(UUID.init(uuidString:)), i.platformInviteId.flatMap(UUID.init(uuidString:)), i.createdAt, i.expiresAt)
                }
                for e in records.auditEvents { try await writer.appendAudit(e) }
                let counts: [String: JSONValue] = [
                    "users": .number(Double(records.users.count)), "orgs": .number(Double(records.orgs.count)),
                    "memberships": .number(Double(records.memberships.count)), "audit_events": .number(Double(records.auditEvents.count)),
                    "bindings": .number(Double(records.bindings.count)), "service_accounts": .number(Double(records.serviceAccounts.count)),
                    "api_keys": .number(Double(records.apiKeys.count)),
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
            if let observer { await observer(collector.changes) }
            return summary
        } catch StorageError.uniqueViolation(let what) {
            throw TenancyError.invalid("the backup repeats a record (\(what))")
        } catch StorageError.foreignKeyViolation {
            throw TenancyError.invalid("the backup has a membership whose org or user is missing")
        }
    }

    /// The document's records as domain values, after the checks the schema cannot make.
    struct Records {
        var users: [(UUID, BackupDocument.User)] = []
        var orgs: [Org] = []
        var memberships: [Membership] = []
        var bindings: [Policy.Binding] = []
        var serviceAccounts: [Policy.ServiceAccount] = []
        var apiKeys: [(Identity.APIKey, String)] = []
        var keysBeforeProof: [UUID: Bool] = [:]
        var auditEvents: [AuditEvent] = []
        var invites: [BackupDocument.Invite] = []
        var platformInvites: [BackupDocument.PlatformInvite] = []
    }

    /// Checks what the schema cannot: the version, the sections this version cannot hold, ids,
    /// and fields the API would have refused.
    static func validate(_ d: BackupDocument) throws -> Records {
        guard d.version == BackupDocument.currentVersion else {
            throw TenancyError.invalid("backup version \(d.version) is not supported (this server reads version \(BackupDocument.currentVersion))")
        }
        let states = ["pending", "accepted", "declined", "revoked"]
        /// The rule the API stores addresses by (a restored address reaches SMTP envelopes and
        /// account lookups): one it would refuse is refused; one in another form (a backup from
        /// before NFC, say) is restored in the stored form, as the start-up migration does.
        func address(_ email: String, of record: String) throws -> String {
            guard let canonical = Email.canonical(email) else {
                throw TenancyError.invalid("\(record) has an e-mail address that is not valid")
            }
            return canonical
        }
        var records = Records()
        var platformIDs = Set<UUID>()
        for var p in d.platformInvites ?? [] {
            let pid = try id(p.id, "platform invite")
            p.email = try address(p.email, of: "platform invite \(p.id)")
            guard ["pending", "accepted", "revoked"].contains(p.state), p.tokenHash.utf8.count == 64 else {
                throw TenancyError.invalid("platform invite \(p.id) has a bad state or token hash")
            }
            if let inviter = p.inviterId { _ = try id(inviter, "user") }
            platformIDs.insert(pid)
            records.platformInvites.append(p)
        }
        func id(_ text: String, _ what: String) throws -> UUID {
            guard let id = UUID(uuidString: text) else { throw TenancyError.invalid("\(what) id \(text) is not a UUID") }
            return id
        }
        // Canonical addresses are NFC, so the dictionary's canonical-equivalence compare is a byte compare.
        var owners: [String: String] = [:]
        for var u in d.users {
            u.email = try address(u.email, of: "user \(u.id)")
            if let other = owners.updateValue(u.id, forKey: u.email) {
                throw TenancyError.invalid("users \(other) and \(u.id) have one e-mail address, \(u.email)")
            }
            guard u.passwordHash.hasPrefix("$argon2id$") else {
                throw TenancyError.invalid("user \(u.id) has a password hash that is not argon2id")
            }
            records.users.append((try id(u.id, "user"), u))
        }
        for o in d.orgs {
            records.orgs.append(Org(
                id: try id(o.id, "org"), name: try OrgFields.name(o.name), description: try OrgFields.description(o.description),
                metadata: try OrgFields.metadata(.object(o.metadata)), createdAt: o.createdAt, updatedAt: o.updatedAt,
                maxKeyTTL: try OrgFields.maxKeyTTL(o.maxKeyTtl)))
        }
        let userIDs = Set(records.users.map(\.0))
        let orgIDs = Set(records.orgs.map(\.id))
        guard d.users.contains(where: \.isRoot) else {
            throw TenancyError.invalid("the backup has no root administrator; the restored instance could not be administered")
        }
        for var i in d.invites {
            _ = try id(i.id, "invite")
            i.email = try address(i.email, of: "invite \(i.id)")
            guard orgIDs.contains(try id(i.orgId, "org")) else { throw TenancyError.invalid("invite \(i.id) refers to an org that is not in the backup") }
            guard states.contains(i.state), i.tokenHash.utf8.count == 64 else { throw TenancyError.invalid("invite \(i.id) has a bad state or token hash") }
            if let p = i.platformInviteId, !platformIDs.contains(try id(p, "platform invite")) {
                throw TenancyError.invalid("invite \(i.id) refers to a platform invite that is not in the backup")
            }
            if let inviter = i.inviterId { _ = try id(inviter, "user") }
            records.invites.append(i)
        }
        var owned = Set<UUID>()
        var pairs = Set<String>()
        for m in d.memberships {
            let membership = Membership(orgID: try id(m.orgId, "org"), userID: try id(m.userId, "user"), role: m.role,
                                        expiresAt: m.expiresAt, createdAt: m.createdAt, updatedAt: m.updatedAt,
                                        auditEventID: try m.auditEventId.map { try id($0, "audit event") })
            guard orgIDs.contains(membership.orgID), userIDs.contains(membership.userID) else {
                throw TenancyError.invalid("a membership refers to an org or user that is not in the backup")
            }
            guard pairs.insert("\(membership.orgID)/\(membership.userID)").inserted else {
                throw TenancyError.invalid("user \(m.userId) appears twice among the members of org \(m.orgId)")
            }
            if m.role == .owner, m.expiresAt == nil { owned.insert(membership.orgID) }
            records.memberships.append(membership)
        }
        if let orphan = orgIDs.subtracting(owned).first {
            throw TenancyError.invalid("org \(orphan.lowercasedString) has no permanent owner")
        }
        var accountOrgs: [UUID: UUID] = [:]
        for a in d.serviceAccounts {
            let account = Policy.ServiceAccount(id: try id(a.id, "service account"), orgID: try id(a.orgId, "org"), name: a.name, role: a.role, createdAt: a.createdAt)
            guard orgIDs.contains(account.orgID) else { throw TenancyError.invalid("service account \(a.id) refers to an org that is not in the backup") }
            guard accountOrgs.updateValue(account.orgID, forKey: account.id) == nil else { throw TenancyError.invalid("service account \(a.id) appears twice") }
            records.serviceAccounts.append(account)
        }
        var prefixes = Set<String>()
        for k in d.apiKeys {
            guard k.secretHash.utf8.count == 64, k.secretHash.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
                throw TenancyError.invalid("key \(k.id) has no SHA-256 secret hash")
            }
            guard APIKeyFormat.parse("pcl_\(k.prefix)_" + String(repeating: "a", count: 43)) != nil, prefixes.insert(k.prefix).inserted else {
                throw TenancyError.invalid("key \(k.id) has a malformed or repeated prefix")
            }
            guard (try? KeyScopes.parse(k.scopes)) != nil else { throw TenancyError.invalid("key \(k.id) has an unknown scope") }
            let owner: KeyOwner
            switch (k.userId, k.serviceAccountId) {
            case (let u?, nil):
                let user = try id(u, "user")
                guard userIDs.contains(user) else { throw TenancyError.invalid("key \(k.id) belongs to a user that is not in the backup") }
                owner = .user(user)
            case (nil, let a?):
                let account = try id(a, "service account")
                guard let org = accountOrgs[account] else { throw TenancyError.invalid("key \(k.id) belongs to a service account that is not in the backup") }
                owner = .serviceAccount(id: account, orgID: org)
            default:
                throw TenancyError.invalid("key \(k.id) must belong to exactly one user or service account")
            }
            if let beforeProof = k.beforeProof { records.keysBeforeProof[try id(k.id, "key")] = beforeProof }
            records.apiKeys.append((Identity.APIKey(
                id: try id(k.id, "key"), prefix: k.prefix, name: k.name, owner: owner, scopes: k.scopes, createdAt: k.createdAt,
                expiresAt: k.expiresAt, lastUsedAt: k.lastUsedAt, revokedAt: k.revokedAt), k.secretHash))
        }
        var boundPairs = Set<String>()
        for b in d.bindings {
            let org = try id(b.orgId, "org"), subject = try id(b.subjectId, b.subjectType)
            let principal: Principal
            switch b.subjectType {
            case "user":
                guard userIDs.contains(subject) else { throw TenancyError.invalid("binding \(b.id) refers to a user that is not in the backup") }
                principal = .user(subject)
            case "service_account":
                guard accountOrgs[subject] == org else { throw TenancyError.invalid("binding \(b.id) refers to a service account not of its org") }
                principal = .serviceAccount(subject)
            default:
                throw TenancyError.invalid("binding \(b.id): subject_type must be user or service_account")
            }
            guard orgIDs.contains(org) else {
                throw TenancyError.invalid("binding \(b.id) refers to an org that is not in the backup")
            }
            let resource: ObjectRef
            do { resource = try Policy.Binding.resource(b.resource, in: org) } catch {
                guard case .invalid(let m) = error else { throw error }
                throw TenancyError.invalid("binding \(b.id): \(m)")
            }
            guard boundPairs.insert("\(org)/\(b.subjectType):\(subject)/\(resource.path)").inserted else {
                throw TenancyError.invalid("binding \(b.id) repeats another binding's subject and resource")
            }
            records.bindings.append(Policy.Binding(
                id: try id(b.id, "binding"), orgID: org, principal: principal, resource: resource, role: b.role, expiresAt: b.expiresAt,
                createdAt: b.createdAt, updatedAt: b.updatedAt, auditEventID: try b.auditEventId.map { try id($0, "audit event") }))
        }
        for e in d.auditEvents {
            records.auditEvents.append(AuditEvent(
                id: try id(e.id, "audit event"), at: e.at, actorType: e.actorType, actorID: try e.actorId.map { try id($0, "actor") },
                action: e.action, orgID: try e.orgId.map { try id($0, "org") }, target: e.target, details: e.details))
        }
        return records
    }
}
