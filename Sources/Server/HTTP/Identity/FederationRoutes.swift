import Authority
import Federation
import Foundation
import HTTPTypes
import Hummingbird
import Identity

struct ProviderBody: Decodable, Sendable {
    var id: String?
    var kind: String?
    var displayName: String?
    var clientId: String?
    var clientSecret: String?
    var scopes: [String]?
    var issuer: String?
    var webBaseUrl: String?
    var apiBaseUrl: String?
    var enabled: Bool?

    var input: ProviderInput {
        ProviderInput(
            id: id, kind: kind, displayName: displayName, clientID: clientId, clientSecret: clientSecret, scopes: scopes, issuer: issuer,
            webBaseURL: webBaseUrl, apiBaseURL: apiBaseUrl, enabled: enabled)
    }
}

struct ProviderResponse: Encodable, Sendable {
    let id: String
    let kind: String
    let displayName: String
    let clientId: String
    let scopes: [String]
    let issuer: OrNull<String>
    let webBaseUrl: OrNull<String>
    let apiBaseUrl: OrNull<String>
    let enabled: Bool
    /// What to register at the upstream as the redirect (callback) URL.
    let redirectUri: String
    let createdAt: Date
    let updatedAt: Date

    init(_ p: UpstreamProvider, redirectURI: String) {
        id = p.id
        kind = p.kind.rawValue
        displayName = p.displayName
        clientId = p.clientID
        scopes = p.scopes
        issuer = OrNull(p.issuer)
        webBaseUrl = OrNull(p.webBaseURL)
        apiBaseUrl = OrNull(p.apiBaseURL)
        enabled = p.enabled
        redirectUri = redirectURI
        createdAt = p.createdAt
        updatedAt = p.updatedAt
    }
}

struct LoginProviderResponse: Encodable, Sendable {
    let id: String
    let displayName: String
    let kind: String
    let loginUrl: String
}

struct IdentityResponse: Encodable, Sendable {
    let id: String
    let providerId: String
    let providerName: String
    let subject: String
    let email: String
    let createdAt: Date
    let lastUsedAt: OrNull<Date>
}

struct IdentitiesResponse: Encodable, Sendable {
    let items: [IdentityResponse]
    let total: Int
    /// Whether the account also signs in with a password (the last way to sign in stays).
    let hasPassword: Bool
}

struct EmailCodeBody: Decodable, Sendable {
    let email: String
}

struct EmailCodeVerifyBody: Decodable, Sendable {
    let email: String
    let code: String
    let flowId: String?
}

struct EmailCodeResponse: Encodable, Sendable {
    let flowId: String
    let expiresIn: Int
}

/// `/v1/identity-providers` (the root's upstream providers), `/v1/auth/providers` (what the login
/// page offers), `/v1/me/identities` (a person's linked sign-ins) and the e-mail code sign-in.
/// Every rule is `FederationService`'s or `AuthService`'s.
struct FederationRoutes {
    let federation: FederationService
    let auth: AuthService
    let limits: AbuseLimits
    let secureCookies: Bool
    static let codeCookie = "portcullis_code_flow"

    func response(_ provider: UpstreamProvider) -> ProviderResponse {
        ProviderResponse(provider, redirectURI: federation.redirectURI(provider.id))
    }

    static func providerID(_ context: AppRequestContext) throws -> String {
        guard let id = context.parameters.get("provider_id"), id.utf8.count <= 64 else { throw Problem.notFound("no such identity provider") }
        return id
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        return try await ListResponse.page(request, response) { page in
            let all = try await federation.providers(actor: actor)
            return (Array(all.dropFirst(page.offset).prefix(page.limit)), all.count)
        }
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(ProviderBody.self, from: request)
        let actor = try await context.actor()
        let (provider, revision) = try await federation.createProvider(actor: actor, try unchecked.fields().input)
        return try JSONBody.response(response(provider), status: .created, revision: revision)
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        return try JSONBody.response(response(try await federation.provider(actor: actor, id: try Self.providerID(context))))
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(ProviderBody.self, from: request)
        let actor = try await context.actor()
        let (provider, revision) = try await federation.updateProvider(actor: actor, id: try Self.providerID(context), try unchecked.fields().input)
        return try JSONBody.response(response(provider), revision: revision)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        return JSONBody.noContent(revision: try await federation.deleteProvider(actor: actor, id: try Self.providerID(context)))
    }

