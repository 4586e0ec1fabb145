import Foundation

/// The change log: one row per acknowledged write, numbered by a monotonic revision.
/// Other nodes follow it (`ChangeFeed`) to keep their in-memory state exact, and clients use
/// revisions for read-your-writes.
public struct Change: Sendable, Equatable {
    public var revision: Int64
    public var at: Date
    public var kind: String
    public var subject: String

    public init(revision: Int64, at: Date, kind: String, subject: String) {
        self.revision = revision
        self.at = at
        self.kind = kind
        self.subject = subject
    }
}

/// Change kinds written by the stores.
public enum ChangeKind {
    public static let userCreated = "user.created"
    public static let userUpdated = "user.updated"
    public static let sessionCreated = "session.created"
    public static let sessionRefreshed = "session.refreshed"
    public static let sessionRevoked = "session.revoked"
    public static let signingKeysChanged = "signing_keys.changed"
}

enum ChangeLog {
    /// Appends a change inside the caller's transaction and returns its revision.
    static func append(_ tx: any SQLExecutor, kind: String, subject: String, at: Date) async throws -> Int64 {
        guard let row = try await tx.queryFirst(
            "INSERT INTO changes (at, kind, subject) VALUES ($1, $2, $3) RETURNING revision", at, kind, subject)
        else { throw StorageError.other("change log insert returned nothing") }
        return try row.int("revision")
    }

    static func since(_ db: any SQLExecutor, revision: Int64, limit: Int) async throws -> [Change] {
        try await db.query(
            "SELECT revision, at, kind, subject FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2",
            revision, limit
        ).map { row in
            Change(revision: try row.int("revision"), at: try row.date("at"), kind: try row.string("kind"), subject: try row.string("subject"))
        }
    }

    static func latest(_ db: any SQLExecutor) async throws -> Int64 {
        try await db.queryFirst("SELECT COALESCE(MAX(revision), 0) AS revision FROM changes")?.int("revision") ?? 0
    }
}

/// Follows the change log by polling, handing each new change to `handle` in order.
/// Works the same on SQLite (several processes on one file) and PostgreSQL.
public struct ChangeFeed: Sendable {
    public let database: any SQLDatabase
    public let interval: Duration

    public init(database: any SQLDatabase, interval: Duration = .milliseconds(50)) {
        self.database = database
        self.interval = interval
    }

    public func latestRevision() async throws -> Int64 {
        try await ChangeLog.latest(database)
    }

    /// Reads changes after `revision` (at most `limit`).
    public func changes(after revision: Int64, limit: Int = 1000) async throws -> [Change] {
        try await ChangeLog.since(database, revision: revision, limit: limit)
    }

    /// Polls until the task is cancelled. Transient database errors are retried.
    public func follow(from start: Int64, handle: @Sendable ([Change]) async -> Void) async {
        var cursor = start
        while !Task.isCancelled {
            do {
                let batch = try await changes(after: cursor)
                if let last = batch.last {
                    cursor = last.revision
                    await handle(batch)
                    if batch.count == 1000 { continue }
                }
            } catch {
                // The database is down or busy: keep the cursor and try again.
            }
            try? await Task.sleep(for: interval)
        }
    }
}
