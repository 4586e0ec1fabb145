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
    let issuer: String

    struct TokenResponse: Encodable {
        let accessToken: String
        let tokenType = "Bearer"
        let expiresIn: Int
        let idToken: String?
        let refreshToken: String?
        let scope: String?
    }

    /// The token endpoint: `authorization_code` (with PKCE), `refresh_token` (rotated; a spent
    /// one presented again ends its session) and `client_credentials` (a confidential client
    /// acting as its service account).
    @Sendable func token(_ request: Request, context: AppRequestContext) async throws -> Response {
        do {
            let form = try await Self.form(request)
            let (clientID, secret) = try Self.clientCredentials(request, form)
            let client = try await openID.authenticate(clientID: clientID, secret: secret)
            switch form["grant_type"] {
            case "authorization_code": return try await redeemCode(form, client, context)
            case "refresh_token": return try await refresh(form, client)
            case "client_credentials": return try await clientCredentials(client)
            case nil: throw TokenError("invalid_request", "grant_type is missing")
            default: throw TokenError("unsupported_grant_type", "the grant types are authorization_code, refresh_token and client_credentials")
            }
        } catch let error as TokenError {
            return try Self.tokenError(error)
        }
    }

    func redeemCode(_ form: FormPost, _ client: OAuthClient, _ context: AppRequestContext) async throws -> Response {
        let (grant, codeHash) = try await openID.redeem(
            code: form["code"] ?? "", client: client, redirectURI: form["redirect_uri"], verifier: form["code_verifier"]
        ) { user, session in
            // A code used twice: end what its first use opened.
            if let session { _ = try? await auth.revokeSession(userID: user, sessionID: session) }
        }
        let scope = grant.scopes.joined(separator: " ")
        let pair = try await auth.openSession(
            userID: grant.userID, client: ClientInfo(userAgent: "OpenID client: \(client.name)", ip: context.clientIP),
            for: client.sessionTerms, scope: scope)
        try await openID.store.recordIssuedSession(codeHash: codeHash, sessionID: pair.sessionID)
        return try await tokens(pair, client, nonce: grant.nonce, authTime: grant.authTime, loginOrg: grant.orgID)
    }

    func refresh(_ form: FormPost, _ client: OAuthClient) async throws -> Response {
        guard let token = form["refresh_token"], !token.isEmpty else { throw TokenError("invalid_request", "refresh_token is missing") }
        let invalid = TokenError("invalid_grant", "the refresh token is not valid, has expired, or was used before (its session has ended)")
        // RFC 6749 §6: a narrower scope may be asked for, never a wider one; checked before the
        // token is spent. The session keeps what it was granted.
        var narrowed: String?
        if let asked = form["scope"] {
            guard let granted = try await auth.grantedScope(refreshToken: token, for: client.sessionTerms) else { throw invalid }
            narrowed = try OpenIDService.narrowedScope(asked: asked, granted: granted)
        }
        let pair: TokenPair
        do {
            pair = try await auth.refresh(token, for: client.sessionTerms, narrowed: narrowed)
        } catch is IdentityError {
            throw invalid
        }
        let grant = try await openID.store.sessionGrant(sessionID: pair.sessionID)
        guard try await openID.loginStands(userID: pair.user.id, grant) else {
            _ = try? await auth.revokeSession(userID: pair.user.id, sessionID: pair.sessionID)
            throw TokenError("invalid_grant", "the person is no longer a member of the organization this login was for")
        }
        return try await tokens(pair, client, nonce: nil, authTime: grant?.authTime ?? Date(), loginOrg: grant?.orgID)
    }

    /// The answer to a person's login or refresh: an ID token from the client's claims, and a
    /// refresh token only when `offline_access` was granted.
    func tokens(_ pair: TokenPair, _ client: OAuthClient, nonce: String?, authTime: Date, loginOrg: UUID?) async throws -> Response {
        let scopes = (pair.scope ?? "").split(separator: " ").map(String.init)
        let claims = try await openID.claims(user: pair.user, scopes: scopes, loginOrg: loginOrg, client: client)
        let idToken = try await tokens.sign(
            claims.idToken(issuer: issuer, clientID: client.id.lowercasedString, nonce: nonce, authTime: authTime, issuedAt: Date(),
                           lifetime: TimeInterval(pair.accessExpiresIn)),
            typ: "JWT", algorithm: client.idTokenAlgorithm)
        return try Self.json(TokenResponse(
            accessToken: pair.accessToken, expiresIn: pair.accessExpiresIn, idToken: idToken,
            refreshToken: scopes.contains("offline_access") ? pair.refreshToken : nil, scope: pair.scope))
    }

    func clientCredentials(_ client: OAuthClient) async throws -> Response {
        let (account, org) = try openID.serviceAccount(of: client)
        let access = try await tokens.issueServiceAccount(
            accountID: account, orgID: org, clientID: client.id.lowercasedString, secretGeneration: client.secretGeneration,
            lifetime: client.sessionTerms.accessLifetime)
        return try Self.json(TokenResponse(accessToken: access.token, expiresIn: access.expiresIn, idToken: nil, refreshToken: nil, scope: nil))
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

    // MARK: Revocation (RFC 7009) and introspection (RFC 7662)

    /// The client authenticated by either method, as the token endpoint does.
    func client(_ request: Request, _ form: FormPost) async throws -> OAuthClient {
        let (clientID, secret) = try Self.clientCredentials(request, form)
        return try await openID.authenticate(clientID: clientID, secret: secret)
    }

    /// Ends the session behind an access or refresh token the client was issued. Answers 200 whatever the
    /// token was (RFC 7009 §2.2): a client learns nothing about tokens that are not its own.
    @Sendable func revoke(_ request: Request, context: AppRequestContext) async throws -> Response {
        do {
            let form = try await Self.form(request)
            let client = try await client(request, form)
            guard let token = form["token"], !token.isEmpty else { throw TokenError("invalid_request", "token is missing") }
            // An access token or a refresh token (whatever token_type_hint says, both are tried):
            // either ends the session, so the other stops too.
            if token.utf8.count <= 8192, let verified = try? await auth.authenticate(accessToken: token), verified.clientID == client.id.lowercasedString {
                _ = try? await auth.revokeSession(userID: verified.userID, sessionID: verified.sessionID)
            } else {
                _ = try await auth.revokeRefreshToken(token, clientID: client.id.lowercasedString)
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
            let inactive = Introspection(active: false, sub: nil, clientId: nil, scope: nil, exp: nil, iss: nil, tokenType: nil)
            guard token.utf8.count <= 8192, let verified = try? await auth.authenticateBearer(token, readThrough: true) else { return try Self.json(inactive) }
            switch verified {
            case .session(let session):
                return try Self.json(Introspection(
                    active: true, sub: session.userID.lowercasedString, clientId: session.clientID, scope: session.scope,
                    exp: Int(session.expiresAt.timeIntervalSince1970), iss: issuer, tokenType: "Bearer"))
            case .serviceAccount(let account):
                guard try await openID.isLive(account) else { return try Self.json(inactive) }
                return try Self.json(Introspection(
                    active: true, sub: account.accountID.lowercasedString, clientId: account.clientID, scope: nil,
                    exp: Int(account.expiresAt.timeIntervalSince1970), iss: issuer, tokenType: "Bearer"))
            }
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
        guard scopes.contains("openid"), let grant = try await openID.store.sessionGrant(sessionID: verified.sessionID),
              let (client, _) = try await openID.clients.store.client(id: grant.clientID) else {
            return Self.bearerError("insufficient_scope", "the token was not issued for openid", status: .forbidden)
        }
        guard try await openID.loginStands(userID: user.id, grant) else {
            return Self.bearerError("invalid_token", "the person is no longer a member of the organization this login was for", status: .unauthorized)
        }
        return try Self.json(try await openID.claims(user: user, scopes: scopes, loginOrg: grant.orgID, client: client).userinfo)
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
