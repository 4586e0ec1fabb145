import Foundation
import HTTPTypes
import Hummingbird
import Identity
import NIOCore
import OpenID
import Tenancy

/// The OpenID provider's back channel (SPEC §14): the token endpoint (authorization code with
/// PKCE, client_secret_basic and client_secret_post) and userinfo. Answers follow RFC 6749 §5
/// (`{"error", "error_description"}`, never cached), not the API's problem documents.
struct ProviderRoutes {
    let openID: OpenIDService
    let auth: AuthService
    let tokens: TokenService
    let tenancy: TenancyService
    let issuer: String

    struct TokenResponse: Encodable {
        let accessToken: String
        let tokenType = "Bearer"
        let expiresIn: Int
        let idToken: String
        let scope: String
    }

    @Sendable func token(_ request: Request, context: AppRequestContext) async throws -> Response {
        do {
            let form = try await Self.form(request)
            let (clientID, secret) = try Self.clientCredentials(request, form)
            let client = try await openID.authenticate(clientID: clientID, secret: secret)
            guard form["grant_type"] == "authorization_code" else {
                throw TokenError("unsupported_grant_type", "only grant_type=authorization_code is supported")
            }
            let (grant, codeHash) = try await openID.redeem(
                code: form["code"] ?? "", client: client, redirectURI: form["redirect_uri"], verifier: form["code_verifier"]
            ) { user, session in
                // A code used twice: end what its first use opened.
                if let session { _ = try? await auth.revokeSession(userID: user, sessionID: session) }
            }
            let scope = grant.scopes.joined(separator: " ")
            let pair = try await auth.openSession(
                userID: grant.userID, client: ClientInfo(userAgent: "OpenID client: \(client.name)", ip: context.clientIP),
                clientID: client.id.lowercasedString, scope: scope)
            try await openID.store.recordIssuedSession(codeHash: codeHash, sessionID: pair.sessionID)
            let claims = IDTokenClaims(
                issuer: issuer, user: pair.user, clientID: client.id.lowercasedString, scopes: grant.scopes, nonce: grant.nonce,
                authTime: grant.authTime, issuedAt: Date(), lifetime: TimeInterval(pair.accessExpiresIn),
                orgs: grant.scopes.contains("orgs") ? try await orgs(of: pair.user.id) : nil)
            let idToken = try await tokens.sign(claims, typ: "JWT")
            return try Self.json(TokenResponse(accessToken: pair.accessToken, expiresIn: pair.accessExpiresIn, idToken: idToken, scope: scope))
        } catch let error as TokenError {
            return try Self.tokenError(error)
        }
    }

    /// The back channel's body: a form (RFC 6749 §4.1.3), else `invalid_request`.
    static func form(_ request: Request) async throws -> FormPost {
        do { return try await FormPost.read(request) } catch { throw TokenError("invalid_request", "send the request as application/x-www-form-urlencoded") }
    }

    /// `client_secret_basic` (the Authorization header) or `client_secret_post` (the form), not both.
    static func clientCredentials(_ request: Request, _ form: FormPost) throws -> (String?, String?) {
        guard let header = request.headers[.authorization] else { return (form["client_id"], form["client_secret"]) }
        guard form["client_secret"] == nil else { throw TokenError("invalid_request", "use one client authentication method") }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic", let data = Data(base64Encoded: String(parts[1])),
              let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else {
            throw TokenError("invalid_client", "client authentication failed")
        }
        func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
        let id = decode(text[..<colon]), secret = decode(text[text.index(after: colon)...])
        if let formID = form["client_id"], formID != id { throw TokenError("invalid_request", "client_id does not match the client authentication") }
        return (id, secret)
    }

    /// The `orgs` claim: the person's orgs with their role in each (first 100).
    func orgs(of userID: UUID) async throws -> [IDTokenClaims.OrgClaim] {
        let (views, _) = try await tenancy.listOrgs(actor: .user(userID, isRoot: false), everyOrg: false, nameContains: nil, limit: 100, offset: 0)
        return views.map { IDTokenClaims.OrgClaim(id: $0.org.id.lowercasedString, name: $0.org.name, role: $0.role?.rawValue ?? "") }
    }

    // MARK: Revocation (RFC 7009) and introspection (RFC 7662)

    /// The client authenticated by either method, as the token endpoint does.
    func client(_ request: Request, _ form: FormPost) async throws -> OAuthClient {
        let (clientID, secret) = try Self.clientCredentials(request, form)
        return try await openID.authenticate(clientID: clientID, secret: secret)
    }

