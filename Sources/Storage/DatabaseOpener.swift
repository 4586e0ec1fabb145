import Foundation
import Logging

/// Opens the database named by `PORTCULLIS_DATABASE_URL`: `sqlite:<path>` or `postgres://…`.
public enum DatabaseOpener {
    public static func open(url: String, logger: Logger) async throws -> any SQLDatabase {
        if url.hasPrefix("sqlite:") {
            var path = String(url.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw StorageError.other("PORTCULLIS_DATABASE_URL: sqlite: needs a file path") }
            return try SQLiteDatabase(path: path)
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try await PostgresDatabase(url: url, logger: logger)
        }
        throw StorageError.other("PORTCULLIS_DATABASE_URL must start with sqlite: or postgres://")
    }
}
