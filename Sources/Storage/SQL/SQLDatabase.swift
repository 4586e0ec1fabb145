import Foundation

/// Runs SQL written with PostgreSQL-style `$1` placeholders. Store code talks only to this.
public protocol SQLExecutor: Sendable {
    var dialect: SQLDialect { get }
    /// Runs one statement and returns its rows (use `RETURNING` to learn what a write touched).
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
    /// Hands a read's rows to `body` one at a time as the driver decodes them, never holding
    /// them all: for whole-table scans (warming the grant cache from a million rows).
    func scan<State: Sendable>(
        _ sql: String, _ binds: [SQLValue], into state: State, _ body: @escaping @Sendable (inout State, SQLRow) throws -> Void
    ) async throws -> State
}

extension SQLExecutor {
    /// Executors without a streaming read collect the rows first.
    public func scan<State: Sendable>(
        _ sql: String, _ binds: [SQLValue], into state: State, _ body: @escaping @Sendable (inout State, SQLRow) throws -> Void
    ) async throws -> State {
        var state = state
        for row in try await query(sql, binds) { try body(&state, row) }
        return state
    }
}

extension SQLExecutor {
    public func query(_ sql: String, _ binds: any SQLBindable...) async throws -> [SQLRow] {
        try await query(sql, binds.map(\.sqlValue))
    }

    public func queryFirst(_ sql: String, _ binds: any SQLBindable...) async throws -> SQLRow? {
        try await query(sql, binds.map(\.sqlValue)).first
    }

    public func execute(_ sql: String, _ binds: any SQLBindable...) async throws {
        _ = try await query(sql, binds.map(\.sqlValue))
    }

    /// Holds a PostgreSQL advisory lock for `purpose` until the transaction ends. The key is
    /// taken within this schema: deployments (and the test suite's runs) that share a database
    /// in schemas of their own never wait on each other's locks. SQLite serializes writers already.
    public func lockForTransaction(_ purpose: Int64) async throws {
        guard dialect == .postgres else { return }
        try await execute("SELECT pg_advisory_xact_lock(hashtextextended(current_schema(), $1))", purpose)
    }

    /// `SELECT COUNT(*) AS n` followed by `from` (its `FROM …` and conditions).
    public func count(_ from: String, _ binds: [SQLValue]) async throws -> Int {
        Int(try await query("SELECT COUNT(*) AS n \(from)", binds).first?.int("n") ?? 0)
    }

    public func count(_ from: String, _ binds: any SQLBindable...) async throws -> Int {
        try await count(from, binds.map(\.sqlValue))
    }

    /// One page of a listing and the size of the whole listing, from the same `from` and binds:
    /// `LIMIT` and `OFFSET` are bound after `binds`, so the two statements number alike.
    public func page<T>(
        select columns: String, _ from: String, orderBy order: String, _ binds: [SQLValue], limit: Int, offset: Int,
        _ decode: (SQLRow) throws -> T
    ) async throws -> ([T], Int) {
        let n = binds.count
        let rows = try await query(
            "SELECT \(columns) \(from) ORDER BY \(order) LIMIT $\(n + 1) OFFSET $\(n + 2)", binds + [limit.sqlValue, offset.sqlValue])
        return (try rows.map(decode), try await count(from, binds))
    }
}

/// A database with transactions and a lifecycle.
public protocol SQLDatabase: SQLExecutor {
    /// Runs `body` in one transaction; commits when it returns, rolls back when it throws.
    /// SQLite uses `BEGIN IMMEDIATE` (writers serialize up front instead of failing on upgrade);
    /// PostgreSQL retries the whole body on serialization failures and deadlocks.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLExecutor) async throws -> T) async throws -> T
    /// Cheap round trip, for readiness checks.
    func ping() async throws
    /// Keeps the connections working until the task is cancelled (PostgreSQL's pool needs a
    /// running task; SQLite does nothing). `DatabaseOpener.withDatabase` runs it for a scope.
    func run() async
    /// Releases connections. Call once, at shutdown.
    func close() async
    /// A handle whose queries never wait behind request traffic, a deadline or a breaker: for
    /// the change follower, whose progress is how a node knows it is current. Closed with this one.
    func dedicated() async throws -> any SQLDatabase
}

/// A database that announces commits (PostgreSQL's `LISTEN`/`NOTIFY`): how the change follower
/// wakes at a write's commit instead of at its next poll. SQLite has nothing of the kind.
public protocol SQLNotifications: Sendable {
    /// Listens on `channel` on a connection of its own until the task is cancelled, calling
    /// `heard` with each notification's payload (sent when the notifying transaction commits).
    /// Calls `listening` once the listen is in place: what committed before it was not announced.
    /// Throws when the connection cannot be made or is lost.
    func listen(on channel: String, listening: @Sendable () -> Void, heard: @Sendable (String) -> Void) async throws
}
