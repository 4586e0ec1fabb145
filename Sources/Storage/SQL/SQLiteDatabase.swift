import Foundation
import GRDB
import GRDBSQLite
import NIOPosix
import Authority

/// SQLite through GRDB's `DatabasePool` (WAL; readers run beside the single writer).
///
/// Store code is async and may await between statements of one transaction, while GRDB's
/// transaction closures are synchronous. So transactions are driven statement by statement on
/// the writer connection (`allowsUnsafeTransactions`), and `writeLock` guarantees that no other
/// write of this process interleaves with an open transaction.
public final class SQLiteDatabase: SQLDatabase {
    /// WAL readers run beside the writer and each other: the pool itself serves the follower.
    public func dedicated() async throws -> any SQLDatabase { self }

    public let dialect = SQLDialect.sqlite
    private let pool: DatabasePool
    private let writeLock = AsyncLock()

    /// Opens (creating when missing) the database file and its parent directory.
    public init(path: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw StorageError.unavailable("cannot create the directory \(directory.path) for the SQLite database: \(FileProblem.reason(error, path: directory.path))")
        }
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw StorageError.unavailable("cannot write to \(directory.path) (the SQLite database and its journal live there): permission denied")
        }
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.allowsUnsafeTransactions = true
        config.busyMode = .timeout(10)
        config.maximumReaderCount = 8
        config.prepareDatabase { db in
            // FULL: a commit is on disk before the API acknowledges it (survives power loss / kill -9).
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw StorageError.unavailable("cannot open the SQLite database at \(path): \(FileProblem.reason(error, path: path))")
        }
    }

    public func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        let statement = Self.translate(sql)
        let arguments = Self.arguments(try binds.rejectingNUL())
        if Self.isReadOnly(statement) {
            return try await Self.mapErrors {
                try await pool.read { db in try Self.run(db, statement, arguments) }
            }
        }
        return try await writeLock.withLock { [pool] in
            try await Self.mapErrors {
                try await pool.writeWithoutTransaction { db in try Self.run(db, statement, arguments) }
            }
        }
    }

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLExecutor) async throws -> T) async throws -> T {
        try await writeLock.withLock { [pool] in
            let writer = Writer(pool: pool)
            // A transaction left open by a task cancelled at the wrong moment would wedge the
            // writer for good; with the lock held, any open transaction is such a leftover.
            try await SQLiteDatabase.mapErrors {
                try await pool.writeWithoutTransaction { db in
                    if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") }
                    try db.execute(sql: "BEGIN IMMEDIATE")
                }
            }
            do {
                let result = try await body(writer)
                try await writer.raw("COMMIT")
                return result
            } catch {
                // GRDB refuses work from a cancelled task, so the rollback runs in a task of its
                // own (a deadline cancels the request's work, see GuardedDatabase).
                await Task { try? await writer.raw("ROLLBACK") }.value
                throw error
            }
        }
    }

    public func ping() async throws {
        _ = try await query("SELECT 1 AS one", [])
    }

    /// Nothing runs in the background: GRDB's pool works on the calling tasks.
    public func run() async {}

    /// GRDB's close blocks its thread until every read in flight hands its connection back, and
    /// a read hands it back from its own task, on one of Swift's few task threads. Closing on those
    /// threads could take them all (several databases closing at once) and leave the reads none:
    /// the process would stop. So the close waits on a thread of NIO's pool for blocking work.
    public func close() async {
        try? await NIOThreadPool.singleton.runIfActive { [pool] in try pool.close() }
    }

    /// Executes on the writer connection inside an open transaction.
    private struct Writer: SQLExecutor {
        let pool: DatabasePool
        var dialect: SQLDialect { .sqlite }

        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
            let statement = SQLiteDatabase.translate(sql)
            let arguments = SQLiteDatabase.arguments(try binds.rejectingNUL())
            return try await SQLiteDatabase.mapErrors {
                try await pool.writeWithoutTransaction { db in try SQLiteDatabase.run(db, statement, arguments) }
            }
        }

        func raw(_ sql: String) async throws {
            try await SQLiteDatabase.mapErrors {
                try await pool.writeWithoutTransaction { db in try db.execute(sql: sql) }
            }
        }
    }

    // MARK: - Translation between the shared SQL and SQLite

    /// `$1` → `?1`: SQLite reads `$name` as a named parameter numbered by first appearance,
    /// which would misnumber statements that mention `$2` before `$1`.
    static func translate(_ sql: String) -> String {
        guard sql.contains("$") else { return sql }
        var out = ""
        out.reserveCapacity(sql.utf8.count)
        var previous: Character = " "
        for ch in sql {
            if previous == "$", ch.isNumber {
                out.removeLast()
                out.append("?")
            }
            out.append(ch)
            previous = ch
        }
        return out
    }

    static func isReadOnly(_ sql: String) -> Bool {
        let head = sql.drop(while: { $0.isWhitespace }).prefix(6).uppercased()
        return head == "SELECT"
    }

    static func arguments(_ binds: [SQLValue]) -> StatementArguments {
        StatementArguments(binds.map { value -> (any DatabaseValueConvertible)? in
            switch value {
            case .null: return nil
            case .int(let i): return i
            case .double(let d): return d
            case .text(let s): return s
            case .blob(let b): return Data(b)
            case .bool(let b): return b ? Int64(1) : Int64(0)
            case .uuid(let u): return u.lowercasedString
            case .date(let d): return SQLTime.micros(d)
            case .list: return nil  // refused by `rejectingNUL`, which every caller runs first
            }
        })
    }

    static func run(_ db: Database, _ sql: String, _ arguments: StatementArguments) throws -> [SQLRow] {
        try each(db, sql, arguments, into: [SQLRow]()) { rows, row in rows.append(row) }
    }

    /// Steps through a statement's rows with a cursor, reading each column straight from SQLite
    /// into a cell: no `DatabaseValue` between, and a UUID's text (how this backend keeps ids)
    /// read into the UUID without a `String` (issue 18's cold load reads two a row, a million rows).
    static func each<State>(_ db: Database, _ sql: String, _ arguments: StatementArguments, into state: State,
                            _ body: (inout State, SQLRow) throws -> Void) throws -> State {
        var state = state
        let statement = try db.makeStatement(sql: sql)
        statement.arguments = arguments
        let columns = SQLColumns(statement.columnNames)
        let count = Int32(columns.names.count)
        let raw = statement.sqliteStatement
        let cursor = try Row.fetchCursor(statement)
        while try cursor.next() != nil {
            var cells: [SQLValue] = []
            cells.reserveCapacity(Int(count))
            for i in 0..<count { cells.append(cell(raw, i)) }
            try body(&state, SQLRow(columns: columns, cells: cells))
        }
        return state
    }

    /// Column `i` of the statement's current row.
    @inline(__always)
    static func cell(_ statement: OpaquePointer, _ i: Int32) -> SQLValue {
        switch sqlite3_column_type(statement, i) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER: return .int(sqlite3_column_int64(statement, i))
        case SQLITE_FLOAT: return .double(sqlite3_column_double(statement, i))
        case SQLITE_BLOB:
            let n = Int(sqlite3_column_bytes(statement, i))
            guard n > 0, let bytes = sqlite3_column_blob(statement, i) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: bytes, count: n)))
        default:
            let n = Int(sqlite3_column_bytes(statement, i))
            guard n > 0, let bytes = sqlite3_column_text(statement, i) else { return .text("") }
            let text = UnsafeBufferPointer(start: bytes, count: n)
            // Only the lowercase form this store writes: it reads back as the very same text.
            if n == 36, let id = UUIDText.parseLowercase(text) { return .uuid(id) }
            return .text(String(decoding: text, as: UTF8.self))
        }
    }

    public func scan<State: Sendable>(
        _ sql: String, _ binds: [SQLValue], into state: State, _ body: @escaping @Sendable (inout State, SQLRow) throws -> Void
    ) async throws -> State {
        let statement = Self.translate(sql)
        let arguments = Self.arguments(try binds.rejectingNUL())
        return try await Self.mapErrors {
            try await pool.read { db in try Self.each(db, statement, arguments, into: state, body) }
        }
    }

    static func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            switch error.extendedResultCode {
            case .SQLITE_CONSTRAINT_UNIQUE, .SQLITE_CONSTRAINT_PRIMARYKEY:
                throw StorageError.uniqueViolation(error.message ?? "unique")
            case .SQLITE_CONSTRAINT_FOREIGNKEY:
                throw StorageError.foreignKeyViolation(error.message ?? "foreign key")
            default:
                if error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
                    throw StorageError.unavailable("database is busy")
                }
                throw StorageError.other("\(error)")
            }
        }
    }
}
