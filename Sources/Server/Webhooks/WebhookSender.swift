import AsyncHTTPClient
import Foundation
import Identity
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Storage
import Webhooks

/// Webhook secrets sealed with the instance's master key (as the signing keys are).
struct SealedWebhookSecrets: WebhookSecretBox {
    let sealer: KeySealer

    func seal(_ secret: WebhookSecret) throws -> String { try sealer.seal(secret.key) }
    func open(_ sealed: String) throws -> WebhookSecret { WebhookSecret(key: try sealer.open(sealed)) }
}

/// POSTs a delivery with async-http-client: no redirects followed, ten seconds in all, at most
/// an excerpt of the answer read. Unless private targets are allowed, the host is resolved
/// here, every address it resolves to must be public, and the connection goes to the address
/// that was checked (DNS may answer differently a moment later).
struct HTTPWebhookTransport: WebhookTransport {
    typealias Resolver = @Sendable (String) async throws -> [(address: IPAddress, text: String)]
    let client: HTTPClient
    let allowPrivate: Bool
    /// How a host name becomes addresses: the system's resolver (tests put in their own DNS answers).
    var resolve: Resolver = HTTPWebhookTransport.systemResolve
    static let timeout: TimeAmount = .seconds(10)

    static func configuration(dnsOverride: [String: String] = [:]) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(10)))
        configuration.dnsOverride = dnsOverride
        configuration.httpVersion = .http1Only
        return configuration
    }

    static func shared() -> HTTPClient {
        HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration())
    }

    func post(url: String, headers: [(name: String, value: String)], body: Data) async -> AttemptOutcome {
        let start = ContinuousClock.now
        func elapsed() -> Int { Int((ContinuousClock.now - start) / .milliseconds(1)) }
        var pinned: HTTPClient?
        do {
            let destination = try WebhookDestination(url, allowPrivate: allowPrivate)
            if !allowPrivate {
                let addresses = try await resolve(destination.host)
                guard let first = addresses.first else { return AttemptOutcome(status: nil, latencyMs: elapsed(), error: "the host name did not resolve") }
                if let refused = addresses.first(where: { !$0.address.isPublic }) {
                    return AttemptOutcome(status: nil, latencyMs: elapsed(), error: "refused: \(destination.host) resolves to \(refused.text), not a public address")
                }
                pinned = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: Self.configuration(dnsOverride: [destination.host: first.text]))
            }
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await (pinned ?? client).execute(request, timeout: Self.timeout)
            var excerpt = Data()
            for try await chunk in response.body {
                excerpt.append(contentsOf: chunk.readableBytesView.prefix(WebhookDelivery.excerptLimit - excerpt.count))
                if excerpt.count >= WebhookDelivery.excerptLimit { break }
            }
            try? await pinned?.shutdown()
            let status = Int(response.status.code)
            return AttemptOutcome(
                status: status, latencyMs: elapsed(), response: String(decoding: excerpt, as: UTF8.self),
                error: (200..<300).contains(status) ? nil : "the receiver answered \(status)")
        } catch let error as WebhookError {
            try? await pinned?.shutdown()
            if case .invalid(let why) = error { return AttemptOutcome(status: nil, latencyMs: elapsed(), error: "refused: \(why)") }
            return AttemptOutcome(status: nil, latencyMs: elapsed(), error: "refused")
        } catch {
            try? await pinned?.shutdown()
            return AttemptOutcome(status: nil, latencyMs: elapsed(), error: "no answer: \(String(describing: error).prefix(200))")
        }
    }

    /// Every address `host` resolves to (a literal address is itself), off the async threads.
    static func systemResolve(_ host: String) async throws -> [(address: IPAddress, text: String)] {
        if let literal = IPAddress(host) { return [(literal, host)] }
        return try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, nil, &hints, &list) == 0, let list else { return [] }
            defer { freeaddrinfo(list) }
            var found: [(IPAddress, String)] = []
            var node: UnsafeMutablePointer<addrinfo>? = list
            while let entry = node {
                var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                let family = entry.pointee.ai_family
                if family == AF_INET, let sa = entry.pointee.ai_addr {
                    var a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
                } else if family == AF_INET6, let sa = entry.pointee.ai_addr {
                    var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
                }
                let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if let address = IPAddress(text), !found.contains(where: { $0.1 == text }) { found.append((address, text)) }
                node = entry.pointee.ai_next
            }
            return found
        }
    }
}

/// Runs this node's webhook dispatcher until shutdown; finished deliveries are forgotten after 30 days.
struct WebhookSender: Service, CustomStringConvertible {
    var description: String { "WebhookSender" }
    let services: AppServices
    let logger: Logger
    static let keepFinished: TimeInterval = 30 * 24 * 3600

    func run() async throws {
        let queue = services.webhookQueue
        // Only one process can use a SQLite file: leases left by a killed run are void.
        if services.database.dialect == .sqlite { try? await queue.releaseAll() }
        let client = HTTPWebhookTransport.shared()
        var configured = WebhookDispatcher(
            queue: queue, transport: HTTPWebhookTransport(client: client, allowPrivate: services.config.webhookAllowPrivate), box: services.webhookSecrets)
        configured.schedule.first = services.config.webhookFirstRetry / .seconds(1)
        configured.observe = { [metrics = services.metrics] result in metrics.webhookAttempt(result) }
        configured.failed = { [logger] endpoint, error in
            logger.warning("webhook sending failed; it is tried again", metadata: ["endpoint": "\(endpoint.map(\.uuidString) ?? "-")", "error": "\(error)"])
        }
        let dispatcher = configured
        // A first look after one interval, so a node told to wait long never sends (tests drive their own dispatchers).
        let interval = services.config.webhookInterval
        await cancelWhenGracefulShutdown {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled else { return }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await dispatcher.run(idle: interval) }
                group.addTask {
                    while !Task.isCancelled {
                        try? await queue.prune(before: Date().addingTimeInterval(-Self.keepFinished))
                        try? await Task.sleep(for: .seconds(600))
                    }
                }
                await group.waitForAll()
            }
        }
        try? await client.shutdown()
    }
}
