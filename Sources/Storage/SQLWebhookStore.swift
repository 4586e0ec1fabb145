import Authority
import Foundation
import Tenancy
import Webhooks

/// Webhook endpoints, their delivery logs and the delivery queue, on either SQL backend.
public struct SQLWebhookStore: SQLStore, WebhookStore, WebhookQueue {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    static let columns = "id, org_id, url, description, event_types, enabled, disabled_reason, previous_secret_until, created_at, updated_at"

    static func decode(_ row: SQLRow) throws -> WebhookEndpoint {
        var endpoint = WebhookEndpoint(
            id: try row.uuid("id"), orgID: try row.optionalUUID("org_id"), url: try row.string("url"), description: try row.string("description"),
            eventTypes: EventFilter(trusted: try row.stringList("event_types")), enabled: try row.bool("enabled"), createdAt: try row.date("created_at"))
        endpoint.disabledReason = try row.optionalString("disabled_reason")
        endpoint.previousSecretUntil = try row.optionalDate("previous_secret_until")
        endpoint.updatedAt = try row.date("updated_at")
        return endpoint
    }

    public func endpoint(id: UUID) async throws -> WebhookEndpoint? {
        try await db.queryFirst("SELECT \(Self.columns) FROM webhook_endpoints WHERE id = $1", id).map(Self.decode)
    }

    public func endpoints(orgID: UUID?, limit: Int, offset: Int) async throws -> ([WebhookEndpoint], Int) {
        let (condition, binds) = SQLTenancyStore.orgOrPlatform(orgID)
        return try await db.page(
            select: Self.columns, "FROM webhook_endpoints WHERE \(condition)", orderBy: "created_at, id", binds, limit: limit, offset: offset, Self.decode)
    }

    public func deliveries(endpointID: UUID, limit: Int, offset: Int) async throws -> ([WebhookDelivery], Int) {
        let rows = try await db.query(
            """
            SELECT d.id, d.endpoint_id, ev.id AS event_id, ev.type, d.state, d.attempts, d.next_attempt_at, d.created_at,
                d.last_attempt_at, d.last_status, d.last_latency_ms, d.last_response, d.last_error
            FROM webhook_deliveries d JOIN webhook_events ev ON ev.seq = d.event_seq
            WHERE d.endpoint_id = $1 ORDER BY d.seq DESC LIMIT $2 OFFSET $3
            """, endpointID, limit, offset)
        let total = try await db.count("FROM webhook_deliveries WHERE endpoint_id = $1", endpointID)
        return (try rows.map { row in
            guard let state = WebhookDelivery.State(rawValue: try row.string("state")) else { throw StorageError.other("webhook_deliveries.state is unknown") }
            var d = WebhookDelivery(
                id: try row.uuid("id"), endpointID: try row.uuid("endpoint_id"), eventID: try row.uuid("event_id"), eventType: try row.string("type"),
                state: state, attempts: Int(try row.int("attempts")), nextAttemptAt: try row.date("next_attempt_at"), createdAt: try row.date("created_at"))
            d.lastAttemptAt = try row.optionalDate("last_attempt_at")
            d.lastStatus = try row.optionalInt("last_status").map(Int.init)
            d.lastLatencyMs = try row.optionalInt("last_latency_ms").map(Int.init)
            d.lastResponse = try row.optionalString("last_response")
            d.lastError = try row.optionalString("last_error")
            return d
        }, total)
    }