    /// Public: the enabled providers, for a login page of one's own.
    @Sendable func loginProviders(_ request: Request, context: AppRequestContext) async throws -> Response {
        let items = try await federation.enabledProviders().map {
            LoginProviderResponse(id: $0.id, displayName: $0.displayName, kind: $0.kind.rawValue, loginUrl: FederationService.startPath($0.id))
        }
        return try JSONBody.response(["items": items])
    }

    // MARK: A person's linked sign-ins

    @Sendable func identities(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try await context.caller().requireUser()
        let methods = try await federation.methods(userID: user.id)
        let items = methods.identities.map {
            IdentityResponse(
                id: $0.id.lowercasedString, providerId: $0.providerID, providerName: methods.providerName($0), subject: $0.subject,
                email: $0.email, createdAt: $0.createdAt, lastUsedAt: OrNull($0.lastUsedAt))
        }
        return try JSONBody.response(IdentitiesResponse(items: items, total: items.count, hasPassword: methods.hasPassword))
    }

    /// A way into the account goes only by a session's hand, like a password change (an API key cannot).
    @Sendable func unlink(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (user, _) = try await context.caller().requireSession()
        guard let id = context.parameters.get("identity_id").flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such linked sign-in") }
        return JSONBody.noContent(revision: try await federation.unlink(userID: user.id, identityID: id))
    }

    // MARK: E-mail codes

    @Sendable func requestCode(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(EmailCodeBody.self, from: request)
        let flow = try await requestCode(email: body.email, ip: context.clientIP)
        var response = try JSONBody.response(EmailCodeResponse(flowId: flow.flow, expiresIn: flow.expiresIn), status: .accepted)
        setCodeCookie(flow, on: &response)
        return response
    }

    /// Asking for a code as the API and the page both do: the client's and the address's
    /// budgets (counted whether or not the address has an account), then the flow.
    func requestCode(email: String, ip: String) async throws -> SignInCodeFlow {
        try limits.spend(ip: ip, now: auth.now())
        guard Email.canonical(email) != nil else { throw IdentityError.invalidEmail }
        try limits.spendCodeMail(account: Email.folded(email), now: auth.now())
        return try await auth.requestSignInCode(email: email)
    }

    func setCodeCookie(_ flow: SignInCodeFlow, on response: inout Response) {
        response.setCookie(Cookie(
            name: Self.codeCookie, value: flow.flow, maxAge: flow.expiresIn, path: "/", secure: secureCookies, httpOnly: true, sameSite: .strict))
    }

    @Sendable func verifyCode(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(EmailCodeVerifyBody.self, from: request)
        guard let flow = body.flowId ?? request.cookies[Self.codeCookie]?.value else {
            throw Problem.badRequest("flow_id is required: the flow_id the code request answered (or its cookie)")
        }
        let pair = try await verifyCode(email: body.email, code: body.code, flow: flow, userAgent: request.headers[.userAgent] ?? "", ip: context.clientIP)
        var response = try JSONBody.response(TokensResponse(pair), revision: pair.revision)
        response.setCookie(Cookie(name: Self.codeCookie, value: "", maxAge: 0, path: "/", secure: secureCookies, httpOnly: true, sameSite: .strict))
        return response
    }

    /// Spending a code as the API and the page both do: the client's budget first.
    func verifyCode(email: String, code: String, flow: String, userAgent: String, ip: String) async throws -> TokenPair {
        try limits.spend(ip: ip, now: auth.now())
        return try await auth.signIn(email: email, code: code, flow: flow, client: ClientInfo(userAgent: userAgent, ip: ip))
    }
}
