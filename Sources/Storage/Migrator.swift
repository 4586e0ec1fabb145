import Foundation
import Migrations

/// One versioned migration: an SQL file, `NNNN_name.sql`, or a data step written in Swift
/// (`DataMigrations`), for rules SQL cannot state alike on both dialects.
public struct Migration: Sendable, Equatable {
    public typealias Step = @Sendable (any SQLExecutor) async throws -> Void

    public let version: Int
    public let name: String
    public let sql: String
    /// Runs after `sql`, in the same transaction.
    let step: Step?

    init(version: Int, name: String, sql: String, step: Step? = nil) {
        self.version = version
        self.name = name
        self.sql = sql
        self.step = step
    }

    public static func == (a: Migration, b: Migration) -> Bool {
        a.version == b.version && a.name == b.name && a.sql == b.sql && (a.step == nil) == (b.step == nil)
    }

    /// Statements split on `;` at line ends (the files hold plain DDL, no procedural bodies).
    var statements: [String] {
        let withoutComments = sql.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }
            .joined(separator: "\n")
        return withoutComments.components(separatedBy: ";\n")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines).trimmingCharacters(in: CharacterSet(charactersIn: ";")) }
            .filter { !$0.isEmpty }
    }
}

public struct MigrationStatus: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let applied: Bool
}

/// Applies the shipped migrations in order, recording each in `schema_migrations`.
/// Everything happens in one transaction: on PostgreSQL under a transaction-scoped advisory
/// lock (so several nodes starting at once apply them exactly once), on SQLite under
/// `BEGIN IMMEDIATE`. A database whose history is not a prefix of ours is refused.
public struct Migrator: Sendable {
    public private(set) var migrations: [Migration]
    static let advisoryLockKey: Int64 = 0x5043_4C4D_4947 // "PCLMIG"

    /// The migrations up to `version` only: a database as an older release left it, for tests
    /// of what an upgrade does to existing rows.
    public func upTo(_ version: Int) -> Migrator {
        var older = self
        older.migrations = migrations.filter { $0.version <= version }
        return older
    }

    public init(dialect: SQLDialect) throws {
        guard let directory = MigrationFiles.directory(for: dialect.rawValue) else {
            throw StorageError.other("migration files for \(dialect.rawValue) are missing from the bundle")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        let fromFiles = try files.map { file in
            let stem = String(file.dropLast(4))
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw StorageError.other("bad migration file name \(file)")
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            return Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql)
        }
        migrations = (fromFiles + DataMigrations.all).sorted { $0.version < $1.version }
        guard Set(migrations.map(\.version)).count == migrations.count else {
            throw StorageError.other("two migrations share a version number")
        }
    }

    /// Applies what is missing; returns the versions applied now (empty when up to date).
    @discardableResult
    public func migrate(_ database: any SQLDatabase) async throws -> [Int] {
        let migrations = self.migrations
        return try await database.transaction { tx in
            try await tx.lockForTransaction(Self.advisoryLockKey)
            let applied = try await Self.appliedVersions(tx)
            try Self.checkConsistent(applied: applied, known: migrations)
            var done: [Int] = []
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await tx.execute(statement)
                }
                if let step = migration.step { try await step(tx) }
                try await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version, migration.name, ISO8601DateFormatter().string(from: Date()))
                done.append(migration.version)
            }
            return done
        }
    }

    public func status(_ database: any SQLDatabase) async throws -> [MigrationStatus] {
        let applied = try await database.transaction { tx in try await Self.appliedVersions(tx) }
        return migrations.map { MigrationStatus(version: $0.version, name: $0.name, applied: applied.contains($0.version)) }
    }

    static func appliedVersions(_ tx: any SQLExecutor) async throws -> Set<Int> {
        try await tx.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)
            """)
        let rows = try await tx.query("SELECT version FROM schema_migrations ORDER BY version")
        return Set(try rows.map { Int(try $0.int("version")) })
    }

    static func checkConsistent(applied: Set<Int>, known: [Migration]) throws {
        let knownVersions = Set(known.map(\.version))
        let unknown = applied.subtracting(knownVersions)
        if !unknown.isEmpty {
            throw StorageError.inconsistentMigrations(
                "the database has migrations \(unknown.sorted()) that this binary does not know; is it older than the database?")
        }
        // Applied versions must be a prefix of the known ones: a gap means a missing migration was skipped.
        let sorted = known.map(\.version).sorted()
        if let highest = applied.max() {
            let missingBelow = sorted.filter { $0 < highest && !applied.contains($0) }
            if !missingBelow.isEmpty {
                throw StorageError.inconsistentMigrations("migrations \(missingBelow) were skipped in this database")
            }
        }
    }
}
