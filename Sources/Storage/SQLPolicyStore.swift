import Authority
import Foundation
import Policy
import Tenancy

/// Grants for the decision cache, and role bindings, on either SQL backend.
public struct SQLPolicyStore: SQLStore, GrantLoader, BindingStore, HoldingsReader {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    static let bindingColumns = "id, org_id, subject_type, subject_id, resource_path, role, expires_at, created_at, updated_at, audit_event_id"

    static func principal(_ row: SQLRow) throws -> Principal {
        guard let p = Principal(typeName: try row.string("subject_type"), id: try row.uuid("subject_id")) else {
            throw StorageError.decoding(column: "subject_type")
        }
        return p
    }

    /// The principal whose kind and id are the row's columns `typeAt` and `idAt`.
    static func principal(_ row: SQLRow, typeAt: Int, idAt: Int) throws -> Principal {
        guard let p = Principal(typeName: try row.string(at: typeAt), id: try row.uuid(at: idAt)) else {
            throw StorageError.decoding(column: row.columns.names[typeAt])
        }
        return p
    }

    static func decodeBinding(_ row: SQLRow) throws -> Binding {
        let org = try row.uuid("org_id")
        return Binding(
            id: try row.uuid("id"), orgID: org, principal: try principal(row),
            resource: ObjectRef(orgID: org, path: try row.string("resource_path")),
            role: try SQLTenancyStore.decodeRole(row), expiresAt: try row.optionalDate("expires_at"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"), auditEventID: try row.optionalUUID("audit_event_id"))
    }

    // MARK: GrantLoader

    public func grants(orgID: UUID) async throws -> OrgGrants? {
        guard try await db.queryFirst("SELECT id FROM orgs WHERE id = $1", orgID) != nil else { return nil }
        var grants = OrgGrants()
        // Without the memberships' audit events: the cache does not keep them (`explain` reads them with the narrow load below).
        for row in try await db.query("SELECT user_id, role, expires_at FROM memberships WHERE org_id = $1", orgID) {
            grants.members.append(.user(try row.uuid("user_id")), MemberGrant(
                role: try SQLTenancyStore.decodeRole(row), expiresAt: try row.optionalDate("expires_at")?.instant ?? .infinity))
        }
        for row in try await db.query("SELECT id, role FROM service_accounts WHERE org_id = $1", orgID) {
            grants.members.append(.serviceAccount(try row.uuid("id")), MemberGrant(role: try SQLTenancyStore.decodeRole(row)))
        }
        for row in try await db.query(
            "SELECT id, subject_type, subject_id, resource_path, role, expires_at, audit_event_id FROM bindings WHERE org_id = $1", orgID) {
            grants.addBinding(BindingGrant(
                id: try row.uuid("id"), path: try row.string("resource_path"), role: try SQLTenancyStore.decodeRole(row),
                expiresAt: try row.optionalDate("expires_at")?.instant ?? .infinity, auditEventID: try row.optionalUUID("audit_event_id")),
                for: try Self.principal(row))
        }
        try await SQLGroupStore.loadGroups(db, orgID: orgID, into: &grants)
        try await SQLGroupStore.loadOverrides(db, orgID: orgID, into: &grants)
        grants.seal()
        return grants
    }

    public func grants(orgID: UUID, of principal: Principal) async throws -> OrgGrants {
        var grants = OrgGrants()
        switch principal {
        case .user(let id):
            if let row = try await db.queryFirst(
                "SELECT role, expires_at, audit_event_id FROM memberships WHERE org_id = $1 AND user_id = $2", orgID, id) {
                grants.members[principal] = MemberGrant(
                    role: try SQLTenancyStore.decodeRole(row), expiresAt: try row.optionalDate("expires_at")?.instant ?? .infinity,
                    auditEventID: try row.optionalUUID("audit_event_id"))
            }
        case .serviceAccount(let id):
            if let row = try await db.queryFirst("SELECT role FROM service_accounts WHERE org_id = $1 AND id = $2", orgID, id) {
                grants.members[principal] = MemberGrant(role: try SQLTenancyStore.decodeRole(row))
            }
        case .group:
            return grants
        }
        for row in try await db.query(
            "SELECT id, resource_path, role, expires_at, audit_event_id FROM bindings WHERE org_id = $1 AND subject_type = $2 AND subject_id = $3",
            orgID, principal.typeName, principal.id) {
            grants.addBinding(BindingGrant(
                id: try row.uuid("id"), path: try row.string("resource_path"), role: try SQLTenancyStore.decodeRole(row),
                expiresAt: try row.optionalDate("expires_at")?.instant ?? .infinity, auditEventID: try row.optionalUUID("audit_event_id")),
                for: principal)
        }
        try await SQLGroupStore.loadGroups(db, orgID: orgID, only: principal, into: &grants)
        try await SQLGroupStore.loadOverrides(db, orgID: orgID, only: principal, into: &grants)
        grants.seal()
        return grants
    }

    /// One statement for the four tables a principal's own grants live in, so that a member's
    /// change reaches another node's cache after one round trip, not four (issue 18). Each row
    /// says its table in `kind`; the columns a table lacks are NULL. Parameters: $1 the org,
    /// $2 the principal's kind, $3 its id (named in that order first: SQLite numbers named
    /// parameters by first appearance).
    static func heldStatement(member: String) -> String {
        """
        SELECT 'b' AS kind, id, resource_path, role, NULL AS effect, expires_at, audit_event_id, NULL AS reason
          FROM bindings WHERE org_id = $1 AND subject_type = $2 AND subject_id = $3
        UNION ALL SELECT 'g', group_id, NULL, NULL, NULL, expires_at, audit_event_id, NULL
          FROM group_members WHERE member_type = $2 AND member_id = $3 AND org_id = $1
        UNION ALL SELECT 'o', id, resource_path, permission, effect, expires_at, audit_event_id, reason
          FROM overrides WHERE org_id = $1 AND subject_type = $2 AND subject_id = $3
        UNION ALL \(member)
        """
    }
    static let heldByUser = heldStatement(
        member: "SELECT 'm', NULL, NULL, role, NULL, expires_at, audit_event_id, NULL FROM memberships WHERE org_id = $1 AND user_id = $3")
    static let heldByServiceAccount = heldStatement(
        member: "SELECT 'm', NULL, NULL, role, NULL, NULL, NULL, NULL FROM service_accounts WHERE org_id = $1 AND id = $3")

    public func held(orgID: UUID, by principal: Principal) async throws -> OrgGrants {
        var grants = OrgGrants()
        let statement: String
        switch principal {
        case .user: statement = Self.heldByUser
        case .serviceAccount: statement = Self.heldByServiceAccount
        case .group: return grants
        }
        var edges: [(Principal, GroupEdge)] = []
        for row in try await db.query(statement, orgID, principal.typeName, principal.id) {
            let expiresAt = try row.optionalDate(at: 5)?.instant ?? .infinity, audit = try row.optionalUUID(at: 6)
            switch try row.string(at: 0) {
            case "m":
                grants.members[principal] = MemberGrant(role: try SQLTenancyStore.decodeRole(row, at: 3), expiresAt: expiresAt, auditEventID: audit)
            case "b":
                grants.addBinding(BindingGrant(
                    id: try row.uuid(at: 1), path: try row.string(at: 2), role: try SQLTenancyStore.decodeRole(row, at: 3),
                    expiresAt: expiresAt, auditEventID: audit), for: principal)
            case "g":
                edges.append((principal, GroupEdge(group: try row.uuid(at: 1), expiresAt: expiresAt, auditEventID: audit)))
            case "o":
                guard let effect = OverrideGrant.Effect(rawValue: try row.string(at: 4)) else { throw StorageError.decoding(column: "effect") }
                grants.addOverride(OverrideGrant(
                    id: try row.uuid(at: 1), path: try row.string(at: 2), permission: try row.string(at: 3), effect: effect,
                    expiresAt: expiresAt, reason: try row.string(at: 7), auditEventID: audit), for: principal)
            default:
                throw StorageError.decoding(column: "kind")
            }
        }
        // The edges alone: the patch takes the tree from the cached org.
        grants.setGroups(names: [:], parents: [:], edges: edges)
        grants.seal()
        return grants
    }

    /// Every org's grants at once (warming a cache, and the cold-load benchmark). The org id
    /// space is loaded in two halves side by side, a core each, and joined: an org's rows all
    /// fall in one half. Rows are streamed straight into each org's tables, never held as rows.
    public func allGrants() async throws -> [UUID: OrgGrants] {
        let middle = OrgRange.halves
        async let first = allGrants(in: middle[0])
        let second = try await allGrants(in: middle[1])
        return try await first.merging(second) { a, _ in a }
    }

    /// The orgs whose ids fall in `range`, and their grants.
    func allGrants(in range: OrgRange) async throws -> [UUID: OrgGrants] {
        let (within, binds) = (range.condition("org_id", db.dialect), range.binds)
        var all = try await db.scan("SELECT id FROM orgs WHERE \(range.condition("id", db.dialect))", binds, into: [UUID: OrgGrants]()) { all, row in
            all[try row.uuid("id")] = OrgGrants()
        }
        // Columns read by position, in the order each SELECT names them.
        if db.dialect == .postgres {
            // One row an org with its members in arrays, not a row a membership: the driver's
            // work per row was most of the load (issue 18's profile). Element i of each array is
            // one membership: PostgreSQL advances every aggregate of a query level with each
            // input row in turn, so aggregates without their own ORDER BY see the same rows in
            // the same order (an ORDER BY in each would sort each apart, doubling the server's work).
            all = try await db.scan(
                "SELECT org_id, array_agg(user_id), array_agg(role), array_agg(expires_at) FROM memberships WHERE \(within) GROUP BY org_id",
                binds, into: consume all
            ) { all, row in
                let users = try row.list(at: 1), roles = try row.list(at: 2), expiries = try row.list(at: 3)
                guard roles.count == users.count, expiries.count == users.count else { throw StorageError.decoding(column: "memberships") }
                try all[try row.uuid(at: 0), default: OrgGrants()].members.appendAll(count: users.count) { i in
                    (.user(try SQLRow.uuid(users[i], "user_id")), MemberGrant(
                        role: try SQLTenancyStore.decodeRole(roles[i], "role"), expiresAt: try SQLRow.optionalDate(expiries[i], "expires_at")?.instant ?? .infinity))
                }
            }
        } else {
            all = try await db.scan("SELECT org_id, user_id, role, expires_at FROM memberships WHERE \(within)", binds, into: consume all) { all, row in
                all[try row.uuid(at: 0), default: OrgGrants()].members.append(.user(try row.uuid(at: 1)), MemberGrant(
                    role: try SQLTenancyStore.decodeRole(row, at: 2), expiresAt: try row.optionalDate(at: 3)?.instant ?? .infinity))
            }
        }
        all = try await db.scan("SELECT org_id, id, role FROM service_accounts WHERE \(within)", binds, into: consume all) { all, row in
            all[try row.uuid(at: 0), default: OrgGrants()].members.append(.serviceAccount(try row.uuid(at: 1)), MemberGrant(role: try SQLTenancyStore.decodeRole(row, at: 2)))
        }
        all = try await db.scan(
            "SELECT org_id, id, resource_path, role, expires_at, audit_event_id, subject_type, subject_id FROM bindings WHERE \(within)", binds, into: consume all
        ) { all, row in
            all[try row.uuid(at: 0), default: OrgGrants()].addBinding(BindingGrant(
                id: try row.uuid(at: 1), path: try row.string(at: 2), role: try SQLTenancyStore.decodeRole(row, at: 3),
                expiresAt: try row.optionalDate(at: 4)?.instant ?? .infinity, auditEventID: try row.optionalUUID(at: 5)),
                for: try Self.principal(row, typeAt: 6, idAt: 7))
        }
        try await SQLGroupStore.loadAllGroups(db, in: range, into: &all)
        for org in all.keys { all[org]?.seal() }
        return all
    }

    /// Every membership, binding and override of one principal across orgs, and those of the
    /// groups it is in (for lookup).
    public func holdings(of principal: Principal) async throws -> Holdings {
        var h = Holdings()
        switch principal {
        case .user(let id):
            for row in try await db.query("SELECT org_id, role, expires_at FROM memberships WHERE user_id = $1", id) {
                h.memberships.append((try row.uuid("org_id"), MemberGrant(
                    role: try SQLTenancyStore.decodeRole(row), expiresAt: try row.optionalDate("expires_at")?.instant ?? .infinity)))
            }
        case .serviceAccount(let id):
            for row in try await db.query("SELECT org_id, role FROM service_accounts WHERE id = $1", id) {
                h.memberships.append((try row.uuid("org_id"), MemberGrant(role: try SQLTenancyStore.decodeRole(row))))
            }
        case .group:
            return h
        }
        for row in try await db.query(
            "SELECT id, org_id, resource_path, role, expires_at FROM bindings WHERE subject_type = $1 AND subject_id = $2 ORDER BY org_id, resource_path",
            principal.typeName, principal.id) {
            h.bindings.append((try row.uuid("org_id"), BindingGrant(
                id: try row.uuid("id"), path: try row.string("resource_path"), role: try SQLTenancyStore.decodeRole(row),
                expiresAt: try row.optionalDate("expires_at")?.instant ?? .infinity)))
        }
        for row in try await db.query(
            "SELECT \(SQLGroupStore.overrideColumns) FROM overrides WHERE subject_type = $1 AND subject_id = $2", principal.typeName, principal.id) {
            h.overrides.append((try row.uuid("org_id"), try SQLGroupStore.overrideGrant(row)))
        }
        // The groups it is in, org by org: each org's tree gives the closure, whose grants follow.
        let orgs = try await db.query(
            "SELECT DISTINCT org_id FROM group_members WHERE member_type = $1 AND member_id = $2", principal.typeName, principal.id)
        for row in orgs {
            let org = try row.uuid("org_id")
            var grants = OrgGrants()
            try await SQLGroupStore.loadGroups(db, orgID: org, only: principal, into: &grants)
            let until = Dictionary((grants.groupReach[principal] ?? []).map { ($0.group, $0.expiresAt) }, uniquingKeysWith: max)
            for (holder, b) in grants.bindings.entries {
                guard case .group(let g) = holder, let edge = until[g] else { continue }
                var grant = b
                grant.expiresAt = min(b.expiresAt, edge)
                h.groupBindings.append((org, grant))
            }
            for (key, list) in grants.overrideIndex {
                guard case .group(let g) = key.principal, let edge = until[g] else { continue }
                for o in list {
                    var grant = o
                    grant.expiresAt = min(o.expiresAt, edge)
                    h.groupOverrides.append((org, grant))
                }
            }
        }
        return h
    }

    // MARK: BindingStore

    public func bindings(orgID: UUID, limit: Int, offset: Int) async throws -> ([Binding], Int) {
        try await db.page(
            select: Self.bindingColumns, "FROM bindings WHERE org_id = $1", orderBy: "created_at, id", [orgID.sqlValue], limit: limit, offset: offset,
            Self.decodeBinding)
    }

    public func writeBindings<T: Sendable>(lockingOrg orgID: UUID, _ body: @escaping @Sendable (any TenancyWriter, any BindingWriter) async throws -> T) async throws -> T {
        try await SQLTenancyStore.write(db, observer: observer, lockingOrg: orgID) { tx in
            try await body(SQLTenancyStore.Writer(tx: tx), Writer(tx: tx))
        }
    }

    struct Writer: BindingWriter {
        let tx: any SQLExecutor

        func binding(id: UUID, orgID: UUID) async throws -> Binding? {
            try await tx.queryFirst("SELECT \(SQLPolicyStore.bindingColumns) FROM bindings WHERE id = $1 AND org_id = $2", id, orgID)
                .map(SQLPolicyStore.decodeBinding)
        }

        func binding(orgID: UUID, principal: Principal, resourcePath: String) async throws -> Binding? {
            try await tx.queryFirst(
                "SELECT \(SQLPolicyStore.bindingColumns) FROM bindings WHERE org_id = $1 AND subject_type = $2 AND subject_id = $3 AND resource_path = $4",
                orgID, principal.typeName, principal.id, resourcePath
            ).map(SQLPolicyStore.decodeBinding)
        }

        func upsertBinding(_ b: Binding) async throws {
            try await tx.execute(
                """
                INSERT INTO bindings (\(SQLPolicyStore.bindingColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (id) DO UPDATE SET role = excluded.role, expires_at = excluded.expires_at,
                    updated_at = excluded.updated_at, audit_event_id = excluded.audit_event_id
                """,
                b.id, b.orgID, b.principal.typeName, b.principal.id, b.resource.path, b.role.rawValue, b.expiresAt, b.createdAt, b.updatedAt, b.auditEventID)
        }

        func deleteBinding(id: UUID) async throws {
            try await tx.execute("DELETE FROM bindings WHERE id = $1", id)
        }

        func bindingCount(orgID: UUID) async throws -> Int {
            try await tx.count("FROM bindings WHERE org_id = $1", orgID)
        }

        func bindingCount(orgID: UUID, principal: Principal) async throws -> Int {
            try await tx.count("FROM bindings WHERE org_id = $1 AND subject_type = $2 AND subject_id = $3", orgID, principal.typeName, principal.id)
        }

        func principalExists(_ principal: Principal, orgID: UUID) async throws -> Bool {
            switch principal {
            case .user(let id):
                return try await tx.queryFirst("SELECT id FROM users WHERE id = $1", id) != nil
            case .serviceAccount(let id):
                return try await tx.queryFirst("SELECT id FROM service_accounts WHERE id = $1 AND org_id = $2", id, orgID) != nil
            case .group(let id):
                return try await tx.queryFirst("SELECT id FROM groups WHERE id = $1 AND org_id = $2", id, orgID) != nil
            }
        }
    }
}

/// A part of the org id space, for loading every org's grants in parts side by side. Ids compare
/// alike on both backends: PostgreSQL's uuid by its bytes, SQLite's lowercase text by its digits.
enum OrgRange: Sendable {
    case below(UUID)
    case from(UUID)

    static let halves: [OrgRange] = [.below(UUID(high: 1 << 63, low: 0)), .from(UUID(high: 1 << 63, low: 0))]

    /// The rows of orgs in the range, by their `column`; it binds `binds` as $1. On SQLite the
    /// column is written `+column`, which keeps the planner off the index by org: a range over
    /// half a table read through an index costs a table lookup a row, a scan reads it in order.
    func condition(_ column: String = "org_id", _ dialect: SQLDialect) -> String {
        let c = dialect == .sqlite ? "+" + column : column
        switch self {
        case .below: return "\(c) < $1"
        case .from: return "\(c) >= $1"
        }
    }

    var binds: [SQLValue] {
        switch self {
        case .below(let id), .from(let id): return [id.sqlValue]
        }
    }
}
