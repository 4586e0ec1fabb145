import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Storage

/// Reads JSON request bodies in the order the contract fixes: content type (415), size (413),
/// then syntax and shape (400). Unknown fields are ignored.
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

    public static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int = defaultLimit) async throws -> T {
        try requireJSON(request)
        let buffer = try await collect(request, limit: limit)
        return try parse(type, from: buffer)
    }

    /// For endpoints whose body is optional (`{}` or nothing).
    public static func decodeOptional<T: Decodable>(_ type: T.Type, from request: Request, default value: T) async throws -> T {
        let buffer: ByteBuffer
        if request.headers[.contentType] == nil {
            buffer = try await collect(request, limit: defaultLimit)
            if buffer.readableBytes == 0 { return value }
            throw Problem(.unsupportedMediaType, detail: "send the body as application/json")
        }
        try requireJSON(request)
        buffer = try await collect(request, limit: defaultLimit)
        if buffer.readableBytes == 0 { return value }
        return try parse(type, from: buffer)
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

    static func parse<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        let data = Data(buffer: buffer)
        guard !data.isEmpty else { throw Problem.badRequest("request body is empty; send a JSON object") }
        guard nestingDepth(buffer) <= maxDepth else {
            throw Problem.badRequest("request body nests deeper than \(maxDepth) levels")
        }
        do {
            return try decoder.decode(T.self, from: data)
        } catch let error as DecodingError {
            throw Problem.badRequest(describe(error))
        } catch {
            throw Problem.badRequest("request body is not valid JSON")
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
        var headers: HTTPFields = [.contentType: "application/json"]
        if let revision { headers[.portcullisRevision] = String(revision) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    public static func noContent(revision: Int64? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let revision { headers[.portcullisRevision] = String(revision) }
        return Response(status: .noContent, headers: headers)
    }
}

extension HTTPField.Name {
    public static let portcullisRevision = HTTPField.Name("Portcullis-Revision")!
    public static let requestID = HTTPField.Name("X-Request-ID")!
}