    public func writeWebhooks<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter, any WebhookWriter) async throws -> T) async throws -> T {
        try await SQLTenancyStore.write(db, observer: observer, lockingOrg: orgID) { tx in
            try await body(SQLTenancyStore.Writer(tx: tx), Writer(tx: tx))
        }
    }

    struct Writer: WebhookWriter {
        let tx: any SQLExecutor

        func endpoint(id: UUID) async throws -> WebhookEndpoint? {
            try await tx.queryFirst("SELECT \(SQLWebhookStore.columns) FROM webhook_endpoints WHERE id = $1", id).map(SQLWebhookStore.decode)
        }

        func insert(_ e: WebhookEndpoint, sealedSecret: String) async throws {
            try await tx.execute(
                """
                INSERT INTO webhook_endpoints (id, org_id, url, description, event_types, enabled, sealed_secret, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """,
                e.id, e.orgID, e.url, e.description, StringList.json(e.eventTypes.patterns), e.enabled, sealedSecret, e.createdAt, e.updatedAt)
        }

        func update(_ e: WebhookEndpoint) async throws {
            try await tx.execute(
                """
                UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, enabled = $5, disabled_reason = $6, updated_at = $7
                WHERE id = $1
                """,
                e.id, e.url, e.description, StringList.json(e.eventTypes.patterns), e.enabled, e.disabledReason, e.updatedAt)
        }

        func rotateSecret(id: UUID, sealedSecret: String, previousUntil: Date, at: Date) async throws {
            try await tx.execute(
                """
                UPDATE webhook_endpoints SET sealed_previous_secret = sealed_secret, sealed_secret = $2, previous_secret_until = $3, updated_at = $4
                WHERE id = $1
                """, id, sealedSecret, previousUntil, at)
        }

        func delete(id: UUID) async throws {
            try await tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", id)
        }

        func count(orgID: UUID?) async throws -> Int {
            let (condition, binds) = SQLTenancyStore.orgOrPlatform(orgID)
            return try await tx.count("FROM webhook_endpoints WHERE \(condition)", binds)
        }

        func queueEvent(_ event: WebhookEvent, for endpointID: UUID) async throws -> UUID {
            try await orderLock()
            let seq = try await WebhookCapture.insert(event, in: tx)
            return try await WebhookCapture.queue(eventSeq: seq, endpointID: endpointID, at: event.at, in: tx)
        }

        func redeliver(deliveryID: UUID, endpointID: UUID, at: Date) async throws -> UUID? {
            guard let row = try await tx.queryFirst(
                "SELECT event_seq FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2", deliveryID, endpointID) else { return nil }
            try await orderLock()
            return try await WebhookCapture.queue(eventSeq: try row.int("event_seq"), endpointID: endpointID, at: at, in: tx)
        }

        /// Deliveries are numbered in commit order, as the captured ones are.
        func orderLock() async throws {
            try await tx.lockForTransaction(ChangeLog.orderLockKey)
        }
    }

    // MARK: The queue

    public func lease(node: String, limit: Int, now: Date, until: Date) async throws -> [LeasedEndpoint] {
        let skipLocked = db.dialect == .postgres ? "FOR UPDATE SKIP LOCKED" : ""
        let rows = try await db.transaction { tx in
            try await tx.query(
                """
                UPDATE webhook_endpoints SET leased_by = $1, lease_until = $2
                WHERE id IN (
                    SELECT e.id FROM webhook_endpoints e
                    WHERE e.enabled AND (e.lease_until IS NULL OR e.lease_until < $3)
                      AND (SELECT d.next_attempt_at FROM webhook_deliveries d
                           WHERE d.endpoint_id = e.id AND d.state = 'pending' ORDER BY d.seq LIMIT 1) <= $3
                    ORDER BY e.lease_until NULLS FIRST, e.id LIMIT $4 \(skipLocked))
                RETURNING id, url, sealed_secret, sealed_previous_secret, previous_secret_until
                """, [node.sqlValue, until.sqlValue, now.sqlValue, limit.sqlValue])
        }
        return try rows.map { try Self.leased($0, now: now) }
    }

    /// A leased endpoint's row: its URL, and the secrets that sign at `now`.
    static func leased(_ row: SQLRow, now: Date) throws -> LeasedEndpoint {
        var sealed = [try row.string("sealed_secret")]
        if let previous = try row.optionalString("sealed_previous_secret"), let until = try row.optionalDate("previous_secret_until"), until > now {
            sealed.append(previous)
        }
        return LeasedEndpoint(id: try row.uuid("id"), url: try row.string("url"), sealedSecrets: sealed)
    }

    public func renew(endpointID: UUID, node: String, now: Date, until: Date) async throws -> LeasedEndpoint? {
        try await db.transaction { tx in
            try await tx.query(
                """
                UPDATE webhook_endpoints SET lease_until = $3 WHERE id = $1 AND leased_by = $2 AND enabled
                RETURNING id, url, sealed_secret, sealed_previous_secret, previous_secret_until
                """, endpointID, node, until)
        }.first.map { try Self.leased($0, now: now) }
    }

    /// The lease ends now: endpoints let go longest ago are leased first next time (no endpoint starves).
    public func release(endpointID: UUID, node: String) async throws {
        try await db.execute("UPDATE webhook_endpoints SET leased_by = NULL, lease_until = $3 WHERE id = $1 AND leased_by = $2", endpointID, node, Date())
    }

    public func releaseAll() async throws {
        try await db.execute("UPDATE webhook_endpoints SET leased_by = NULL, lease_until = NULL WHERE lease_until IS NOT NULL")
    }

    public func pending(endpointID: UUID, limit: Int) async throws -> [DueDelivery] {
        try await db.query(
            """
            SELECT d.id, d.attempts, d.next_attempt_at, ev.id AS event_id, ev.payload
            FROM webhook_deliveries d JOIN webhook_events ev ON ev.seq = d.event_seq
            WHERE d.endpoint_id = $1 AND d.state = 'pending' ORDER BY d.seq LIMIT $2
            """, endpointID, limit
        ).map { row in
            DueDelivery(
                id: try row.uuid("id"), attempts: Int(try row.int("attempts")), nextAttemptAt: try row.date("next_attempt_at"),
                eventID: try row.uuid("event_id"), payload: try row.string("payload"))
        }
    }

    public func record(deliveryID: UUID, endpointID: UUID, outcome: AttemptOutcome, verdict: AttemptVerdict, at: Date) async throws {
        try await db.transaction { tx in
            try await tx.execute(
                """
                UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1, next_attempt_at = $3, last_attempt_at = $4, last_status = $5,
                    last_latency_ms = $6, last_response = $7, last_error = $8
                WHERE id = $1
                """,
                deliveryID, verdict.state.rawValue, verdict.nextAttemptAt, at, outcome.status, outcome.latencyMs, outcome.response, outcome.error)
            if let reason = verdict.disableReason {
                try await tx.execute(
                    "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $2, updated_at = $3, leased_by = NULL, lease_until = NULL WHERE id = $1",
                    endpointID, reason, at)
            }
        }
    }

    public func backlog() async throws -> (pending: Int, oldest: Date?) {
        guard let row = try await db.queryFirst(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM webhook_deliveries WHERE state = 'pending'") else { return (0, nil) }
        return (Int(try row.int("n")), try row.optionalDate("oldest"))
    }

    public func prune(before: Date) async throws {
        try await db.execute("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1", before)
        try await db.execute(
            "DELETE FROM webhook_events WHERE at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = webhook_events.seq)", before)
    }
}
