import Authority
import Foundation
import Tenancy

/// Orgs, memberships and the audit log on either SQL backend.
public struct SQLTenancyStore: SQLStore, TenancyStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    static let orgColumns = "o.id, o.name, o.description, o.metadata, o.created_at, o.updated_at, o.max_key_ttl"
    static let membershipColumns = "m.org_id, m.user_id, m.role, m.expires_at, m.created_at, m.updated_at, m.audit_event_id"
    static let auditColumns = "id, at, actor_type, actor_id, action, org_id, target, details"
    /// A membership that still counts at bind `$n`.
    static func current(_ n: Int) -> String { "(m.expires_at IS NULL OR m.expires_at > $\(n))" }

    /// The rows of one org (`$1`), or the platform's own (no org): for tables that hold both.
    static func orgOrPlatform(_ orgID: UUID?) -> (condition: String, binds: [SQLValue]) {
        orgID.map { ("org_id = $1", [$0.sqlValue]) } ?? ("org_id IS NULL", [])
    }

    static func decodeOrg(_ row: SQLRow) throws -> Org {
        Org(id: try row.uuid("id"), name: try row.string("name"), description: try row.string("description"),
            metadata: JSONValue.object(fromJSON: try row.string("metadata")),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"),
            maxKeyTTL: try row.optionalInt("max_key_ttl").map(Int.init))
    }

    static func decodeRole(_ row: SQLRow, _ column: String = "role") throws -> Role { try decodeRole(row[column], column) }

    /// The role in the row's column `i` (the whole-table scans read by position).
    static func decodeRole(_ row: SQLRow, at i: Int) throws -> Role { try decodeRole(row.cells[i], row.columns.names[i]) }

    /// The role in one cell, or in one element of a list.
    static func decodeRole(_ cell: SQLValue, _ column: String) throws -> Role {
        guard let role = Role(rawValue: try SQLRow.string(cell, column)) else { throw StorageError.decoding(column: column) }
        return role
    }

    static func decodeMembership(_ row: SQLRow) throws -> Membership {
        Membership(orgID: try row.uuid("org_id"), userID: try row.uuid("user_id"), role: try decodeRole(row),
                   expiresAt: try row.optionalDate("expires_at"), createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"),
                   auditEventID: try row.optionalUUID("audit_event_id"))
    }

    static func decodeAudit(_ row: SQLRow) throws -> AuditEvent {
        AuditEvent(id: try row.uuid("id"), at: try row.date("at"), actorType: try row.string("actor_type"),
                   actorID: try row.optionalUUID("actor_id"), action: try row.string("action"),
                   orgID: try row.optionalUUID("org_id"), target: try row.string("target"),
                   details: JSONValue.object(fromJSON: try row.string("details")))
    }

    /// `%text%` for LIKE with `\` as the escape character, so `%` and `_` in a filter match literally.
    static func likePattern(_ text: String) -> String {
        var escaped = ""
        for ch in text.lowercased() {
            if ch == "%" || ch == "_" || ch == "\\" { escaped.append("\\") }
            escaped.append(ch)
        }
        return "%" + escaped + "%"
    }

    // MARK: Reads

    public func org(id: UUID) async throws -> Org? {
        try await Writer(tx: db).org(id: id)
    }

    public func membership(orgID: UUID, userID: UUID) async throws -> Membership? {
        try await Writer(tx: db).membership(orgID: orgID, userID: userID)
    }

    public func orgs(memberUserID userID: UUID, within scope: Set<UUID>?, now: Date, nameContains: String?, limit: Int, offset: Int) async throws -> ([OrgView], Int) {
        var filter = nameContains.map { _ in " AND o.name_lower LIKE $3 ESCAPE '\\'" } ?? ""
        let pattern: SQLValue = nameContains.map { .text(Self.likePattern($0)) } ?? .null
        var binds: [SQLValue] = nameContains == nil ? [userID.sqlValue, now.sqlValue] : [userID.sqlValue, now.sqlValue, pattern]
        if let scope {
            // A scoped key's orgs, filtered here so the page and its total are exact.
            guard !scope.isEmpty else { return ([], 0) }
            let first = binds.count + 1
            filter += " AND o.id IN (" + (first..<(first + scope.count)).map { "$\($0)" }.joined(separator: ", ") + ")"
            binds += scope.sorted { $0.uuidString < $1.uuidString }.map(\.sqlValue)
        }
        let from = "FROM orgs o JOIN memberships m ON m.org_id = o.id AND m.user_id = $1 AND \(Self.current(2))\(filter)"
        return try await db.page(select: "\(Self.orgColumns), m.role", from, orderBy: "o.created_at, o.id", binds, limit: limit, offset: offset) {
            OrgView(org: try Self.decodeOrg($0), role: try Self.decodeRole($0))
        }
    }

    public func allOrgs(viewerUserID userID: UUID, now: Date, nameContains: String?, limit: Int, offset: Int) async throws -> ([OrgView], Int) {
        let filter = nameContains.map { _ in " WHERE o.name_lower LIKE $3 ESCAPE '\\'" } ?? ""
        let binds: [SQLValue] = [userID.sqlValue, now.sqlValue] + (nameContains.map { [.text(Self.likePattern($0))] } ?? [])
        // The count binds the same parameters, so it keeps the (unused) join for identical numbering.
        let from = "FROM orgs o LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $1 AND \(Self.current(2))\(filter)"
        return try await db.page(select: "\(Self.orgColumns), m.role", from, orderBy: "o.created_at, o.id", binds, limit: limit, offset: offset) { row in
            OrgView(org: try Self.decodeOrg(row), role: row.isNull("role") ? nil : try Self.decodeRole(row))
        }
    }

    static let memberColumns = "\(membershipColumns), u.email, u.name"
    static let memberFrom = "FROM memberships m JOIN users u ON u.id = m.user_id"
    static let memberSelect = "SELECT \(memberColumns) \(memberFrom)"

    static func decodeMember(_ row: SQLRow) throws -> Member {
        Member(membership: try decodeMembership(row), email: try row.string("email"), name: try row.string("name"))
    }

    public func members(orgID: UUID, limit: Int, offset: Int) async throws -> ([Member], Int) {
        try await db.page(
            select: Self.memberColumns, "\(Self.memberFrom) WHERE m.org_id = $1", orderBy: "m.created_at, m.user_id", [orgID.sqlValue],
            limit: limit, offset: offset, Self.decodeMember)
    }

    public func member(orgID: UUID, userID: UUID) async throws -> Member? {
        try await db.queryFirst("\(Self.memberSelect) WHERE m.org_id = $1 AND m.user_id = $2", orgID, userID).map(Self.decodeMember)
    }

    public func auditEvents(orgID: UUID?, filter: AuditFilter, limit: Int, offset: Int) async throws -> ([AuditEvent], Int) {
        var conditions: [String] = [], binds: [SQLValue] = []
        func bind(_ condition: String, _ value: some SQLBindable) {
            binds.append(value.sqlValue)
            conditions.append(condition.replacingOccurrences(of: "?", with: "$\(binds.count)"))
        }
        if let orgID { bind("org_id = ?", orgID) }
        if let action = filter.action { bind("action = ?", action) }
        if let actor = filter.actorID { bind("actor_id = ?", actor) }
        let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return try await db.page(
            select: Self.auditColumns, "FROM audit_events\(whereClause)", orderBy: "seq DESC", binds, limit: limit, offset: offset, Self.decodeAudit)
    }

    public func auditEvent(id: UUID) async throws -> AuditEvent? {
        try await db.queryFirst("SELECT \(Self.auditColumns) FROM audit_events WHERE id = $1", id).map(Self.decodeAudit)
    }

    // MARK: Writes

    public func write<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter) async throws -> T) async throws -> T {
        try await Self.write(db, observer: observer, lockingOrg: orgID) { tx in
            try await body(Writer(tx: tx))
        }
    }

    /// One org-scoped write transaction: locks the org (PostgreSQL; SQLite transactions begin
    /// IMMEDIATE and so already exclude every other writer), runs `body`, and after the commit
    /// hands the recorded changes to `observer` (`RecordingExecutor`).
    static func write<T: Sendable>(
        _ db: any SQLDatabase, observer: ChangeObserver?, lockingOrg orgID: UUID?,
        _ body: @escaping @Sendable (any SQLExecutor) async throws -> T
    ) async throws -> T {
        try await RecordingExecutor.transaction(db, observer: observer) { tx in
            if let orgID, tx.dialect == .postgres {
                try await tx.execute("SELECT id FROM orgs WHERE id = $1 FOR UPDATE", orgID)
            }
            return try await body(tx)
        }
    }

    /// The statements of a tenancy write, run on whatever executor it is given (a transaction,
    /// or the database itself for single reads).
    struct Writer: TenancyWriter {
        let tx: any SQLExecutor

        func org(id: UUID) async throws -> Org? {
            try await tx.queryFirst("SELECT \(SQLTenancyStore.orgColumns) FROM orgs o WHERE o.id = $1", id).map(SQLTenancyStore.decodeOrg)
        }

        func insertOrg(_ org: Org) async throws {
            try await tx.execute(
                "INSERT INTO orgs (id, name, name_lower, description, metadata, created_at, updated_at, max_key_ttl) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                org.id, org.name, org.name.lowercased(), org.description, JSONValue.object(org.metadata).canonicalJSON, org.createdAt, org.updatedAt, org.maxKeyTTL)
        }

        func updateOrg(_ org: Org) async throws {
            try await tx.execute(
                "UPDATE orgs SET name = $2, name_lower = $3, description = $4, metadata = $5, updated_at = $6, max_key_ttl = $7 WHERE id = $1",
                org.id, org.name, org.name.lowercased(), org.description, JSONValue.object(org.metadata).canonicalJSON, org.updatedAt, org.maxKeyTTL)
        }

        func deleteOrg(id: UUID, at: Date) async throws -> [UUID] {
            let ended = try await tx.query(
                """
                UPDATE sessions SET revoked_at = $2, revoke_reason = 'client_deleted'
                WHERE id IN (SELECT o.session_id FROM oauth_sessions o JOIN oauth_clients c ON c.id = o.client_id WHERE c.org_id = $1)
                    AND revoked_at IS NULL RETURNING id
                """, id, at).map { try $0.uuid("id") }
            try await tx.execute("DELETE FROM orgs WHERE id = $1", id)
            return ended
        }

        func membership(orgID: UUID, userID: UUID) async throws -> Membership? {
            try await tx.queryFirst(
                "SELECT \(SQLTenancyStore.membershipColumns) FROM memberships m WHERE m.org_id = $1 AND m.user_id = $2", orgID, userID
            ).map(SQLTenancyStore.decodeMembership)
        }

        func upsertMembership(_ m: Membership) async throws {
            try await tx.execute(
                """
                INSERT INTO memberships (org_id, user_id, role, expires_at, created_at, updated_at, audit_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role, expires_at = excluded.expires_at,
                    created_at = excluded.created_at, updated_at = excluded.updated_at, audit_event_id = excluded.audit_event_id
                """,
                m.orgID, m.userID, m.role.rawValue, m.expiresAt, m.createdAt, m.updatedAt, m.auditEventID)
        }

        func deleteMembership(orgID: UUID, userID: UUID) async throws {
            try await tx.execute("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2", orgID, userID)
            // Leaving the org leaves its groups and drops the overrides made for the member, in the same transaction.
            try await tx.execute("DELETE FROM group_members WHERE org_id = $1 AND member_type = 'user' AND member_id = $2", orgID, userID)
            try await tx.execute("DELETE FROM overrides WHERE org_id = $1 AND subject_type = 'user' AND subject_id = $2", orgID, userID)
        }

        func permanentOwnerCount(orgID: UUID) async throws -> Int {
            try await tx.count("FROM memberships WHERE org_id = $1 AND role = 'owner' AND expires_at IS NULL", orgID)
        }

        func ownedOrgCount(userID: UUID) async throws -> Int {
            try await tx.count("FROM memberships WHERE user_id = $1 AND role = 'owner'", userID)
        }

        func user(id: UUID) async throws -> UserRef? {
            try await tx.queryFirst("SELECT id, email, name, email_verified FROM users WHERE id = $1", id).map(Self.decodeUserRef)
        }

        func user(email: String) async throws -> UserRef? {
            try await tx.queryFirst("SELECT id, email, name, email_verified FROM users WHERE email = $1", email).map(Self.decodeUserRef)
        }

        static func decodeUserRef(_ row: SQLRow) throws -> UserRef {
            UserRef(id: try row.uuid("id"), email: try row.string("email"), name: try row.string("name"), emailVerified: try row.bool("email_verified"))
        }

        func revokePendingInvites(orgID: UUID, inviterID: UUID, above maxRole: Role?) async throws -> [EndedInvite] {
            let rows = try await tx.query(
                "SELECT id, email, role FROM invites WHERE org_id = $1 AND inviter_id = $2 AND state = 'pending' ORDER BY created_at, id", orgID, inviterID)
            var ended: [EndedInvite] = []
            for row in rows {
                let invite = EndedInvite(id: try row.uuid("id"), email: try row.string("email"), role: try SQLTenancyStore.decodeRole(row))
                if let maxRole, RankRules.mayManageGrant(actor: maxRole, grant: invite.role) { continue }
                try await tx.execute("UPDATE invites SET state = 'revoked' WHERE id = $1", invite.id)
                ended.append(invite)
            }
            return ended
        }

        func appendAudit(_ e: AuditEvent) async throws {
            try await insertAudit(e)
            // A recording transaction turns its audit records into webhook events at its end;
            // any other write does it now.
            if let recording = tx as? RecordingExecutor {
                recording.collector.add(e)
            } else {
                try await WebhookCapture.record([e], changes: [], in: tx)
            }
        }

        /// The record alone, as a restore brings back history: no webhook event.
        func insertAudit(_ e: AuditEvent) async throws {
            try await tx.execute(
                "INSERT INTO audit_events (\(SQLTenancyStore.auditColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                e.id, e.at, e.actorType, e.actorID, e.action, e.orgID, e.target, JSONValue.object(e.details).canonicalJSON)
        }

        /// Inside `write`, the change also reaches the store's observer after the commit.
        func recordChange(_ event: ChangeEvent, at: Date) async throws -> Int64 {
            try await ChangeLog.append(tx, event, at: at)
        }
    }
}
