import Authority
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// PostgreSQL through a pooled `PostgresClient`.
public final class PostgresDatabase: SQLDatabase, SQLNotifications {
    public let dialect = SQLDialect.postgres
    private let client: PostgresClient
    private let logger: Logger
    private let url: String
    /// For connections outside the pool: the start-up probe and `listen`'s.
    private let connectionConfig: PostgresConnection.Configuration
    /// One connection of its own for `dedicated()`, made on first use.
    private let lane = Mutex<PostgresDatabase?>(nil)
    private let laneMaking = AsyncLock()
    /// Lanes made after `run` started: it runs their pools too.
    private let lanes: AsyncStream<PostgresDatabase>
    private let newLane: AsyncStream<PostgresDatabase>.Continuation

    /// Connects once (failing fast on a wrong URL, password or a down server — the pooled
    /// client alone would retry forever). The pool works while `run` does.
    public init(url: String, logger: Logger, maximumConnections: Int = 20) async throws {
        let settings = try PostgresURL(url)
        self.logger = logger
        self.url = url
        var connectionConfig = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database, tls: settings.connectionTLS)
        connectionConfig.options.connectTimeout = .seconds(5)
        connectionConfig.options.additionalStartupParameters = settings.startupParameters
        self.connectionConfig = connectionConfig
        do {
            let probe = try await PostgresConnection.connect(configuration: connectionConfig, id: 0, logger: logger)
            try await probe.close()
        } catch {
            logger.debug("postgres probe failed", metadata: ["error": "\(String(reflecting: error))"])
            throw StorageError.unavailable(
                "cannot connect to PostgreSQL at \(settings.host):\(settings.port) (database \(settings.database ?? settings.username), user \(settings.username)): \(Self.describe(error, host: settings.host))")
        }

