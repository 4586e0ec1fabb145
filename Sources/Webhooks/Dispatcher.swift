import Foundation

/// Sends a POST and reports what came of it; never throws (every failure is an outcome).
public protocol WebhookTransport: Sendable {
    func post(url: String, headers: [(name: String, value: String)], body: Data) async -> AttemptOutcome
}

/// One node's share of the sending (SPEC §16). Each round it leases the endpoints that have a
/// due delivery (a node at a time per endpoint), then sends each leased endpoint's queue in
/// order, endpoints side by side: a slow or failing receiver holds up only itself. A delivery
/// that fails waits its backoff; the endpoint's later deliveries wait behind it (order is
/// kept), and once it has been given up on (about three days) the endpoint is turned off.
public struct WebhookDispatcher: Sendable {
    public let queue: any WebhookQueue
    public let transport: any WebhookTransport
    public let box: any WebhookSecretBox
    public var schedule = RetrySchedule()
    /// This node's name on its leases.
    public let node: String
    public var leaseLength: TimeInterval = 30
    /// Endpoints sent to at once.
    public var width = 8
    /// Hears each attempt's result: `delivered`, `failed` (to be retried), `gave_up`, `gone`.
    public var observe: @Sendable (String) -> Void = { _ in }
    /// Hears what stopped an endpoint's turn (its id) or a lease (nil), a database error; the
    /// lease is let go and the next look tries again.
    public var failed: @Sendable (UUID?, any Error) -> Void = { _, _ in }
    let now: @Sendable () -> Date

    public init(queue: any WebhookQueue, transport: any WebhookTransport, box: any WebhookSecretBox, node: String = UUID().uuidString,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.queue = queue
        self.transport = transport
        self.box = box
        self.node = node
        self.now = now
    }

    /// Works until cancelled: up to `width` endpoints at a time, leasing more as soon as one is
    /// done (a slow receiver holds one slot, not a round), and looking again every `idle`.
    public func run(idle: Duration) async {
        await withTaskGroup(of: Int?.self) { group in
            var draining = 0
            var waiting = false
            while !Task.isCancelled {
                if draining < width {
                    let start = now()
                    do {
                        let leased = try await queue.lease(node: node, limit: width - draining, now: start, until: start.addingTimeInterval(leaseLength))
                        for endpoint in leased {
                            draining += 1
                            group.addTask { await drainReporting(endpoint) }
                        }
                    } catch {
                        failed(nil, error)
                    }
                }
                if !waiting {
                    waiting = true
                    group.addTask {
                        try? await Task.sleep(for: idle)
                        return nil
                    }
                }
                guard let finished = await group.next() else { break }
                if finished == nil { waiting = false } else { draining -= 1 }
            }
            group.cancelAll()
        }
    }

    func drainReporting(_ endpoint: LeasedEndpoint) async -> Int {
        do { return try await drain(endpoint) } catch {
            failed(endpoint.id, error)
            return 0
        }
    }

    /// Leases what is due and sends it; returns how many attempts were made.
    public func round() async throws -> Int {
        let start = now()
        let leased = try await queue.lease(node: node, limit: width, now: start, until: start.addingTimeInterval(leaseLength))
        guard !leased.isEmpty else { return 0 }
        return await withTaskGroup(of: Int.self) { group in
            for endpoint in leased {
                group.addTask { await drainReporting(endpoint) }
            }
            return await group.reduce(0, +)
        }
    }

    /// Sends `endpoint`'s pending deliveries in order until one fails, one is not due yet, the
    /// queue is empty, or the lease is lost; then lets the lease go.
    func drain(_ endpoint: LeasedEndpoint) async throws -> Int {
        do {
            let attempts = try await sendQueue(endpoint)
            try? await queue.release(endpointID: endpoint.id, node: node)
            return attempts
        } catch {
            try? await queue.release(endpointID: endpoint.id, node: node)
            throw error
        }
    }

    func sendQueue(_ leased: LeasedEndpoint) async throws -> Int {
        var attempts = 0
        var endpoint = leased
        var secrets = try endpoint.sealedSecrets.map(box.open)
        while !Task.isCancelled {
            let batch = try await queue.pending(endpointID: endpoint.id, limit: 50)
            guard !batch.isEmpty else { return attempts }
            for delivery in batch {
                guard delivery.nextAttemptAt <= now(), !Task.isCancelled else { return attempts }
                if attempts > 0 {
                    // Before each further send: the lease is still ours, and the URL and secrets
                    // are the endpoint's now (a rotation or a new URL counts from the next event).
                    let at = now()
                    guard let current = try await queue.renew(endpointID: endpoint.id, node: node, now: at, until: at.addingTimeInterval(leaseLength)) else {
                        return attempts
                    }
                    if current != endpoint {
                        endpoint = current
                        secrets = try current.sealedSecrets.map(box.open)
                    }
                }
                let verdict = try await send(delivery, to: endpoint, secrets: secrets)
                attempts += 1
                guard verdict.state != .pending, verdict.disableReason == nil else { return attempts }
            }
        }
        return attempts
    }

    func send(_ delivery: DueDelivery, to endpoint: LeasedEndpoint, secrets: [WebhookSecret]) async throws -> AttemptVerdict {
        let body = Data(delivery.payload.utf8)
        let sentAt = now()
        let headers = WebhookSignature.headers(id: delivery.eventID.uuidString.lowercased(), timestamp: sentAt, body: body, secrets: secrets)
            + [("content-type", "application/json"), ("user-agent", "Portcullis-Webhooks/1")]
        let outcome = await transport.post(url: endpoint.url, headers: headers, body: body)
        let verdict = Self.verdict(outcome, attempt: delivery.attempts + 1, schedule: schedule, at: now(), unit: Double.random(in: 0..<1))
        try await queue.record(deliveryID: delivery.id, endpointID: endpoint.id, outcome: outcome, verdict: verdict, at: now())
        observe(outcome.delivered ? "delivered" : outcome.gone ? "gone" : verdict.state == .failed ? "gave_up" : "failed")
        return verdict
    }

    /// What follows from attempt number `attempt` ending in `outcome`.
    public static func verdict(_ outcome: AttemptOutcome, attempt: Int, schedule: RetrySchedule, at: Date, unit: Double) -> AttemptVerdict {
        if outcome.delivered { return AttemptVerdict(state: .delivered, nextAttemptAt: at) }
        guard let wait = schedule.wait(after: attempt, unit: unit) else {
            return AttemptVerdict(state: .failed, nextAttemptAt: at, disableReason: "a delivery failed for \(Int(schedule.longestSpan / 3600)) hours; turned off")
        }
        // Gone: kept pending (nothing is lost), and the endpoint is off until someone turns it on.
        return AttemptVerdict(state: .pending, nextAttemptAt: at.addingTimeInterval(wait),
                              disableReason: outcome.gone ? "the receiver answered 410 Gone; turned off" : nil)
    }
}
