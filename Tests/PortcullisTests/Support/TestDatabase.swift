import Foundation
import Logging
import Storage
import Testing

/// The two storage backends every storage-touching test runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

struct MissingPostgres: Error, CustomStringConvertible {
    var description: String {
        "PORTCULLIS_TEST_POSTGRES_URL is not set: run `make test`, which starts a throwaway PostgreSQL"
    }
}

let testLogger: Logger = {
    var logger = Logger(label: "portcullis-test")
    logger.logLevel = .critical
    return logger
}()

/// A fresh, empty database for one test: a new SQLite file, or a new PostgreSQL schema.
func withDatabase<T: Sendable>(_ backend: Backend, _ body: (any SQLDatabase, URL) async throws -> T) async throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portcullis-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    switch backend {
    case .sqlite:
        let db = try SQLiteDatabase(path: dir.appendingPathComponent("p.db").path)
        do {
            let result = try await body(db, dir)
            await db.close()
            return result
        } catch {
            await db.close()
            throw error
        }
    case .postgres:
        guard let url = ProcessInfo.processInfo.environment["PORTCULLIS_TEST_POSTGRES_URL"] else { throw MissingPostgres() }
        let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        // Each pool works while its scope runs (DatabaseOpener.running), as in the server.
        return try await DatabaseOpener.running(try await PostgresDatabase(url: url, logger: testLogger, maximumConnections: 1)) { admin in
            try await admin.execute("CREATE SCHEMA \(schema)")
            let separator = url.contains("?") ? "&" : "?"
            do {
                let scoped = try await PostgresDatabase(url: url + separator + "search_path=\(schema)", logger: testLogger, maximumConnections: 4)
                let result = try await DatabaseOpener.running(scoped) { db in try await body(db, dir) }
                try? await admin.execute("DROP SCHEMA \(schema) CASCADE")
                return result
            } catch {
                try? await admin.execute("DROP SCHEMA \(schema) CASCADE")
                throw error
            }
        }
    }
}
