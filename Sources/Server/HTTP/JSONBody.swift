import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Wire

/// Reads JSON request bodies in the order the contract fixes: content type (415), size (413),
/// syntax (400), then — after the route has authenticated the caller (401) — the fields (400).
/// Unknown fields are ignored.
public enum JSONBody {
    public static let defaultLimit = 64 * 1024

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let date = RFC3339.date(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 timestamp")
            }
            return date
        }
        return d
    }()

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(RFC3339.string(date))
        }
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// Reads a body for a route without a caller (signup, login, password reset, …): every
    /// check at once, content type and syntax and fields alike.
    public static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int = defaultLimit) async throws -> T {
        try await read(type, from: request, limit: limit).fields()
    }

    /// Reads a body for a route that authenticates: content type (415), size (413), nesting and
    /// syntax (400) now; missing or mistyped fields only from `fields()`, called after
    /// authenticating, so an anonymous caller learns 401 and not the body's shape (SPEC §11).
    public static func read<T: Decodable>(_ type: T.Type, from request: Request, limit: Int = defaultLimit) async throws -> CheckedBody<T> {
        try requireJSON(request)
        let buffer = try await collect(request, limit: limit)
        return try check(type, from: buffer)
    }

    /// `read` for a body with a hand-written reader for its usual shape (the decision bodies):
    /// the same checks in the same order, the reader first, JSONDecoder whenever it is unsure.
    static func read<T: QuickJSONReadable>(_ type: T.Type, from request: Request, limit: Int = defaultLimit) async throws -> CheckedBody<T> {
        try requireJSON(request)
        let buffer = try await collect(request, limit: limit)
        return try check(type, from: buffer, quick: T.quickRead)
    }

    /// `read` for endpoints whose body is optional (`{}` or nothing).
    public static func readOptional<T: Decodable>(_ type: T.Type, from request: Request, default value: T) async throws -> CheckedBody<T> {
        let buffer: ByteBuffer
        if request.headers[.contentType] == nil {
            buffer = try await collect(request, limit: defaultLimit)
            if buffer.readableBytes == 0 { return CheckedBody(.success(value)) }
            throw Problem(.unsupportedMediaType, detail: "send the body as application/json")
        }
        try requireJSON(request)
        buffer = try await collect(request, limit: defaultLimit)
        if buffer.readableBytes == 0 { return CheckedBody(.success(value)) }
        return try check(type, from: buffer)
    }

    static func requireJSON(_ request: Request) throws {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
            throw Problem(.unsupportedMediaType, detail: "send the body as application/json")
        }
    }

    static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        let tooLarge = Problem(.contentTooLarge, detail: "request body is larger than \(limit) bytes")
        // Announced: refused before a byte of it is read.
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw tooLarge }
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            // Not announced (chunked): refused as soon as it passes the limit, not read to its end.
            throw tooLarge
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw tooLarge
        } catch {
            // The connection ended mid-body: the client went away, or trickled its body past
            // the client timeout (PORTCULLIS_CLIENT_TIMEOUT_SECONDS) and the server closed it.
            throw Problem(.requestTimeout, code: "request_timeout", detail: "the request body did not arrive in full")
        }
    }

    /// The checks before authentication: something to parse, not too deep, well-formed JSON.
    /// Decoding into `T` happens here too (one pass over the bytes on the usual path); only
    /// its verdict on the fields waits in the `CheckedBody`.
    /// `quick` may read the body first; where it returns nil, JSONDecoder reads it as ever.
    static func check<T: Decodable>(
        _ type: T.Type, from buffer: ByteBuffer, quick: ((UnsafeRawBufferPointer) -> T?)? = nil
    ) throws -> CheckedBody<T> {
        guard buffer.readableBytes > 0 else { throw Problem.badRequest("request body is empty; send a JSON object") }
        guard nestingDepth(buffer) <= maxDepth else {
            throw Problem.badRequest("request body nests deeper than \(maxDepth) levels")
        }
        if let quick, let body = buffer.withUnsafeReadableBytes(quick) { return CheckedBody(.success(body)) }
        let data = Data(buffer: buffer)
        do {
            return CheckedBody(.success(try decoder.decode(T.self, from: data)))
        } catch {
            // Broken JSON is a parse error, answered before authentication; well-formed JSON of
            // the wrong shape is a field error, answered after it.
            guard (try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed)) != nil else {
                throw Problem.badRequest("request body is not valid JSON")
            }
            let detail = (error as? DecodingError).map(describe) ?? "request body is not valid"
            return CheckedBody(.failure(Problem.badRequest(detail)))
        }
    }

    /// No request shape nests deeper than a handful of levels; metadata objects get some room.
    static let maxDepth = 32

    /// The deepest `[`/`{` nesting outside strings, counted before the decoder recurses into it.
    static func nestingDepth(_ buffer: ByteBuffer) -> Int {
        buffer.withUnsafeReadableBytes { bytes in
            var depth = 0, deepest = 0
            var inString = false, escaped = false
            for byte in bytes {
                if inString {
                    if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                    continue
                }
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    depth += 1
                    if depth > deepest { deepest = depth }
                    if deepest > maxDepth { return deepest }
                case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
                default: break
                }
            }
            return deepest
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { key in key.intValue.map { "[\($0)]" } ?? KeyCase.snake(key.stringValue) }.joined(separator: ".")
            return p.isEmpty ? "body" : p
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "missing field \(parent == "body" ? "" : parent + ".")\(KeyCase.snake(key.stringValue))"
        case .typeMismatch(let type, let context):
            return "\(path(context)) has the wrong type (expected \(typeName(type)))"
        case .valueNotFound(let type, let context):
            return "\(path(context)) must not be null (expected \(typeName(type)))"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "request body is not valid JSON" : "\(path(context)) is not valid"
        @unknown default:
            return "request body is not valid"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "string"
        case is Bool.Type: return "boolean"
        case is Int.Type, is Int64.Type, is Double.Type: return "number"
        default: return "object"
        }
    }


    /// A JSON response with the project's conventions (snake_case, RFC 3339 UTC).
    public static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, revision: Int64? = nil) throws -> Response {
        let data = try encoder.encode(value)
        return response(json: ByteBuffer(bytes: data), status: status, revision: revision)
    }

    /// A response whose JSON is written already (JSONWriter), with `response`'s headers.
    static func response(json: ByteBuffer, status: HTTPResponse.Status = .ok, revision: Int64? = nil) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let revision { headers[.portcullisRevision] = String(revision) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: json))
    }

    public static func noContent(revision: Int64? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let revision { headers[.portcullisRevision] = String(revision) }
        return Response(status: .noContent, headers: headers)
    }
}

/// A request body past the checks made before authentication (content type, size, syntax),
/// not yet held to its shape: `fields()` gives the typed body or the 400 naming what is wrong.
public struct CheckedBody<T> {
    private let result: Result<T, Problem>

    init(_ result: Result<T, Problem>) { self.result = result }

    /// The typed body, or 400 for a missing or mistyped field. Call after authenticating.
    public func fields() throws -> T { try result.get() }

    /// The body if its fields are fine, for work that may start before authentication.
    var ifValid: T? { try? result.get() }
}

extension CheckedBody: Sendable where T: Sendable {}

extension HTTPField.Name {
    public static let portcullisRevision = HTTPField.Name("Portcullis-Revision")!
    public static let requestID = HTTPField.Name("X-Request-ID")!
}
