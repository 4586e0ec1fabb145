import Foundation
import Identity
import Synchronization

/// What an upstream said about the person at the end of a flow.
public struct UpstreamPerson: Sendable, Equatable {
    public var subject: String
    /// Canonical, and only when the upstream says it is verified (nil otherwise).
    public var verifiedEmail: String?
    /// What the upstream gave, verified or not (shown on the account page).
    public var email: String
    public var name: String
}

/// Talks to one kind of upstream: where to send the browser, and how to turn the code it comes
/// back with into a person.
struct UpstreamDialect: Sendable {
    let http: any UpstreamHTTP
    let metadata: UpstreamMetadata

    func authorizeURL(_ provider: UpstreamProvider, redirectURI: String, state: String, nonce: String, challenge: String) async throws -> String {
        var query: [(String, String)] = [
            ("response_type", "code"), ("client_id", provider.clientID), ("redirect_uri", redirectURI),
            ("scope", provider.scopes.joined(separator: " ")), ("state", state),
            ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ]
        let endpoint: String
        switch provider.kind {
        case .github:
            endpoint = (provider.webBaseURL ?? GitHub.web) + "/login/oauth/authorize"
        case .google, .oidc:
            endpoint = try await metadata.discovery(issuer: provider.resolvedIssuer, http: http).authorizationEndpoint
            query.append(("nonce", nonce))
        }
        return endpoint + (endpoint.contains("?") ? "&" : "?") + FormEncoding.encode(query)
    }

    func person(_ provider: UpstreamProvider, clientSecret: String, code: String, redirectURI: String, verifier: String, nonce: String, now: Date) async throws -> UpstreamPerson {
        switch provider.kind {
        case .github: return try await github(provider, clientSecret: clientSecret, code: code, redirectURI: redirectURI, verifier: verifier)
        case .google, .oidc: return try await openID(provider, clientSecret: clientSecret, code: code, redirectURI: redirectURI, verifier: verifier, nonce: nonce, now: now)
        }
    }

    // MARK: OpenID Connect

    func openID(_ provider: UpstreamProvider, clientSecret: String, code: String, redirectURI: String, verifier: String, nonce: String, now: Date) async throws -> UpstreamPerson {
        let issuer = provider.resolvedIssuer
        let discovery = try await metadata.discovery(issuer: issuer, http: http)
        var fields = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("code_verifier", verifier)]
        var headers = [("Accept", "application/json")]
        // client_secret_basic is the default (OpenID Connect Core §9); post only when that is all it takes.
        if discovery.authMethods.contains("client_secret_basic") || discovery.authMethods.isEmpty {
            let pair = FormEncoding.component(provider.clientID) + ":" + FormEncoding.component(clientSecret)
            headers.append(("Authorization", "Basic " + Data(pair.utf8).base64EncodedString()))
        } else {
            fields += [("client_id", provider.clientID), ("client_secret", clientSecret)]
        }
        let answer = try await http.postForm(discovery.tokenEndpoint, fields: fields, headers: headers)
        guard answer.status == 200, let token = try? JSONDecoder().decode(TokenAnswer.self, from: answer.body), let idToken = token.idToken else {
            throw FederationError.upstream("\(provider.displayName) did not exchange the code for an ID token (HTTP \(answer.status))")
        }
        var claims: UpstreamClaims
        do {
            claims = try await IDTokenCheck.validate(idToken, jwks: try await metadata.jwks(discovery, http: http), issuer: issuer, clientID: provider.clientID, nonce: nonce, now: now)
        } catch FederationError.upstream(let why) where why.contains("signature") {
            // The provider may have rotated its keys since they were fetched: once more, freshly.
            claims = try await IDTokenCheck.validate(
                idToken, jwks: try await metadata.jwks(discovery, http: http, fresh: true), issuer: issuer, clientID: provider.clientID, nonce: nonce, now: now)
        }
        let email = claims.email ?? ""
        return UpstreamPerson(
            subject: claims.subject, verifiedEmail: claims.emailVerified ? Email.canonical(email) : nil, email: String(email.prefix(254)),
            name: String((claims.name ?? "").prefix(100)))
    }

    struct TokenAnswer: Decodable {
        var accessToken: String?
        var idToken: String?
        var error: String?
        enum CodingKeys: String, CodingKey {
            case accessToken = "access_token", idToken = "id_token", error
        }
    }

    // MARK: GitHub

    enum GitHub {
        static let web = "https://github.com"
        static let api = "https://api.github.com"
    }

    struct GitHubUser: Decodable {
        var id: Int64
        var login: String
        var name: String?
    }

    struct GitHubEmail: Decodable {
        var email: String
        var primary: Bool
        var verified: Bool
    }

    /// GitHub's web flow: the profile's e-mail may be empty or unverified, so the address is
    /// the primary one of `/user/emails`, and only when GitHub says it is verified.
    func github(_ provider: UpstreamProvider, clientSecret: String, code: String, redirectURI: String, verifier: String) async throws -> UpstreamPerson {
        let answer = try await http.postForm(
            (provider.webBaseURL ?? GitHub.web) + "/login/oauth/access_token",
            fields: [("client_id", provider.clientID), ("client_secret", clientSecret), ("code", code), ("redirect_uri", redirectURI), ("code_verifier", verifier)],
            headers: [("Accept", "application/json")])
        // GitHub answers a refused code with 200 and an `error` field.
        guard answer.status == 200, let token = try? JSONDecoder().decode(TokenAnswer.self, from: answer.body), let access = token.accessToken, token.error == nil else {
            throw FederationError.upstream("\(provider.displayName) did not exchange the code for a token")
        }
        let api = provider.apiBaseURL ?? GitHub.api
        let headers = [("Authorization", "Bearer " + access), ("Accept", "application/vnd.github+json"), ("User-Agent", "Portcullis")]
        let userAnswer = try await http.get(api + "/user", headers: headers)
        guard userAnswer.status == 200, let user = try? JSONDecoder().decode(GitHubUser.self, from: userAnswer.body) else {
            throw FederationError.upstream("\(provider.displayName) did not answer /user (HTTP \(userAnswer.status))")
        }
        let emailsAnswer = try await http.get(api + "/user/emails", headers: headers)
        guard emailsAnswer.status == 200, let emails = try? JSONDecoder().decode([GitHubEmail].self, from: emailsAnswer.body) else {
            throw FederationError.upstream("\(provider.displayName) did not answer /user/emails (HTTP \(emailsAnswer.status)); the user:email scope is needed")
        }
        let primary = emails.first(where: \.primary)
        return UpstreamPerson(
            subject: String(user.id), verifiedEmail: primary.flatMap { $0.verified ? Email.canonical($0.email) : nil },
            email: String((primary?.email ?? "").prefix(254)), name: String((user.name ?? user.login).prefix(100)))
    }
}

