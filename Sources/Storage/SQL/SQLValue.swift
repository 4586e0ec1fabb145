import Authority
import Foundation
import Wire
import Memberwise

/// The SQL dialects Portcullis speaks. Store code is written once; only DDL differs per dialect.
public enum SQLDialect: String, Sendable {
    case sqlite
    case postgres
}

/// A value bound to, or read from, a SQL statement, independent of the driver.
public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])
    case bool(Bool)
    case uuid(UUID)
    case date(Date)
    /// A PostgreSQL array read from a result (one row an org in the cold load); never bound.
    case list([SQLValue])
}

extension [SQLValue] {
    /// Text with a NUL character cannot be stored faithfully: PostgreSQL refuses it and SQLite
    /// cuts the string there. Both drivers refuse such binds before the statement runs.
    /// Lists are only read: a statement that binds one is refused too.
    func rejectingNUL() throws -> [SQLValue] {
        for value in self {
            switch value {
            case .text(let s) where s.utf8.contains(0): throw StorageError.invalidText("text must not contain NUL characters")
            case .list: throw StorageError.other("a list is read from results, never bound")
            default: continue
            }
        }
        return self
    }
}

/// Anything that can be bound as a statement parameter.
public protocol SQLBindable: Sendable {
    var sqlValue: SQLValue { get }
}

extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Int: SQLBindable { public var sqlValue: SQLValue { .int(Int64(self)) } }
extension Int64: SQLBindable { public var sqlValue: SQLValue { .int(self) } }
extension Double: SQLBindable { public var sqlValue: SQLValue { .double(self) } }
extension Bool: SQLBindable { public var sqlValue: SQLValue { .bool(self) } }
extension UUID: SQLBindable { public var sqlValue: SQLValue { .uuid(self) } }
extension Date: SQLBindable { public var sqlValue: SQLValue { .date(self) } }
extension SQLValue: SQLBindable { public var sqlValue: SQLValue { self } }
extension Optional: SQLBindable where Wrapped: SQLBindable {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

/// The column names of one result, shared by all its rows: a row is then its cells alone, not a
/// dictionary of its own (scans decode millions of rows; issue 18).
public final class SQLColumns: Sendable {
    public let names: [String]
    let positions: [String: Int]

    public init(_ names: [String]) {
        self.names = names
        var positions: [String: Int] = [:]
        // The first of two equal names wins, as a lookup by name in a driver's row does.
        for (i, name) in names.enumerated() where positions[name] == nil { positions[name] = i }
        self.positions = positions
    }
}

/// One result row, read by column name. Getters convert the driver's storage class
/// (SQLite keeps UUIDs as text, dates as integer microseconds, booleans as integers).
@PublicInit
public struct SQLRow: Sendable {
    public let columns: SQLColumns
    public let cells: [SQLValue]

    public init(values: [String: SQLValue]) {
        self.init(columns: SQLColumns(Array(values.keys)), cells: Array(values.values))
    }

    /// Every column with its value.
    public var values: [String: SQLValue] {
        Dictionary(zip(columns.names, cells), uniquingKeysWith: { first, _ in first })
    }

    public subscript(_ column: String) -> SQLValue { columns.positions[column].map { cells[$0] } ?? .null }

    public func isNull(_ column: String) -> Bool { self[column] == .null }

    public func string(_ column: String) throws -> String { try Self.string(self[column], column) }

    /// One cell, or one element of a list (`column` names it in errors).
    public static func string(_ cell: SQLValue, _ column: @autoclosure () -> String) throws -> String {
        switch cell {
        case .text(let s): return s
        case .uuid(let u): return u.lowercasedString
        case .int(let i): return String(i)
        default: throw StorageError.decoding(column: column())
        }
    }

    public func optionalString(_ column: String) throws -> String? {
        isNull(column) ? nil : try string(column)
    }

    public func int(_ column: String) throws -> Int64 {
        switch self[column] {
        case .int(let i): return i
        case .double(let d): return Int64(d)
        case .bool(let b): return b ? 1 : 0
        case .text(let s): if let i = Int64(s) { return i }
        default: break
        }
        throw StorageError.decoding(column: column)
    }

