import Foundation
import Logging
import Policy
import Storage
import Tenancy

/// Writes the dataset into a fresh database with multi-row INSERTs, then times what a node does
/// at start: `SQLPolicyStore.allGrants()` and installing every org into a `GrantCache`. Twice: on
/// issue 18's dataset (memberships and bindings), then again once the groups, their memberships
/// and bindings, and the overrides are added (issue 20's data, half again as many rows).
enum ColdLoad {
    static let rowsPerStatement = 1000
    static let rowsPerTransaction = 100_000
    /// Only looks like an argon2id hash; nobody logs in as these users.
    static let passwordHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"

    struct Literals {
        let dialect: SQLDialect
        var now: String { dialect == .sqlite ? "1767225600000000" : "'2026-01-01 00:00:00+00'" }
        func uuid(_ u: UUID) -> String { "'" + u.lowercasedString + "'" }
    }

    static func sqlite(dataset: Dataset, groups: GroupData, keepAt: String?) async throws -> (ColdLoadInfo, ColdLoadInfo) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portcullis-bench-\(getpid())")
        let path = keepAt ?? dir.appendingPathComponent("bench.db").path
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        defer {
            if keepAt == nil { try? FileManager.default.removeItem(at: dir) }
        }
        let writer = try SQLiteDatabase(path: path)
        try await Migrator(dialect: .sqlite).migrate(writer)
        let (insertSeconds, rows) = try await insert(dataset, into: writer)
        await writer.close()
        let info = try await measure(path: path, dataset: dataset, groups: nil, insertSeconds: insertSeconds, rows: rows)
        let groupWriter = try SQLiteDatabase(path: path)
        let (moreSeconds, moreRows) = try await insertGroups(dataset, groups, into: groupWriter)
        await groupWriter.close()
        return (info, try await measure(path: path, dataset: dataset, groups: groups, insertSeconds: moreSeconds, rows: moreRows))
    }

    static func measure(path: String, dataset: Dataset, groups: GroupData?, insertSeconds: Double, rows: Int) async throws -> ColdLoadInfo {
        let size = ["", "-wal"].reduce(0) { n, s in
            n + ((try? FileManager.default.attributesOfItem(atPath: path + s)[.size] as? Int) ?? 0)
        }
        say(String(format: "SQLite: inserted %d rows in %.1f s (%.0f MiB on disk)", rows, insertSeconds, Double(size) / 1_048_576))
        // A new connection pool, as a starting node would have (the OS page cache is warm).
        let reader = try SQLiteDatabase(path: path)
        let info = try await load(dataset: dataset, groups: groups, db: reader, backend: "sqlite", insertSeconds: insertSeconds, rows: rows, size: size)
        await reader.close()
        return info
    }

    static func postgres(dataset: Dataset, groups: GroupData, url: String) async throws -> (ColdLoadInfo, ColdLoadInfo) {
        var logger = Logger(label: "portcullis-bench")
        logger.logLevel = .warning
        let log = logger
        let schema = "portcullis_bench_\(getpid())"
        // Each pool works while its scope runs, as in the server.
        return try await DatabaseOpener.running(try await PostgresDatabase(url: url, logger: log, maximumConnections: 2)) { admin in
            try await admin.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            try await admin.execute("CREATE SCHEMA \(schema)")
            do {
                let scoped = url + (url.contains("?") ? "&" : "?") + "search_path=\(schema)"
                func inserting(_ body: @escaping @Sendable (any SQLDatabase) async throws -> (Double, Int)) async throws -> (Double, Int, Int64?) {
                    try await DatabaseOpener.running(try await PostgresDatabase(url: scoped, logger: log, maximumConnections: 4)) { db in
                        let (insertSeconds, rows) = try await body(db)
                        // As an established database is: a first read of freshly inserted rows
                        // also writes their hint bits, which doubled the first load in a trial run.
                        try await db.execute("VACUUM ANALYZE orgs, memberships, service_accounts, bindings, groups, group_members, overrides")
                        let size = try await db.queryFirst("SELECT pg_total_relation_size('memberships') + pg_total_relation_size('bindings') + pg_total_relation_size('orgs') + pg_total_relation_size('users') + pg_total_relation_size('groups') + pg_total_relation_size('group_members') + pg_total_relation_size('overrides') AS n")?.int("n")
                        return (insertSeconds, rows, size)
                    }
                }
                func loading(_ groups: GroupData?, _ inserted: (Double, Int, Int64?)) async throws -> ColdLoadInfo {
                    let (insertSeconds, rows, size) = inserted
                    say(String(format: "PostgreSQL: inserted %d rows in %.1f s (%.0f MiB in tables and indexes)", rows, insertSeconds, Double(size ?? 0) / 1_048_576))
                    return try await DatabaseOpener.running(try await PostgresDatabase(url: scoped, logger: log, maximumConnections: 4)) { reader in
                        try await load(dataset: dataset, groups: groups, db: reader, backend: "postgres", insertSeconds: insertSeconds, rows: rows, size: size.map(Int.init))
                    }
                }
                let info = try await loading(nil, try await inserting { db in
                    try await Migrator(dialect: .postgres).migrate(db)
                    return try await insert(dataset, into: db)
                })
                let grouped = try await loading(groups, try await inserting { db in try await insertGroups(dataset, groups, into: db) })
                if ProcessInfo.processInfo.environment["BENCH_KEEP_SCHEMA"] != nil {
                    say("kept the schema: \(scoped)")
                } else {
                    try await admin.execute("DROP SCHEMA \(schema) CASCADE")
                }
                return (info, grouped)
            } catch {
                try? await admin.execute("DROP SCHEMA \(schema) CASCADE")
                throw error
            }
        }
    }

    /// The cold load alone, from a database that holds the dataset already.
    static func postgres(dataset: Dataset, groups: GroupData?, existing url: String) async throws -> ColdLoadInfo {
        var logger = Logger(label: "portcullis-bench")
        logger.logLevel = .warning
        return try await DatabaseOpener.running(try await PostgresDatabase(url: url, logger: logger, maximumConnections: 4)) { db in
            try await load(dataset: dataset, groups: groups, db: db, backend: "postgres", insertSeconds: 0, rows: 0, size: nil)
        }
    }

    static func load(dataset: Dataset, groups: GroupData?, db: any SQLDatabase, backend: String, insertSeconds: Double, rows: Int, size: Int?) async throws -> ColdLoadInfo {
        let rss0 = Memory.residentBytes()
        let start = ContinuousClock.now
        let all = try await SQLPolicyStore(database: db).allGrants()
        let queried = seconds(since: start)
        let installStart = ContinuousClock.now
        let cache = GrantCache(loader: NoLoader())
        for (org, grants) in all { cache.install(org, grants) }
        let installed = seconds(since: installStart)
        let total = seconds(since: start)
        let rss1 = Memory.residentBytes()
        let memberships = all.values.reduce(0) { $0 + $1.members.count }
        let bindings = all.values.reduce(0) { $0 + $1.bindings.count }
        let edges = all.values.reduce(0) { $0 + $1.groupEdges.values.reduce(0) { $0 + $1.count } }
        let overrides = all.values.reduce(0) { $0 + $1.overrideIndex.values.reduce(0) { $0 + $1.count } }
        precondition(memberships == dataset.membershipCount && bindings == dataset.bindingCount + (groups?.groupCount ?? 0) && cache.count == dataset.orgCount
                     && edges == (groups?.memberCount ?? 0) && overrides == (groups?.overrideCount ?? 0),
                     "\(backend) loaded \(memberships) memberships, \(bindings) bindings, \(edges) group memberships, \(overrides) overrides, \(cache.count) orgs")
        say(String(format: "%@ cold load: allGrants %.2f s + install %.2f s = %.2f s for %d memberships, %d bindings, %d group memberships, %d overrides (RSS +%.0f MiB)",
                   backend, queried, installed, total, memberships, bindings, edges, overrides, Double(rss1 - rss0) / 1_048_576))
        // The other way a node can start (and the way `serve` does): nothing up front, each org
        // loaded by its first decision. Sampled on 1,000 orgs, each loaded once, one after another.
        let store = SQLPolicyStore(database: db)
        var lazy: [Double] = []
        for o in stride(from: 0, to: dataset.orgCount, by: max(1, dataset.orgCount / 1000)) {
            let t = ContinuousClock.now
            guard let g = try await store.grants(orgID: dataset.orgs[o]), g.members.count == 100 else { fatalError("org \(o) did not load") }
            lazy.append(seconds(since: t))
        }
        lazy.sort()
        let lazyMedian = lazy[lazy.count / 2], lazyP99 = lazy[lazy.count * 99 / 100]
        say(String(format: "%@ lazy load: one org on its first decision p50 %.2f ms, p99 %.2f ms; every org that way %.1f s",
                   backend, lazyMedian * 1000, lazyP99 * 1000, lazyMedian * Double(dataset.orgCount)))
        return ColdLoadInfo(
            backend: backend, insertSeconds: insertSeconds, insertedRows: rows, databaseBytes: size,
            allGrantsSeconds: queried, installSeconds: installed, totalSeconds: total,
            memberships: memberships, bindings: bindings, groupMemberships: edges, overrides: overrides, rssGrowthBytes: rss1 - rss0,
            lazyOrgP50Seconds: lazyMedian, lazyOrgP99Seconds: lazyP99,
            target: "<= 1.5 s for 1M memberships")
    }

    /// Users, orgs, memberships, bindings: multi-row INSERTs of literal values (all generated
    /// here, nothing user-supplied), 100k rows per transaction.
    static func insert(_ d: Dataset, into db: any SQLDatabase) async throws -> (Double, Int) {
        let l = Literals(dialect: db.dialect)
        let now = l.now
        let hash = "'" + passwordHash + "'"
        let start = ContinuousClock.now
        var rows = 0
        try await insertRows(db, "users (id, email, password_hash, created_at, updated_at)", count: d.userCount) { i in
            "(\(l.uuid(d.users[i])), 'bench-\(i)@example.com', \(hash), \(now), \(now))"
        }
        rows += d.userCount
        try await insertRows(db, "orgs (id, name, name_lower, created_at, updated_at)", count: d.orgCount) { o in
            "(\(l.uuid(d.orgs[o])), 'Bench org \(o)', 'bench org \(o)', \(now), \(now))"
        }
        rows += d.orgCount
        try await insertRows(db, "memberships (org_id, user_id, role, created_at, updated_at)", count: d.membershipCount) { i in
            "(\(l.uuid(d.orgs[i / Dataset.membersPerOrg])), \(l.uuid(d.users[Int(d.memberUser[i])])), '\(d.memberRole[i].rawValue)', \(now), \(now))"
        }
        rows += d.membershipCount
        try await insertRows(db, "bindings (id, org_id, subject_type, subject_id, resource_path, role, created_at, updated_at)", count: d.bindingCount) { i in
            "(\(l.uuid(d.bindingID[i])), \(l.uuid(d.orgs[i / Dataset.bindingsPerOrg])), 'user', \(l.uuid(d.users[Int(d.bindingUser[i])])), '\(d.bindingPath[i])', '\(d.bindingRole[i].rawValue)', \(now), \(now))"
        }
        rows += d.bindingCount
        return (seconds(since: start), rows)
    }

    /// Groups (10 an org, nested), 5 members each, a binding each, and 2 overrides an org.
    static func insertGroups(_ d: Dataset, _ groups: GroupData, into db: any SQLDatabase) async throws -> (Double, Int) {
        let l = Literals(dialect: db.dialect)
        let now = l.now
        let start = ContinuousClock.now
        var rows = 0
        let g = groups, perOrg = GroupData.groupsPerOrg
        try await insertRows(db, "groups (id, org_id, parent_id, parent_key, name, name_key, created_at, updated_at)", count: g.groupCount) { i in
            let parent = g.groupParent[i] >= 0 ? l.uuid(g.groupID[Int(g.groupParent[i])]) : "NULL"
            let key = g.groupParent[i] >= 0 ? parent : "''"
            return "(\(l.uuid(g.groupID[i])), \(l.uuid(d.orgs[i / perOrg])), \(parent), \(key), 'group \(i)', 'group \(i)', \(now), \(now))"
        }
        try await insertRows(db, "group_members (group_id, org_id, member_type, member_id, created_at, updated_at)", count: g.memberCount) { i in
            let group = i / GroupData.membersPerGroup
            return "(\(l.uuid(g.groupID[group])), \(l.uuid(d.orgs[group / perOrg])), 'user', \(l.uuid(d.users[Int(g.groupMember[i])])), \(now), \(now))"
        }
        try await insertRows(db, "bindings (id, org_id, subject_type, subject_id, resource_path, role, created_at, updated_at)", count: g.groupCount) { i in
            "(\(l.uuid(g.bindingID[i])), \(l.uuid(d.orgs[i / perOrg])), 'group', \(l.uuid(g.groupID[i])), '\(g.bindingPath[i])', '\(g.bindingRole[i].rawValue)', \(now), \(now))"
        }
        try await insertRows(db, "overrides (id, org_id, subject_type, subject_id, resource_path, permission, effect, reason, created_at)", count: g.overrideCount) { i in
            "(\(l.uuid(g.overrideID[i])), \(l.uuid(d.orgs[i / GroupData.overridesPerOrg])), 'user', \(l.uuid(d.users[Int(g.overrideUser[i])])), '\(g.overridePath[i])', '\(g.overridePermission[i])', '\(g.overrideEffect[i].rawValue)', 'bench', \(now))"
        }
        rows += g.groupCount * 2 + g.memberCount + g.overrideCount
        return (seconds(since: start), rows)
    }

    static func insertRows(_ db: any SQLDatabase, _ into: String, count: Int, _ row: (Int) -> String) async throws {
        var first = 0
        while first < count {
            let end = min(count, first + rowsPerTransaction)
            var statements: [String] = []
            var i = first
            while i < end {
                let stop = min(end, i + rowsPerStatement)
                var sql = "INSERT INTO \(into) VALUES "
                sql.reserveCapacity(200 * (stop - i))
                for j in i..<stop {
                    if j > i { sql += "," }
                    sql += row(j)
                }
                statements.append(sql)
                i = stop
            }
            let batch = statements
            try await db.transaction { tx in
                for sql in batch { try await tx.execute(sql) }
            }
            first = end
        }
    }
}