extension UpstreamProvider {
    static let googleIssuer = "https://accounts.google.com"

    var resolvedIssuer: String { issuer ?? Self.googleIssuer }

    /// Where the person signs in at the provider: GitHub's web URL, or an OpenID issuer (whose
    /// authorization endpoint is on its own origin for every provider known here).
    public var signInBase: String { kind == .github ? webBaseURL ?? UpstreamDialect.GitHub.web : resolvedIssuer }
}

/// Discovery documents and key sets of OpenID upstreams, kept five minutes in this node's memory
/// (keys are fetched again at once when a token names one we do not have).
public final class UpstreamMetadata: Sendable {
    struct Discovery: Sendable {
        var authorizationEndpoint: String
        var tokenEndpoint: String
        var jwksURI: String
        var authMethods: [String]
    }

    private let discoveries = Mutex<[String: (Discovery, Date)]>([:])
    private let keySets = Mutex<[String: (Data, Date)]>([:])
    static let lifetime: TimeInterval = 300

    public init() {}

    struct Document: Decodable {
        var issuer: String
        var authorizationEndpoint: String
        var tokenEndpoint: String
        var jwksURI: String
        var tokenEndpointAuthMethodsSupported: [String]?
        enum CodingKeys: String, CodingKey {
            case issuer, authorizationEndpoint = "authorization_endpoint", tokenEndpoint = "token_endpoint", jwksURI = "jwks_uri"
            case tokenEndpointAuthMethodsSupported = "token_endpoint_auth_methods_supported"
        }
    }

    func discovery(issuer: String, http: any UpstreamHTTP) async throws -> Discovery {
        if let (hit, at) = discoveries.withLock({ $0[issuer] }), at.timeIntervalSinceNow > -Self.lifetime { return hit }
        // OpenID Connect Discovery §4: the issuer without a trailing slash, then the well-known path.
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        let answer = try await http.get(base + "/.well-known/openid-configuration", headers: [("Accept", "application/json")])
        if answer.status >= 500 { throw FederationError.unreachable("\(issuer) is not answering (HTTP \(answer.status)); try again later") }
        guard answer.status == 200, let document = try? JSONDecoder().decode(Document.self, from: answer.body) else {
            throw FederationError.upstream("\(issuer) has no OpenID discovery document (HTTP \(answer.status))")
        }
        // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
        guard document.issuer == issuer else { throw FederationError.upstream("\(issuer)'s discovery document names another issuer") }
        let found = Discovery(
            authorizationEndpoint: document.authorizationEndpoint, tokenEndpoint: document.tokenEndpoint, jwksURI: document.jwksURI,
            authMethods: document.tokenEndpointAuthMethodsSupported ?? [])
        discoveries.withLock { $0[issuer] = (found, Date()) }
        return found
    }

    func jwks(_ discovery: Discovery, http: any UpstreamHTTP, fresh: Bool = false) async throws -> Data {
        if !fresh, let (hit, at) = keySets.withLock({ $0[discovery.jwksURI] }), at.timeIntervalSinceNow > -Self.lifetime { return hit }
        let answer = try await http.get(discovery.jwksURI, headers: [("Accept", "application/json")])
        guard answer.status == 200 else { throw FederationError.upstream("the provider's keys could not be fetched (HTTP \(answer.status))") }
        keySets.withLock { $0[discovery.jwksURI] = (answer.body, Date()) }
        return answer.body
    }
}

/// `application/x-www-form-urlencoded`, for query strings and token requests.
public enum FormEncoding {
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    public static func component(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { component($0.0) + "=" + component($0.1) }.joined(separator: "&")
    }
}
