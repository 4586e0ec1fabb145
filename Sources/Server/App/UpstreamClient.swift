import AsyncHTTPClient
import Federation
import Foundation
import NIOCore

/// Outbound HTTP to upstream identity providers (their discovery, keys, token and user
/// endpoints) on the process-wide client (it needs no shutdown): five seconds in all, answers up
/// to 1 MiB. The providers are the root's choice, so private addresses are allowed (a provider on
/// the same network).
struct UpstreamClient: UpstreamHTTP {
    var client: HTTPClient = .shared
    /// The whole call, connecting included: the client retries a refused connection until this
    /// deadline, and a person waits on the page meanwhile.
    static let timeout: TimeAmount = .seconds(5)
    static let maxBody = 1 << 20

    func get(_ url: String, headers: [(String, String)]) async throws -> UpstreamResponse {
        try await send(HTTPClientRequest(url: url), headers: headers)
    }

    func postForm(_ url: String, fields: [(String, String)], headers: [(String, String)]) async throws -> UpstreamResponse {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(fields)))
        return try await send(request, headers: headers + [("Content-Type", "application/x-www-form-urlencoded")])
    }

    func send(_ request: HTTPClientRequest, headers: [(String, String)]) async throws -> UpstreamResponse {
        var request = request
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        do {
            let response = try await client.execute(request, timeout: Self.timeout)
            let body = try await response.body.collect(upTo: Self.maxBody)
            return UpstreamResponse(status: Int(response.status.code), body: Data(buffer: body))
        } catch {
            // The host only: the person reading the page needs no more (and no internal paths).
            throw FederationError.unreachable("the provider could not be reached (\(URL(string: request.url)?.host ?? "its host")); try again later")
        }
    }
}