        var config = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database, tls: settings.clientTLS)
        config.options.maximumConnections = maximumConnections
        config.options.connectTimeout = .seconds(5)
        config.options.additionalStartupParameters = settings.startupParameters
        client = PostgresClient(configuration: config, backgroundLogger: logger)
        (lanes, newLane) = AsyncStream.makeStream()
    }

    /// Runs the connection pool, and the dedicated lane's once it is made, until the task is
    /// cancelled (structured: the caller's task group or service group owns it).
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { [client] in await client.run() }
            for await lane in lanes {
                group.addTask { await lane.run() }
            }
        }
    }

    public func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await Self.mapErrors {
            let rows = try await client.query(Self.makeQuery(sql, binds), logger: logger)
            return try await Self.collect(rows)
        }
    }

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLExecutor) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await Self.mapErrors {
                    try await client.withConnection { connection in
                        let executor = ConnectionExecutor(connection: connection, logger: logger)
                        try await executor.raw("BEGIN")
                        do {
                            let result = try await body(executor)
                            try await executor.raw("COMMIT")
                            return result
                        } catch {
                            // Not skipped when the request was cancelled: the connection goes back to the pool.
                            await Task { try? await executor.raw("ROLLBACK") }.value
                            throw error
                        }
                    }
                }
            } catch StorageError.conflict(let message) where attempt < 5 {
                // Serialization failure or deadlock: the whole transaction is safe to run again.
                logger.debug("retrying transaction", metadata: ["reason": "\(message)", "attempt": "\(attempt)"])
                try await Task.sleep(for: .milliseconds(5 * attempt))
            }
        }
    }

    public func ping() async throws {
        _ = try await query("SELECT 1 AS one", [])
    }

    /// The pool closes when `run` is cancelled; nothing more to release.
    public func close() async {
        newLane.finish()
    }

    public func dedicated() async throws -> any SQLDatabase {
        try await laneMaking.withLock {
            if let lane = lane.withLock({ $0 }) { return lane }
            let made = try await PostgresDatabase(url: url, logger: logger, maximumConnections: 1)
            lane.withLock { $0 = made }
            newLane.yield(made)
            return made
        }
    }

    /// A connection of its own, not the pool's: it is held for as long as the listen lasts.
    public func listen(on channel: String, listening: @Sendable () -> Void, heard: @Sendable (String) -> Void) async throws {
        let connection = try await Self.mapErrors {
            try await PostgresConnection.connect(configuration: connectionConfig, id: 0, logger: logger)
        }
        do {
            try await Self.mapErrors {
                try await connection.listen(on: channel) { notifications in
                    listening()
                    // Ends when the task is cancelled; throws when the connection is lost.
                    for try await notification in notifications { heard(notification.payload) }
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    private struct ConnectionExecutor: SQLExecutor {
        let connection: PostgresConnection
        let logger: Logger
        var dialect: SQLDialect { .postgres }

        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
            let rows = try await connection.query(PostgresDatabase.makeQuery(sql, binds), logger: logger)
            return try await PostgresDatabase.collect(rows)
        }

        func raw(_ sql: String) async throws {
            _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        }
    }

    // MARK: - Binding and decoding

    static func makeQuery(_ sql: String, _ binds: [SQLValue]) throws -> PostgresQuery {
        var bindings = PostgresBindings(capacity: binds.count)
        for value in try binds.rejectingNUL() {
            switch value {
            case .null: bindings.appendNull()
            case .int(let i): bindings.append(i)
            case .double(let d): bindings.append(d)
            case .text(let s): bindings.append(s)
            case .blob(let b): bindings.append(ByteBuffer(bytes: b))
            case .bool(let b): bindings.append(b)
            case .uuid(let u): bindings.append(u)
            case .date(let d): bindings.append(PostgresTimestamp(micros: SQLTime.micros(d)))
            case .list: bindings.appendNull()  // refused by `rejectingNUL` above
            }
        }
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    static func collect(_ rows: PostgresRowSequence) async throws -> [SQLRow] {
        try await each(rows, into: [SQLRow]()) { result, row in result.append(row) }
    }

    /// Decodes rows into cells as they arrive; the column names are read once, from the first.
    static func each<State>(_ rows: PostgresRowSequence, into state: State, _ body: (inout State, SQLRow) throws -> Void) async throws -> State {
        var state = state
        var columns: SQLColumns?
        for try await row in rows { try body(&state, try sqlRow(row, &columns)) }
        return state
    }

    /// One driver row as cells under column names shared by the whole result (read from its first row).
    static func sqlRow(_ row: PostgresRow, _ columns: inout SQLColumns?) throws -> SQLRow {
        let names = columns ?? SQLColumns(row.map(\.columnName))
        columns = names
        var cells: [SQLValue] = []
        cells.reserveCapacity(names.names.count)
        for cell in row { cells.append(try decode(cell)) }
        return SQLRow(columns: names, cells: cells)
    }

    /// Rows are handed over on the connection's event loop as they are decoded, not through the
    /// row sequence: its `next()` is an async call with a cancellation handler a row, which a
    /// profile of issue 18's cold load showed costing more than the rows themselves. A scan is
    /// bounded by its table, so the sequence's back-pressure is not needed.
    public func scan<State: Sendable>(
        _ sql: String, _ binds: [SQLValue], into state: State, _ body: @escaping @Sendable (inout State, SQLRow) throws -> Void
    ) async throws -> State {
        let query = try Self.makeQuery(sql, binds)
        let scan = Scan(state, body)
        try await Self.mapErrors {
            try await client.withConnection { [logger] connection in
                _ = try await connection.query(query, logger: logger) { row in try scan.take(row) }.get()
            }
        }
        return scan.result
    }

    /// A scan's state while its rows arrive, one at a time, on the connection's event loop.
    private final class Scan<State: Sendable>: Sendable {
        struct Progress {
            /// Taken out at the end, not copied: a copy left behind would make the caller's next
            /// write copy every table it holds.
            var state: State?
            var columns: SQLColumns?
        }
        let progress: Mutex<Progress>
        let body: @Sendable (inout State, SQLRow) throws -> Void

        init(_ state: State, _ body: @escaping @Sendable (inout State, SQLRow) throws -> Void) {
            progress = Mutex(Progress(state: state))
            self.body = body
        }

        func take(_ row: PostgresRow) throws {
            try progress.withLock { p in try body(&p.state!, try PostgresDatabase.sqlRow(row, &p.columns)) }
        }

        var result: State { progress.withLock { $0.state.take()! } }
    }

    static func decode(_ cell: PostgresCell) throws -> SQLValue {
        guard var bytes = cell.bytes else { return .null }
        if cell.format == .binary, let element = PostgresArray.element(of: cell.dataType) {
            return .list(try PostgresArray.elements(&bytes, of: element, column: cell.columnName).map { item in
                try decode(PostgresCell(bytes: item, dataType: element, format: .binary, columnName: cell.columnName, columnIndex: cell.columnIndex))
            })
        }
        // The types a whole-table scan reads, straight from their binary form: the generic
        // decoders cost several times the bytes' work (issue 18's cold load).
        if cell.format == .binary {
            switch (cell.dataType, bytes.readableBytes) {
            case (.uuid, 16):
                if let high = bytes.readInteger(as: UInt64.self), let low = bytes.readInteger(as: UInt64.self) { return .uuid(UUID(high: high, low: low)) }
            case (.text, _), (.varchar, _):
                return .text(bytes.readString(length: bytes.readableBytes) ?? "")
            case (.int8, 8):
                if let i = bytes.readInteger(as: Int64.self) { return .int(i) }
            case (.int4, 4):
                if let i = bytes.readInteger(as: Int32.self) { return .int(Int64(i)) }
            default:
                break
            }
        }
        switch cell.dataType {
        case .uuid: return .uuid(try cell.decode(UUID.self))
        case .int2, .int4, .int8: return .int(try cell.decode(Int64.self))
        case .bool: return .bool(try cell.decode(Bool.self))
        case .timestamptz, .timestamp:
            if cell.format == .binary, var bytes = cell.bytes, bytes.readableBytes == 8, let micros = bytes.readInteger(as: Int64.self) {
                return .date(SQLTime.date(fromMicros: micros + SQLTime.postgresEpochMicros))
            }
            return .date(try cell.decode(Date.self))
        case .float4, .float8: return .double(try cell.decode(Double.self))
        case .bytea: return .blob(Array(buffer: try cell.decode(ByteBuffer.self)))
        default: return .text(try cell.decode(String.self))
        }
    }

    static func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PSQLError {
            let state = error.serverInfo?[.sqlState]
            let message = error.serverInfo?[.message] ?? "\(error.code)"
            switch state {
            case "23505": throw StorageError.uniqueViolation(error.serverInfo?[.constraintName] ?? message)
            case "23503": throw StorageError.foreignKeyViolation(error.serverInfo?[.constraintName] ?? message)
            case "40001", "40P01": throw StorageError.conflict(message)
            case nil: throw StorageError.unavailable(describe(error))
            default:
                if state?.hasPrefix("08") == true || state?.hasPrefix("57") == true {
                    throw StorageError.unavailable(message)
                }
                throw StorageError.other("\(state ?? "?"): \(message)")
            }
        }
    }

    /// A one-line reason for start-up errors. PSQLError's own description hides details on purpose.
    /// One operator's line for a failed connection: the server's own message, or what the
    /// network said ("connection refused"), never NIO's nested error values.
    static func describe(_ error: any Error, host: String = "") -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return describe(underlying, host: host) }
            return "\(error.code)"
        }
        if let error = error as? NIOConnectionError {
            if let io = error.connectionErrors.lazy.compactMap({ $0.error as? IOError }).first { return words(errno: io.errnoCode) }
            if let first = error.connectionErrors.first { return describe(first.error, host: host) }
            return "the host name \(host) does not resolve"
        }
        if let io = error as? IOError { return words(errno: io.errnoCode) }
        if let channel = error as? ChannelError, case .connectTimeout = channel { return "no answer within the connect timeout (5 s)" }
        if error is NIOSSLError { return "the TLS handshake failed (\(error)); check sslmode" }
        return "\(error)"
    }

    static func words(errno code: Int32) -> String {
        switch code {
        case ECONNREFUSED: return "connection refused (is PostgreSQL running and listening on that host and port?)"
        case EHOSTUNREACH, ENETUNREACH: return "the host is unreachable"
        case ETIMEDOUT: return "the connection timed out"
        case ECONNRESET: return "the connection was reset"
        default: return String(cString: strerror(code))
        }
    }
}
