import Foundation
import Identity

/// A mail in the outbox.
public struct OutboxMessage: Sendable, Equatable {
    public var id: UUID
    public var createdAt: Date
    public var recipient: String
    public var template: String
    /// Nil once sent (the variables may hold a link with a token).
    public var variables: [String: String]?
    public var attempts: Int
    public var nextAttemptAt: Date
    public var sentAt: Date?
    public var lastError: String?
}

/// The mail outbox: written in the transaction of the event that causes the mail, read and
/// updated by the sender. Several nodes may send; a claim keeps two from sending one message.
public struct SQLOutbox: SQLStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    static let columns = "id, created_at, recipient, template, variables, attempts, next_attempt_at, sent_at, last_error"

    /// Writes `mail` inside the caller's transaction.
    static func enqueue(_ tx: any SQLExecutor, _ mail: OutgoingMail, at: Date) async throws {
        let variables = (try? JSONEncoder().encode(mail.variables)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        try await tx.execute(
            "INSERT INTO outbox (id, created_at, recipient, template, variables, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, 0, $2)",
            UUID(), at, mail.to, mail.template, variables)
    }

    static func decode(_ row: SQLRow) throws -> OutboxMessage {
        let variables = try row.optionalString("variables").flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
        return OutboxMessage(
            id: try row.uuid("id"), createdAt: try row.date("created_at"), recipient: try row.string("recipient"), template: try row.string("template"),
            variables: variables, attempts: Int(try row.int("attempts")), nextAttemptAt: try row.date("next_attempt_at"),
            sentAt: try row.optionalDate("sent_at"), lastError: try row.optionalString("last_error"))
    }

    /// Claims up to `limit` due messages for `lease`, so no other node sends them meanwhile.
    public func claimDue(now: Date, lease: TimeInterval, maxAttempts: Int, limit: Int = 20) async throws -> [OutboxMessage] {
        try await db.transaction { tx in
            let due = try await tx.query(
                """
                SELECT id FROM outbox WHERE sent_at IS NULL AND attempts < $1 AND next_attempt_at <= $2
                    AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY next_attempt_at LIMIT $3
                """, maxAttempts, now, limit)
            var claimed: [OutboxMessage] = []
            for row in due {
                let rows = try await tx.query(
                    "UPDATE outbox SET claimed_until = $2 WHERE id = $1 AND (claimed_until IS NULL OR claimed_until < $3) AND sent_at IS NULL RETURNING \(Self.columns)",
                    try row.uuid("id"), now.addingTimeInterval(lease), now)
                claimed += try rows.map(Self.decode)
            }
            return claimed
        }
    }

    public func markSent(_ id: UUID, at: Date) async throws {
        try await db.execute("UPDATE outbox SET sent_at = $2, variables = NULL, claimed_until = NULL, last_error = NULL, attempts = attempts + 1 WHERE id = $1", id, at)
    }

    public func markFailed(_ id: UUID, error: String, retryAt: Date) async throws {
        try await db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, claimed_until = NULL WHERE id = $1",
            id, String(error.prefix(500)), retryAt)
    }

    /// Unsent messages (pending and given up), oldest first: for `portcullis admin outbox`.
    public func unsent(limit: Int = 100) async throws -> [OutboxMessage] {
        try await db.query("SELECT \(Self.columns) FROM outbox WHERE sent_at IS NULL ORDER BY created_at LIMIT $1", limit).map(Self.decode)
    }

    public func counts(maxAttempts: Int) async throws -> (pending: Int, failed: Int, sent: Int) {
        let row = try await db.queryFirst(
            """
            SELECT SUM(CASE WHEN sent_at IS NULL AND attempts < $1 THEN 1 ELSE 0 END) AS pending,
                   SUM(CASE WHEN sent_at IS NULL AND attempts >= $1 THEN 1 ELSE 0 END) AS failed,
                   SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END) AS sent FROM outbox
            """, maxAttempts)
        return (Int(try row?.optionalInt("pending") ?? 0), Int(try row?.optionalInt("failed") ?? 0), Int(try row?.optionalInt("sent") ?? 0))
    }
}
