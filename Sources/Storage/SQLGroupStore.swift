import Authority
import Foundation
import Policy
import Tenancy

/// Groups, their members and overrides on either SQL backend (SPEC §17).
public struct SQLGroupStore: SQLStore, GroupStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    static let groupColumns = "id, org_id, name, description, metadata, parent_id, created_at, updated_at, audit_event_id"
    static let overrideColumns = "id, org_id, subject_type, subject_id, resource_path, permission, effect, expires_at, reason, created_at, audit_event_id"

    static func decodeGroup(_ row: SQLRow) throws -> Group {
        Group(
            id: try row.uuid("id"), orgID: try row.uuid("org_id"), name: try row.string("name"), description: try row.string("description"),
            metadata: JSONValue.object(fromJSON: try row.string("metadata")), parentID: try row.optionalUUID("parent_id"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"), auditEventID: try row.optionalUUID("audit_event_id"))
    }

    static func decodeOverride(_ row: SQLRow) throws -> Override {
        let org = try row.uuid("org_id")
        guard let effect = OverrideGrant.Effect(rawValue: try row.string("effect")) else { throw StorageError.decoding(column: "effect") }
        return Override(
            id: try row.uuid("id"), orgID: org, subject: try SQLPolicyStore.principal(row),
            resource: ObjectRef(orgID: org, path: try row.string("resource_path")), permission: try row.string("permission"), effect: effect,
            expiresAt: try row.optionalDate("expires_at"), reason: try row.string("reason"), createdAt: try row.date("created_at"),
            auditEventID: try row.optionalUUID("audit_event_id"))
    }

    static func overrideGrant(_ row: SQLRow) throws -> OverrideGrant {
        guard let effect = OverrideGrant.Effect(rawValue: try row.string("effect")) else { throw StorageError.decoding(column: "effect") }
        return OverrideGrant(
            id: try row.uuid("id"), path: try row.string("resource_path"), permission: try row.string("permission"), effect: effect,
            expiresAt: try row.optionalDate("expires_at")?.instant ?? .infinity, reason: try row.string("reason"),
            auditEventID: try row.optionalUUID("audit_event_id"))
    }

    static func member(_ row: SQLRow) throws -> Principal {
        guard let p = Principal(typeName: try row.string("member_type"), id: try row.uuid("member_id")) else {
            throw StorageError.decoding(column: "member_type")
        }
        return p
    }

    // MARK: Reads

    public func groups(orgID: UUID, limit: Int, offset: Int) async throws -> ([Group], Int) {
        try await db.page(
            select: Self.groupColumns, "FROM groups WHERE org_id = $1", orderBy: "name_key, id", [orgID.sqlValue], limit: limit, offset: offset,
            Self.decodeGroup)
    }

    public func group(id: UUID, orgID: UUID) async throws -> Group? {
        try await Writer(tx: db).group(id: id, orgID: orgID)
    }

    public func groupMembers(groupID: UUID, limit: Int, offset: Int) async throws -> ([GroupMember], Int) {
        // People first (by when they joined), then child groups (by name): one ordered union, paged in SQL.
        let rows = try await db.query(
            """
            SELECT * FROM (
                SELECT 0 AS kind, gm.member_type, gm.member_id, COALESCE(u.email, s.name) AS label, gm.expires_at, gm.created_at, gm.updated_at, '' AS sort_key
                FROM group_members gm
                LEFT JOIN users u ON gm.member_type = 'user' AND u.id = gm.member_id
                LEFT JOIN service_accounts s ON gm.member_type = 'service_account' AND s.id = gm.member_id
                WHERE gm.group_id = $1
                UNION ALL
                SELECT 1 AS kind, 'group' AS member_type, g.id AS member_id, g.name AS label, NULL AS expires_at, g.created_at, g.updated_at, g.name_key AS sort_key
                FROM groups g WHERE g.parent_id = $1
            ) m ORDER BY kind, created_at, sort_key, member_id LIMIT $2 OFFSET $3
            """, groupID, limit, offset)
        let people = try await db.count("FROM group_members WHERE group_id = $1", groupID)
        let children = try await db.count("FROM groups WHERE parent_id = $1", groupID)
        return (try rows.map { r in
            GroupMember(groupID: groupID, member: try Self.member(r), label: try r.optionalString("label"), expiresAt: try r.optionalDate("expires_at"),
                        createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"))
        }, people + children)
    }

    public func overrides(orgID: UUID, limit: Int, offset: Int) async throws -> ([Override], Int) {
        try await db.page(
            select: Self.overrideColumns, "FROM overrides WHERE org_id = $1", orderBy: "created_at, id", [orgID.sqlValue], limit: limit, offset: offset,
            Self.decodeOverride)
    }

    public func writeGroups<T: Sendable>(lockingOrg orgID: UUID, _ body: @escaping @Sendable (any TenancyWriter, any GroupWriter) async throws -> T) async throws -> T {
        try await SQLTenancyStore.write(db, observer: observer, lockingOrg: orgID) { tx in
            try await body(SQLTenancyStore.Writer(tx: tx), Writer(tx: tx))
        }
    }

    // MARK: Loading into the engine

    /// The org's groups into `grants`: the tree, and the memberships of `only` (or everyone's).
    static func loadGroups(_ tx: any SQLExecutor, orgID: UUID, only principal: Principal? = nil, into grants: inout OrgGrants) async throws {
        var edges: [(Principal, GroupEdge)] = []
        let edgeRows: [SQLRow]
        if let principal {
            edgeRows = try await tx.query(
                "SELECT group_id, member_type, member_id, expires_at, audit_event_id FROM group_members WHERE member_type = $1 AND member_id = $2 AND org_id = $3",
                principal.typeName, principal.id, orgID)
        } else {
            edgeRows = try await tx.query("SELECT group_id, member_type, member_id, expires_at, audit_event_id FROM group_members WHERE org_id = $1", orgID)
        }
        for r in edgeRows {
            edges.append((try member(r), GroupEdge(group: try r.uuid("group_id"), expiresAt: try r.optionalDate("expires_at")?.instant ?? .infinity,
                                                   auditEventID: try r.optionalUUID("audit_event_id"))))
        }
        // An outsider's strong read stops here: its cost never depends on the org's groups.
        if principal != nil, edges.isEmpty { return }
        var names: [UUID: String] = [:]
        var parents: [UUID: UUID] = [:]
        for r in try await tx.query("SELECT id, name, parent_id FROM groups WHERE org_id = $1", orgID) {
            let id = try r.uuid("id")
            names[id] = try r.string("name")
            if let p = try r.optionalUUID("parent_id") { parents[id] = p }
        }
        grants.setGroups(names: names, parents: parents, edges: edges)
        let holders: Set<UUID>? = principal == nil ? nil : Set(grants.groupReach.values.flatMap { $0.map(\.group) })
        // A whole org's load read every binding already, groups' included; one principal's read only its own.
        if let holders {
            for r in try await tx.query(
                "SELECT id, subject_id, resource_path, role, expires_at, audit_event_id FROM bindings WHERE org_id = $1 AND subject_type = 'group'", orgID) {
                let g = try r.uuid("subject_id")
                guard holders.contains(g) else { continue }
                grants.addBinding(BindingGrant(
                    id: try r.uuid("id"), path: try r.string("resource_path"), role: try SQLTenancyStore.decodeRole(r),
                    expiresAt: try r.optionalDate("expires_at")?.instant ?? .infinity, auditEventID: try r.optionalUUID("audit_event_id")), for: .group(g))
            }
        }
        for r in try await tx.query(
            "SELECT id, subject_id, resource_path, permission, effect, expires_at, reason, audit_event_id FROM overrides WHERE org_id = $1 AND subject_type = 'group'", orgID) {
            let g = try r.uuid("subject_id")
            guard holders?.contains(g) ?? true else { continue }
            grants.addOverride(try overrideGrant(r), for: .group(g))
        }
    }

    /// Every org's groups, group memberships and overrides, one query per table (warming a cache:
    /// a query per org would cost a round trip per org). Group bindings came with the bindings.
    static func loadAllGroups(_ tx: any SQLExecutor, in range: OrgRange, into all: inout [UUID: OrgGrants]) async throws {
        var names: [UUID: [UUID: String]] = [:], parents: [UUID: [UUID: UUID]] = [:], edges: [UUID: [(Principal, GroupEdge)]] = [:]
        for r in try await tx.query("SELECT id, org_id, name, parent_id FROM groups WHERE \(range.condition("org_id", tx.dialect))", range.binds) {
            let org = try r.uuid("org_id"), id = try r.uuid("id")
            names[org, default: [:]][id] = try r.string("name")
            if let p = try r.optionalUUID("parent_id") { parents[org, default: [:]][id] = p }
        }
        // As many rows as half the memberships: streamed, and read by position.
        edges = try await tx.scan(
            "SELECT org_id, group_id, member_type, member_id, expires_at, audit_event_id FROM group_members WHERE \(range.condition("org_id", tx.dialect))",
            range.binds, into: consume edges
        ) { edges, r in
            edges[try r.uuid(at: 0), default: []].append((try SQLPolicyStore.principal(r, typeAt: 2, idAt: 3), GroupEdge(
                group: try r.uuid(at: 1), expiresAt: try r.optionalDate(at: 4)?.instant ?? .infinity, auditEventID: try r.optionalUUID(at: 5))))
        }
        for (org, orgNames) in names where all[org] != nil {
            all[org]!.setGroups(names: orgNames, parents: parents[org] ?? [:], edges: edges[org] ?? [])
        }
        for r in try await tx.query("SELECT \(overrideColumns) FROM overrides WHERE \(range.condition("org_id", tx.dialect))", range.binds) {
            let org = try r.uuid("org_id")
            guard all[org] != nil else { continue }
            all[org]!.addOverride(try overrideGrant(r), for: try SQLPolicyStore.principal(r))
        }
    }

    /// The overrides of users and service accounts (of one, or of all) in the org.
    static func loadOverrides(_ tx: any SQLExecutor, orgID: UUID, only principal: Principal? = nil, into grants: inout OrgGrants) async throws {
        let rows: [SQLRow]
        if let principal {
            rows = try await tx.query(
                "SELECT \(overrideColumns) FROM overrides WHERE org_id = $1 AND subject_type = $2 AND subject_id = $3", orgID, principal.typeName, principal.id)
        } else {
            rows = try await tx.query("SELECT \(overrideColumns) FROM overrides WHERE org_id = $1 AND subject_type <> 'group'", orgID)
        }
        for r in rows { grants.addOverride(try overrideGrant(r), for: try SQLPolicyStore.principal(r)) }
    }

    // MARK: Writes

    struct Writer: GroupWriter {
        let tx: any SQLExecutor

        func tree(orgID: UUID, permissions: PermissionTable) async throws -> GroupTree {
            var tree = GroupTree()
            for r in try await tx.query("SELECT id, parent_id FROM groups WHERE org_id = $1", orgID) {
                tree.parents[try r.uuid("id")] = .some(try r.optionalUUID("parent_id"))
            }
            for r in try await tx.query("SELECT group_id, member_type, member_id FROM group_members WHERE org_id = $1", orgID) {
                tree.members[try r.uuid("group_id"), default: []].append(try SQLGroupStore.member(r))
            }
            for r in try await tx.query("SELECT subject_id, role FROM bindings WHERE org_id = $1 AND subject_type = 'group'", orgID) {
                let g = try r.uuid("subject_id"), role = try SQLTenancyStore.decodeRole(r)
                tree.boundRoles[g] = max(tree.boundRoles[g] ?? role, role)
            }
            for r in try await tx.query("SELECT subject_id, permission FROM overrides WHERE org_id = $1 AND subject_type = 'group'", orgID) {
                guard let role = permissions.role(for: try r.string("permission")) else { continue }
                let g = try r.uuid("subject_id")
                tree.overrideRoles[g] = max(tree.overrideRoles[g] ?? role, role)
            }
            return tree
        }

        func group(id: UUID, orgID: UUID) async throws -> Group? {
            try await tx.queryFirst("SELECT \(SQLGroupStore.groupColumns) FROM groups WHERE id = $1 AND org_id = $2", id, orgID).map(SQLGroupStore.decodeGroup)
        }

        func siblingNamed(_ name: String, orgID: UUID, parentID: UUID?, except: UUID?) async throws -> Bool {
            let row = try await tx.queryFirst(
                "SELECT id FROM groups WHERE org_id = $1 AND parent_key = $2 AND name_key = $3 AND id <> $4",
                orgID, parentID?.lowercasedString ?? "", name.lowercased(), except ?? UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
            return row != nil
        }

        func insertGroup(_ g: Group) async throws {
            try await tx.execute(
                """
                INSERT INTO groups (id, org_id, parent_id, parent_key, name, name_key, description, metadata, created_at, updated_at, audit_event_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                """,
                g.id, g.orgID, g.parentID, g.parentID?.lowercasedString ?? "", g.name, g.name.lowercased(), g.description,
                JSONValue.object(g.metadata).canonicalJSON, g.createdAt, g.updatedAt, g.auditEventID)
        }

        func updateGroup(_ g: Group) async throws {
            try await tx.execute(
                """
                UPDATE groups SET parent_id = $2, parent_key = $3, name = $4, name_key = $5, description = $6, metadata = $7, updated_at = $8
                WHERE id = $1
                """,
                g.id, g.parentID, g.parentID?.lowercasedString ?? "", g.name, g.name.lowercased(), g.description,
                JSONValue.object(g.metadata).canonicalJSON, g.updatedAt)
        }

        func deleteGroup(id: UUID) async throws {
            // Bindings and overrides name their subject without a foreign key; they go with the group.
            try await tx.execute("DELETE FROM bindings WHERE subject_type = 'group' AND subject_id = $1", id)
            try await tx.execute("DELETE FROM overrides WHERE subject_type = 'group' AND subject_id = $1", id)
            try await tx.execute("DELETE FROM group_members WHERE group_id = $1", id)
            try await tx.execute("DELETE FROM groups WHERE id = $1", id)
        }

        func groupCount(orgID: UUID) async throws -> Int {
            try await tx.count("FROM groups WHERE org_id = $1", orgID)
        }

        func memberRole(_ principal: Principal, orgID: UUID, at: Date) async throws -> Role? {
            switch principal {
            case .user(let id):
                return try await tx.queryFirst(
                    "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2 AND (expires_at IS NULL OR expires_at > $3)", orgID, id, at
                ).map { try SQLTenancyStore.decodeRole($0) }
            case .serviceAccount(let id):
                return try await tx.queryFirst("SELECT role FROM service_accounts WHERE org_id = $1 AND id = $2", orgID, id).map { try SQLTenancyStore.decodeRole($0) }
            case .group:
                return nil
            }
        }

        func groupMember(groupID: UUID, member: Principal) async throws -> GroupMember? {
            try await tx.queryFirst(
                """
                SELECT gm.member_type, gm.member_id, COALESCE(u.email, s.name) AS label, gm.expires_at, gm.created_at, gm.updated_at
                FROM group_members gm
                LEFT JOIN users u ON gm.member_type = 'user' AND u.id = gm.member_id
                LEFT JOIN service_accounts s ON gm.member_type = 'service_account' AND s.id = gm.member_id
                WHERE gm.group_id = $1 AND gm.member_type = $2 AND gm.member_id = $3
                """, groupID, member.typeName, member.id
            ).map { r in
                GroupMember(groupID: groupID, member: try SQLGroupStore.member(r), label: try r.optionalString("label"),
                            expiresAt: try r.optionalDate("expires_at"), createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"))
            }
        }

        func upsertGroupMember(_ m: GroupMember, orgID: UUID, auditEventID: UUID?) async throws {
            try await tx.execute(
                """
                INSERT INTO group_members (group_id, org_id, member_type, member_id, expires_at, created_at, updated_at, audit_event_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (group_id, member_type, member_id) DO UPDATE SET expires_at = excluded.expires_at,
                    updated_at = excluded.updated_at, audit_event_id = excluded.audit_event_id
                """,
                m.groupID, orgID, m.member.typeName, m.member.id, m.expiresAt, m.createdAt, m.updatedAt, auditEventID)
        }

        func deleteGroupMember(groupID: UUID, member: Principal) async throws {
            try await tx.execute("DELETE FROM group_members WHERE group_id = $1 AND member_type = $2 AND member_id = $3", groupID, member.typeName, member.id)
        }

        func override(id: UUID, orgID: UUID) async throws -> Override? {
            try await tx.queryFirst("SELECT \(SQLGroupStore.overrideColumns) FROM overrides WHERE id = $1 AND org_id = $2", id, orgID)
                .map(SQLGroupStore.decodeOverride)
        }

        func override(orgID: UUID, subject: Principal, path: String, permission: String) async throws -> Override? {
            try await tx.queryFirst(
                """
                SELECT \(SQLGroupStore.overrideColumns) FROM overrides
                WHERE org_id = $1 AND subject_type = $2 AND subject_id = $3 AND resource_path = $4 AND permission = $5
                """, orgID, subject.typeName, subject.id, path, permission
            ).map(SQLGroupStore.decodeOverride)
        }

        func insertOverride(_ o: Override) async throws {
            try await tx.execute(
                "INSERT INTO overrides (\(SQLGroupStore.overrideColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                o.id, o.orgID, o.subject.typeName, o.subject.id, o.resource.path, o.permission, o.effect.rawValue, o.expiresAt, o.reason,
                o.createdAt, o.auditEventID)
        }

        func deleteOverride(id: UUID) async throws {
            try await tx.execute("DELETE FROM overrides WHERE id = $1", id)
        }

        func overrideCount(orgID: UUID) async throws -> Int {
            try await tx.count("FROM overrides WHERE org_id = $1", orgID)
        }
    }
}
