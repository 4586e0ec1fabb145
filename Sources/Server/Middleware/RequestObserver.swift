import Authority
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization
import Tenancy

/// What one request learns on its way through that its log line needs: who the caller was.
/// Handlers reach it through a task local, so authentication can note the caller without
/// every route passing the context along.
final class RequestTrace: Sendable {
    @TaskLocal static var current: RequestTrace?
    private let caller = Mutex<Caller?>(nil)

    static func noteCaller(_ caller: Caller) {
        current?.caller.withLock { $0 = caller }
    }

    /// `user:<id>`, `user:<id> key:<id>`, `service_account:<id> key:<id>` or `… client:<id>`; formatted only
    /// when a log line is written.
    var subjectID: String? {
        guard let caller = caller.withLock({ $0 }) else { return nil }
        switch caller.credential {
        case .session: return "user:" + (caller.user?.id.lowercasedString ?? "?")
        case .userKey(let key): return "user:" + (caller.user?.id.lowercasedString ?? "?") + " key:" + key.id.lowercasedString
        case .serviceAccountKey(let key, let account, _): return "service_account:" + account.lowercasedString + " key:" + key.id.lowercasedString
        case .clientServiceAccount(let client, let account, _): return "service_account:" + account.lowercasedString + " client:" + client
        }
    }
}

/// The outermost middleware: gives each request an id (`X-Request-ID`, accepted when it is a
/// sane token, made otherwise), works out the client address (see `ClientAddress`), and after
/// the response writes one log line and the request's metrics. The log line never carries the
/// query string, headers or body, so tokens and passwords stay out of logs.
struct RequestObserver: RouterMiddleware {
    typealias Context = AppRequestContext
    let logger: Logger
    let metrics: ServerMetrics
    let addresses: ClientAddress

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        metrics.requestStarted()
        defer { metrics.requestEnded() }
        let requestID = Self.requestID(request.headers[.requestID])
        var context = context
        context.clientIP = addresses.resolve(peer: context.clientIP, forwardedFor: request.headers[values: .xForwardedFor])
        let trace = RequestTrace()
        var response: Response
        do {
            response = try await RequestTrace.$current.withValue(trace) { try await next(request, context) }
        } catch {
            // The error middleware inside turns everything into a response; this is a backstop.
            response = Response(status: .internalServerError)
            logger.error("request failed outside the error middleware", metadata: ["error": "\(String(reflecting: error))"])
        }
        response.headers[.requestID] = requestID
        let elapsed = ContinuousClock.now - start
        let route = context.endpointPath ?? "unmatched"
        // Label values stay a small set: clients may send any method name.
        let method = Self.knownMethods.contains(request.method) ? request.method.rawValue : "other"
        metrics.request(method: method, route: route, status: response.status.code, duration: elapsed)
        // The line's metadata is built only when the line will be written.
        guard logger.logLevel <= .info else { return response }
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        var metadata: Logger.Metadata = [
            "request_id": .string(requestID),
            "method": .string(request.method.rawValue),
            "route": .string(route),
            "path": .string(request.uri.path),
            "status": .stringConvertible(response.status.code),
            "latency_ms": .string("\(micros / 1000).\(String(1000 + micros % 1000).dropFirst())"),
            "ip": .string(context.clientIP),
        ]
        if let subject = trace.subjectID { metadata["subject"] = .string(subject) }
        logger.info("request", metadata: metadata)
        return response
    }

    static let knownMethods: Set<HTTPRequest.Method> = [.get, .head, .post, .put, .patch, .delete, .options]

    /// A caller's id when it is 1...128 characters of letters, digits and `-._:`; else a new one.
    static func requestID(_ given: String?) -> String {
        if let given, (1...128).contains(given.utf8.count),
           given.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F || $0 == 0x3A }) {
            return given
        }
        return UUID().lowercasedString
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
