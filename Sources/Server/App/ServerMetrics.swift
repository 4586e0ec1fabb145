import Foundation
import Prometheus
import Storage
import Synchronization

/// This node's Prometheus metrics, in a registry of its own (no process-wide metrics system,
/// so several apps in one test process keep apart). Values that other modules keep as plain
/// counters (grant cache, database guard, abuse limits) are copied in when `/metrics` is read.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let allowed: Counter
    private let denied: Counter
    /// Last values copied from counters kept elsewhere, so scrapes add only the difference.
    private let copied = Mutex<[String: Int]>([:])
    private let inFlight = Atomic<Int>(0)
    static let buckets: [Duration] = [
        .microseconds(250), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    public init() {
        allowed = registry.makeCounter(descriptor: .named("portcullis_decisions_total", help: "Authorization decisions answered"), labels: [("result", "allowed")])
        denied = registry.makeCounter(descriptor: .named("portcullis_decisions_total", help: "Authorization decisions answered"), labels: [("result", "denied")])
        registry.makeGauge(
            descriptor: .named("portcullis_build_info", help: "The release and git commit this node runs (always 1)"),
            labels: [("version", PortcullisBuild.version), ("commit", PortcullisBuild.commit)]
        ).set(Double(1))
    }

    func request(method: String, route: String, status: Int, duration: Duration) {
        let labels = [("method", method), ("route", route), ("status", String(status))]
        registry.makeCounter(descriptor: .named("portcullis_http_requests_total", help: "HTTP requests by route and status"), labels: labels).increment()
        registry.makeDurationHistogram(
            descriptor: .named("portcullis_http_request_duration_seconds", help: "HTTP request latency by route and status"), labels: labels,
            buckets: Self.buckets
        ).record(duration)
    }

    func requestStarted() { inFlight.add(1, ordering: .relaxed) }
    func requestEnded() { inFlight.subtract(1, ordering: .relaxed) }
    /// Requests this node has begun and not yet answered.
    public var requestsInFlight: Int { inFlight.load(ordering: .relaxed) }

    func decision(allowed isAllowed: Bool) {
        (isAllowed ? allowed : denied).increment()
    }

    /// One webhook delivery attempt and how it ended (`delivered`, `failed`, `gave_up`, `gone`).
    func webhookAttempt(_ result: String) {
        registry.makeCounter(descriptor: .named("portcullis_webhook_deliveries_total", help: "Webhook delivery attempts by result"), labels: [("result", result)]).increment()
    }

    /// A counter kept elsewhere as a running total.
    func copyCounter(_ name: String, help: String, total: Int) {
        let delta = copied.withLock { seen -> Int in
            let d = total - (seen[name] ?? 0)
            seen[name] = total
            return d
        }
        let counter = registry.makeCounter(descriptor: .named(name, help: help))
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }

    func gauge(_ name: String, help: String, _ value: Int) {
        registry.makeGauge(descriptor: .named(name, help: help)).set(Double(value))
    }

    /// The text exposition, after copying in the values kept by other parts of the node.
    func scrape(services: AppServices) async -> String {
        let (hits, misses, orgs) = services.policy.cacheStats
        copyCounter("portcullis_grant_cache_hits_total", help: "Decisions whose org grants were in memory", total: hits)
        copyCounter("portcullis_grant_cache_misses_total", help: "Org grant loads from the database", total: misses)
        gauge("portcullis_grant_cache_orgs", help: "Orgs held in the grant cache (known or known absent)", orgs)
        if let guarded = services.database as? GuardedDatabase {
            let (inFlight, failures) = guarded.stats
            gauge("portcullis_db_operations_in_flight", help: "Database operations running now", inFlight)
            copyCounter("portcullis_db_unavailable_total", help: "Database operations that failed: unreachable, deadline passed or breaker open", total: failures)
        }
        copyCounter("portcullis_login_failures_total", help: "Failed logins", total: services.limits.loginFailureCount)
        copyCounter("portcullis_throttled_total", help: "Requests refused with 429 by the abuse limits", total: services.limits.throttledCount)
        if let counts = try? await services.outbox.counts(maxAttempts: OutboxSender.maxAttempts) {
            gauge("portcullis_outbox_pending", help: "Mail waiting to be sent", counts.pending)
            gauge("portcullis_outbox_failed", help: "Mail given up after every retry", counts.failed)
        }
        if let (pending, oldest) = try? await services.webhookQueue.backlog() {
            gauge("portcullis_webhook_queue_depth", help: "Webhook deliveries waiting to be sent", pending)
            let age = oldest.map { max(0, Date().timeIntervalSince($0)) } ?? 0
            registry.makeGauge(descriptor: .named("portcullis_webhook_oldest_pending_seconds", help: "Age of the oldest webhook delivery waiting")).set(age)
        }
        gauge("portcullis_http_requests_in_flight", help: "Requests begun and not yet answered", requestsInFlight)
        var text = registry.emitToString()
        ProcessMetrics.append(to: &text)
        return text
    }
}

extension MetricNameDescriptor {
    /// A metric under its whole name: the name already ends in its unit (`_total`, `_seconds`).
    static func named(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
