import Foundation
import Logging

/// Opens the database named by `PORTCULLIS_DATABASE_URL`: `sqlite:<path>` or `postgres://…`.
/// Its errors never repeat the URL (it may hold a password); the caller names the variable.
public enum DatabaseOpener {
    public static func open(url: String, logger: Logger) async throws -> any SQLDatabase {
        switch try location(url) {
        case .sqlite(let path): return try SQLiteDatabase(path: path)
        case .postgres: return try await PostgresDatabase(url: url, logger: logger)
        }
    }

    /// Opens the database, keeps its connections working while `body` runs (a child task of
    /// this one, not a loose task), and closes it when `body` returns or throws.
    public static func withDatabase<T: Sendable>(url: String, logger: Logger, _ body: (any SQLDatabase) async throws -> T) async throws -> T {
        try await running(try await open(url: url, logger: logger), body)
    }

    /// Runs `db` for the length of `body`, then closes it.
    public static func running<T: Sendable>(_ db: any SQLDatabase, _ body: (any SQLDatabase) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await db.run() }
            defer { group.cancelAll() }
            do {
                let result = try await body(db)
                await db.close()
                return result
            } catch {
                await db.close()
                throw error
            }
        }
    }

    /// Opens a database that must exist already: for commands that act on an instance (`keys
    /// rotate`, `backup`, `admin …`), which must not make a new, empty one (with a new master
    /// key) in whatever directory they were started from. A SQLite file that is missing is
    /// refused here; `requireSchema` checks the tables once the database runs.
    public static func openExisting(url: String, logger: Logger) async throws -> any SQLDatabase {
        if case .sqlite(let path) = try location(url), !FileManager.default.fileExists(atPath: path) {
            throw StorageError.unavailable("no database at \(path); start `portcullis serve` (or run `portcullis migrate`) there first, or point PORTCULLIS_DATABASE_URL at the instance")
        }
        return try await open(url: url, logger: logger)
    }

    /// Refuses a database without Portcullis tables (or that is not one at all).
    public static func requireSchema(_ db: any SQLDatabase) async throws {
        let applied: Bool
        do {
            applied = try await Migrator(dialect: db.dialect).status(db).contains { $0.applied }
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError.unavailable("the database cannot be read as a Portcullis database: \(error)")
        }
        guard applied else {
            throw StorageError.unavailable("the database has no Portcullis tables; run `portcullis migrate` (or `portcullis serve`) first, or point PORTCULLIS_DATABASE_URL at the instance")
        }
    }

    /// Checks the URL without opening anything: start-up refuses a malformed one with the
    /// configuration errors, before any connection is tried.
    public static func validate(url: String) throws {
        _ = try location(url)
    }

    enum Location { case sqlite(String), postgres(PostgresURL) }

    static func location(_ url: String) throws -> Location {
        if url.hasPrefix("sqlite:") {
            var path = String(url.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw StorageError.other("sqlite: needs a file path, as in sqlite:./data/portcullis.db") }
            return .sqlite(path)
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return .postgres(try PostgresURL(url))
        }
        throw StorageError.other("must be sqlite:<path> or \(PostgresURL.shape) (the value is not shown, it may hold a password)")
    }
}