    /// Ends the session behind an access token the client was issued. Answers 200 whatever the
    /// token was (RFC 7009 §2.2): a client learns nothing about tokens that are not its own.
    @Sendable func revoke(_ request: Request, context: AppRequestContext) async throws -> Response {
        do {
            let form = try await Self.form(request)
            let client = try await client(request, form)
            guard let token = form["token"], !token.isEmpty else { throw TokenError("invalid_request", "token is missing") }
            if token.utf8.count <= 8192, let verified = try? await auth.authenticate(accessToken: token), verified.clientID == client.id.lowercasedString {
                _ = try? await auth.revokeSession(userID: verified.userID, sessionID: verified.sessionID)
            }
            var response = Response(status: .ok)
            response.headers[.cacheControl] = "no-store"
            return response
        } catch let error as TokenError {
            return try Self.tokenError(error)
        }
    }

    struct Introspection: Encodable {
        let active: Bool
        let sub: String?
        let clientId: String?
        let scope: String?
        let exp: Int?
        let iss: String?
        let tokenType: String?
    }

    /// For resource servers (registered as confidential clients): whether an access token is
    /// live now (signature, expiry and its session), and whose. Anything else is `active: false`.
    @Sendable func introspect(_ request: Request, context: AppRequestContext) async throws -> Response {
        do {
            let form = try await Self.form(request)
            let client = try await client(request, form)
            guard client.kind == .confidential else { throw TokenError("invalid_client", "only a confidential client may introspect") }
            guard let token = form["token"], !token.isEmpty else { throw TokenError("invalid_request", "token is missing") }
            guard token.utf8.count <= 8192, let verified = try? await auth.authenticate(accessToken: token, readThrough: true) else {
                return try Self.json(Introspection(active: false, sub: nil, clientId: nil, scope: nil, exp: nil, iss: nil, tokenType: nil))
            }
            return try Self.json(Introspection(
                active: true, sub: verified.userID.lowercasedString, clientId: verified.clientID, scope: verified.scope,
                exp: Int(verified.expiresAt.timeIntervalSince1970), iss: issuer, tokenType: "Bearer"))
        } catch let error as TokenError {
            return try Self.tokenError(error)
        }
    }

    static func tokenError(_ error: TokenError) throws -> Response {
        var response = try json(["error": error.code, "error_description": error.description], status: error.status == 401 ? .unauthorized : .badRequest)
        if error.status == 401 { response.headers[.wwwAuthenticate] = "Basic realm=\"portcullis\"" }
        return response
    }

    // MARK: userinfo

    struct UserInfo: Encodable {
        let sub: String
        let name: String?
        let email: String?
        let emailVerified: Bool?
        let orgs: [IDTokenClaims.OrgClaim]?
    }

    /// GET or POST, with the access token as a bearer token (or, by POST, in the form).
    @Sendable func userinfo(_ request: Request, context: AppRequestContext) async throws -> Response {
        var token: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { token = String(parts[1]) }
        } else if request.method == .post, (request.headers[.contentType] ?? "").lowercased().hasPrefix("application/x-www-form-urlencoded") {
            token = try await FormPost.read(request)["access_token"]
        }
        guard let token, token.utf8.count <= 8192, let verified = try? await auth.authenticate(accessToken: token),
              let user = try await auth.user(id: verified.userID) else {
            return Self.bearerError("invalid_token", "the access token is missing, invalid or expired", status: .unauthorized)
        }
        let scopes = (verified.scope ?? "").split(separator: " ").map(String.init)
        guard scopes.contains("openid") else { return Self.bearerError("insufficient_scope", "the token was not issued for openid", status: .forbidden) }
        return try Self.json(UserInfo(
            sub: user.id.lowercasedString, name: scopes.contains("profile") ? user.name : nil,
            email: scopes.contains("email") ? user.email : nil, emailVerified: scopes.contains("email") ? user.emailVerified : nil,
            orgs: scopes.contains("orgs") ? try await orgs(of: user.id) : nil))
    }

    static func bearerError(_ code: String, _ description: String, status: HTTPResponse.Status) -> Response {
        var response = Response(status: status)
        response.headers[.wwwAuthenticate] = "Bearer error=\"\(code)\", error_description=\"\(description)\""
        response.headers[.cacheControl] = "no-store"
        return response
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        var response = try JSONBody.response(value, status: status)
        response.headers[.cacheControl] = "no-store"
        response.headers[HTTPField.Name("Pragma")!] = "no-cache"
        return response
    }
}