    public func optionalInt(_ column: String) throws -> Int64? {
        isNull(column) ? nil : try int(column)
    }

    public func bool(_ column: String) throws -> Bool {
        switch self[column] {
        case .bool(let b): return b
        case .int(let i): return i != 0
        default: throw StorageError.decoding(column: column)
        }
    }

    public func uuid(_ column: String) throws -> UUID { try Self.uuid(self[column], column) }

    /// One cell, or one element of a list (`column` names it in errors).
    public static func uuid(_ cell: SQLValue, _ column: @autoclosure () -> String) throws -> UUID {
        switch cell {
        case .uuid(let u): return u
        case .text(let s): if let u = UUIDText.parse(s) { return u }
        default: break
        }
        throw StorageError.decoding(column: column())
    }

    public func optionalUUID(_ column: String) throws -> UUID? {
        isNull(column) ? nil : try uuid(column)
    }

    public func date(_ column: String) throws -> Date { try Self.date(self[column], column) }

    /// One cell, or one element of a list (`column` names it in errors).
    public static func date(_ cell: SQLValue, _ column: @autoclosure () -> String) throws -> Date {
        switch cell {
        case .date(let d): return d
        case .int(let micros): return SQLTime.date(fromMicros: micros)
        default: throw StorageError.decoding(column: column())
        }
    }

    public func optionalDate(_ column: String) throws -> Date? {
        isNull(column) ? nil : try date(column)
    }

    public func blob(_ column: String) throws -> [UInt8] {
        switch self[column] {
        case .blob(let b): return b
        case .text(let s): return Array(s.utf8)
        case .uuid(let u): return Array(u.lowercasedString.utf8)
        default: throw StorageError.decoding(column: column)
        }
    }
}

extension SQLRow {
    // By position, in the order the SELECT names the columns: the whole-table scans of the cold
    // load read a million rows and skip a name lookup (a string hash) per cell.

    public func uuid(at i: Int) throws -> UUID { try Self.uuid(cells[i], columns.names[i]) }
    public func optionalUUID(at i: Int) throws -> UUID? { cells[i] == .null ? nil : try uuid(at: i) }
    public func string(at i: Int) throws -> String { try Self.string(cells[i], columns.names[i]) }
    public func optionalDate(at i: Int) throws -> Date? { try Self.optionalDate(cells[i], columns.names[i]) }
    public func list(at i: Int) throws -> [SQLValue] {
        guard case .list(let values) = cells[i] else { throw StorageError.decoding(column: columns.names[i]) }
        return values
    }
    /// A date that may be NULL, from one cell or one element of a list (`column` names it in errors).
    public static func optionalDate(_ cell: SQLValue, _ column: @autoclosure () -> String) throws -> Date? {
        cell == .null ? nil : try date(cell, column())
    }
}

/// The stored precision of a timestamp on both backends, and in backups: the nearest
/// microsecond. SQLite keeps the integer; PostgreSQL's timestamptz is the same integer counted
/// from 2000. Whole seconds and the fraction are converted apart, so no step rounds twice and
/// `micros(date(fromMicros: m)) == m` wherever a Double can tell microseconds apart (a
/// multiplication by 10^6 first would be off by up to 16 µs near year 9999): an export, a
/// restore and an export again write the same text.
enum SQLTime {
    static func micros(_ date: Date) -> Int64 { Microseconds.since1970(date) }

    static func date(fromMicros micros: Int64) -> Date { Microseconds.date(micros) }

    /// PostgreSQL counts from 2000-01-01T00:00:00Z.
    static let postgresEpochMicros: Int64 = 946_684_800 * 1_000_000
}

/// A list of strings in one text column, as JSON (key scopes, a client's redirect URIs and scopes).
enum StringList {
    static func json(_ list: [String]) -> String {
        (try? JSONEncoder().encode(list)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
}

extension SQLRow {
    /// The list `StringList.json` stored in `column`; a text that is not one reads as empty.
    func stringList(_ column: String) throws -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(try string(column).utf8))) ?? []
    }
}
