import Foundation
import Hummingbird
import HummingbirdCore
import Identity
import Logging
import NIOPosix
import Policy
import ServiceLifecycle
import Storage

/// Builds the HTTP application around a node's services. Used by `portcullis serve` and tests.
/// `onListening` runs once the socket is bound, with the port it got.
public func buildApplication(
    services: AppServices, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: AppRequestContext.self)
    let routes = RouteTable(router: router)
    let config = services.config
    router.add(middleware: RequestObserver(logger: logger, metrics: services.metrics, addresses: ClientAddress(trustedProxies: config.trustedProxies)))
    router.add(middleware: SecurityHeadersMiddleware())
    if !config.corsOrigins.isEmpty { router.add(middleware: CORSAllowList(origins: Set(config.corsOrigins))) }
    router.add(middleware: ErrorMiddleware(routes: routes))
    router.add(middleware: ExpectContinueMiddleware())
    let authenticator = Authenticator(services)
    router.add(middleware: AuthenticationMiddleware(authenticator: authenticator))
    registerRoutes(routes, services: services, authenticator: authenticator)
    registerPages(router, services: services, authenticator: authenticator)
    // Small header limits (requests here carry one bearer token, not cookies) and a client
    // timeout: a connection that has not sent a complete request head in time is closed.
    let http = HTTP1Channel.Configuration(
        idleTimeout: .milliseconds(Int64(config.clientTimeout.seconds * 1000)),
        httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 32 * 1024, maxHeaderFieldCount: 100))
    var app = Application(
        router: router,
        server: .http1(configuration: http),
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil),
        onServerRunning: { channel in await onListening(channel.localAddress?.port ?? config.port) },
        logger: logger)
    // A service group stops its services in reverse order: the SMTP threads after the sender,
    // the sender after the account-mail worker that queues for it.
    app.addServices(
        MailThreads(pool: services.mailThreads), ChangeFollower(services: services), KeyUsageFlusher(services: services),
        services.mailSender, AccountMailWorker(services: services, logger: logger), WebhookSender(services: services, logger: logger))
    if let age = services.config.signingKeyRotation {
        app.addServices(SigningKeyRotator(services: services, age: age))
    }
    return app
}

/// Runs the application until SIGTERM or SIGINT, then drains it. The announcer runs beside it in
/// an outer group, which signals its services in reverse order: the announcer hears the signal
/// first and logs what is still to finish, before the app starts draining.
public func runUntilSignalled(_ app: some ApplicationProtocol, services: AppServices, logger: Logger) async throws {
    let group = ServiceGroup(configuration: .init(
        services: [app, ShutdownAnnouncer(services: services, logger: logger)],
        gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}

/// Says in the log when a graceful shutdown (SIGTERM, SIGINT) begins and what is still to
/// finish; `serve` says "stopped" when everything has.
struct ShutdownAnnouncer: Service, CustomStringConvertible {
    var description: String { "ShutdownAnnouncer" }
    let services: AppServices
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        guard !Task.isCancelled else { return }
        let pending = (try? await services.outbox.counts(maxAttempts: OutboxSender.maxAttempts).pending).map(String.init) ?? "unknown"
        logger.info("shutting down: finishing the requests in flight, closing watch streams, stopping the mail sender", metadata: [
            "requests_in_flight": "\(services.metrics.requestsInFlight)", "watch_streams": "\(services.watch.streamCount)",
            "mail_pending": "\(pending)",
        ])
    }
}

/// Follows the change log so that writes made on other nodes apply here: at their commit on
/// PostgreSQL (NOTIFY), within the poll interval otherwise.
struct ChangeFollower: Service, CustomStringConvertible {
    var description: String { "ChangeFollower" }
    let services: AppServices

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await services.changes.run()
        }
        // Watch streams end with the follower that feeds them; clients resume elsewhere.
        services.watch.close()
    }
}

/// Writes API keys' `last_used_at` in batches: one UPDATE per used key per interval, not per request.
struct KeyUsageFlusher: Service, CustomStringConvertible {
    var description: String { "KeyUsageFlusher" }
    let services: AppServices

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: services.config.keyUsageFlushInterval)
                try? await services.keyVerifier.flushUses()
            }
        }
        // Whatever was seen since the last flush is written on the way out.
        try? await services.keyVerifier.flushUses()
    }
}

/// Works the queued password-reset and verification requests (`AccountMailQueue`).
struct AccountMailWorker: Service, CustomStringConvertible {
    var description: String { "AccountMailWorker" }
    let services: AppServices
    let logger: Logger

    func run() async throws {
        let logger = logger
        await cancelWhenGracefulShutdown {
            await services.auth.runAccountMail { error in
                logger.error("account mail request failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
        // Requests answered before the shutdown still get their mail.
        try? await services.auth.drainAccountMail()
    }
}

/// Stops the SMTP threads once the mail sender has stopped (services stop in reverse order).
struct MailThreads: Service, CustomStringConvertible {
    var description: String { "MailThreads" }
    let pool: NIOThreadPool

    func run() async throws {
        try? await gracefulShutdown()
        try? await pool.shutdownGracefully()
    }
}

/// Rotates the signing key once the active one is older than the configured age. Every node runs
/// it; the store rotates only if the key is still old under its lock, so one rotation happens.
struct SigningKeyRotator: Service, CustomStringConvertible {
    var description: String { "SigningKeyRotator" }
    let services: AppServices
    let age: Duration

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                _ = try? await services.tokens.rotateIfOlder(than: age)
                try? await Task.sleep(for: .seconds(60))
            }
        }
    }
}
