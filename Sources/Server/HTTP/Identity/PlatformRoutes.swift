import APIDocs
import Foundation
import Hummingbird
import OpenID
import Identity
import NIOCore

/// Liveness, readiness, discovery documents, the API description, and root-only key rotation.
struct PlatformRoutes {
    let tokens: TokenService
    let config: AppConfig
    /// Answers when the database does, within its guard's deadline (readiness).
    let ping: @Sendable () async throws -> Void
    /// The Prometheus text of this node.
    let scrape: @Sendable () async -> String

    @Sendable func health(_ request: Request, context: AppRequestContext) async throws -> Response {
        try JSONBody.response(["status": "ok"])
    }

    @Sendable func ready(_ request: Request, context: AppRequestContext) async throws -> Response {
        do {
            // The guarded database answers within a second, even when the server hangs.
            try await ping()
        } catch {
            throw Problem(.serviceUnavailable, code: "unavailable", detail: "the database is not reachable", headers: [.retryAfter: "1"])
        }
        return try JSONBody.response(["status": "ready"])
    }

    /// Prometheus text exposition, for the scraper's bearer token (`PORTCULLIS_METRICS_TOKEN`)
    /// or the root. Not public: counters such as pending mail could tell accounts apart.
    @Sendable func metrics(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await requireMetricsReader(request, context)
        let text = await scrape()
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func requireMetricsReader(_ request: Request, _ context: AppRequestContext) async throws {
        if let expected = config.metricsToken, let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer",
               Secrets.constantTimeEquals(Secrets.hash(String(parts[1])), Secrets.hash(expected)) {
                return
            }
        }
        _ = try await context.requireRoot()
    }

    @Sendable func openAPI(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let data = APIDocs.openAPIYAML() else { throw Problem.notFound("the API description is not bundled") }
        let served = Self.servingAt(config.publicURL, String(decoding: data, as: UTF8.self))
        return Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: served)))
    }

    /// The document with its `servers` entry naming this server (`PORTCULLIS_PUBLIC_URL`), so a
    /// generated client calls the server it was generated from, not the file's local default.
    static func servingAt(_ publicURL: String, _ yaml: String) -> String {
        guard let start = yaml.range(of: "\nservers:\n") else { return yaml }
        // The block ends at the next top-level key.
        var end = start.upperBound
        while end < yaml.endIndex, yaml[end] == " " || yaml[end] == "-" {
            end = yaml[end...].firstIndex(of: "\n").map { yaml.index(after: $0) } ?? yaml.endIndex
        }
        let quoted = publicURL.replacingOccurrences(of: "\"", with: "")
        return yaml[..<start.upperBound] + "  - url: \"\(quoted)\"\n    description: This server (PORTCULLIS_PUBLIC_URL).\n" + yaml[end...]
    }

    @Sendable func jwks(_ request: Request, context: AppRequestContext) async throws -> Response {
        var response = try JSONBody.response(["keys": tokens.jwks()])
        response.headers[.cacheControl] = "public, max-age=60"
        return response
    }

    /// OpenID Provider metadata (OpenID Connect Discovery 1.0): only what is served.
    struct Discovery: Encodable {
        let issuer: String
        let jwksUri: String
        let authorizationEndpoint: String
        let tokenEndpoint: String
        let userinfoEndpoint: String
        let revocationEndpoint: String
        let endSessionEndpoint: String
        let introspectionEndpoint: String
        let revocationEndpointAuthMethodsSupported = ["client_secret_basic", "client_secret_post", "none"]
        let introspectionEndpointAuthMethodsSupported = ["client_secret_basic", "client_secret_post"]
        let responseTypesSupported = ["code"]
        let responseModesSupported = ["query"]
        let grantTypesSupported = ["authorization_code", "refresh_token", "client_credentials"]
        let subjectTypesSupported = ["public"]
        let idTokenSigningAlgValuesSupported = ["RS256", "ES256"]
        let scopesSupported = ClientRules.scopes
        let tokenEndpointAuthMethodsSupported = ["client_secret_basic", "client_secret_post", "none"]
        let codeChallengeMethodsSupported = ["S256"]
        let claimsSupported = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "name", "email", "email_verified", "orgs", "org_id"]
        let promptValuesSupported = ["none", "login", "consent"]
        let authorizationResponseIssParameterSupported = true
        let requestParameterSupported = false
        let requestUriParameterSupported = false
    }

    @Sendable func discovery(_ request: Request, context: AppRequestContext) async throws -> Response {
        let base = config.publicURL
        var response = try JSONBody.response(Discovery(
            issuer: config.issuer, jwksUri: base + "/.well-known/jwks.json", authorizationEndpoint: base + "/oauth/authorize",
            tokenEndpoint: base + "/oauth/token", userinfoEndpoint: base + "/oauth/userinfo",
            revocationEndpoint: base + "/oauth/revoke", endSessionEndpoint: base + "/oauth/logout", introspectionEndpoint: base + "/oauth/introspect"))
        response.headers[.cacheControl] = "public, max-age=300"
        return response
    }

    struct RotateResponse: Encodable {
        struct Key: Encodable {
            let kid: String
            let algorithm: String
        }

        /// The access tokens' (ES256) new key.
        let kid: String
        let createdAt: Date
        /// Every new key: ES256 and RS256 rotate together.
        let keys: [Key]
    }

    @Sendable func rotate(_ request: Request, context: AppRequestContext) async throws -> Response {
        let caller = try await context.requireRoot()
        let (keys, revision) = try await tokens.rotate(by: .user(try caller.requireUser().id))
        return try JSONBody.response(
            RotateResponse(kid: keys[0].kid, createdAt: keys[0].createdAt, keys: keys.map { .init(kid: $0.kid, algorithm: $0.algorithm) }),
            revision: revision)
    }
}
