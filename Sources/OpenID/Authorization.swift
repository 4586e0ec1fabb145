import Authority
import Crypto
import Foundation
import Identity

/// An authorization request (the query of `/oauth/authorize`), checked: OpenID Connect Core
/// §3.1.2 with RFC 6749 §4.1 and PKCE (RFC 7636), `response_type=code` only (SPEC §14).
public struct AuthorizationRequest: Sendable, Equatable {
    public var client: OAuthClient
    public var redirectURI: String
    public var scopes: [String]
    public var state: String?
    public var nonce: String?
    public var codeChallenge: String?
    public var prompt: Set<String>
    public var maxAge: Int?
    public var loginHint: String?
    /// `organization=<org_id>`: the login is for this org only (refused unless a member).
    public var organization: UUID?

    public var scope: String { scopes.joined(separator: " ") }
}

/// Why an authorization request was refused.
public enum AuthorizationError: Error, Sendable, Equatable {
    /// The client or its redirect URI cannot be trusted: said on a page, never redirected to.
    case untrusted(String)
    /// Told to the client at its (known-good) redirect URI (RFC 6749 §4.1.2.1).
    case redirect(error: String, description: String, redirectURI: String, state: String?)
}

extension AuthorizationRequest {
    /// Checks `query` (first value of each name) against the registered client.
    public static func check(_ query: [String: String], client find: (UUID) async throws -> OAuthClient?) async throws -> AuthorizationRequest {
        guard let text = query["client_id"], let id = UUIDText.parse(text), let client = try await find(id) else {
            throw AuthorizationError.untrusted("The application that sent you here is not registered with this server.")
        }
        guard let redirectURI = query["redirect_uri"], client.redirectURIs.contains(redirectURI) else {
            throw AuthorizationError.untrusted("The application asked to send you back to an address it has not registered.")
        }
        let state = query["state"]
        func refuse(_ error: String, _ description: String) -> AuthorizationError {
            .redirect(error: error, description: description, redirectURI: redirectURI, state: state)
        }
        if query["request"] != nil { throw refuse("request_not_supported", "request objects are not supported") }
        if query["request_uri"] != nil { throw refuse("request_uri_not_supported", "request_uri is not supported") }
        guard let responseType = query["response_type"] else { throw refuse("invalid_request", "response_type is missing") }
        guard responseType == "code" else { throw refuse("unsupported_response_type", "only response_type=code is supported") }
        guard let scopeText = query["scope"], scopeText.utf8.count <= 1000 else { throw refuse("invalid_request", "scope is missing") }
        var scopes: [String] = []
        for scope in scopeText.split(separator: " ").map(String.init) where !scopes.contains(scope) { scopes.append(scope) }
        guard scopes.contains("openid") else { throw refuse("invalid_scope", "scope must include openid") }
        if let other = scopes.first(where: { !client.scopes.contains($0) }) {
            throw refuse("invalid_scope", "this client may not ask for \(other.prefix(50))")
        }
        if let method = query["code_challenge_method"], method != "S256" {
            throw refuse("invalid_request", "code_challenge_method must be S256")
        }
        let challenge = query["code_challenge"]
        if let challenge, !PKCE.isWellFormed(challenge) { throw refuse("invalid_request", "code_challenge is not a S256 challenge") }
        if challenge != nil, query["code_challenge_method"] == nil {
            throw refuse("invalid_request", "code_challenge_method must be S256")
        }
        if client.kind == .public, challenge == nil { throw refuse("invalid_request", "a public client must use PKCE (code_challenge)") }
        let prompt = Set((query["prompt"] ?? "").split(separator: " ").map(String.init))
        guard prompt.isSubset(of: ["none", "login", "consent"]) else { throw refuse("invalid_request", "prompt has an unknown value") }
        if prompt.contains("none"), prompt.count > 1 { throw refuse("invalid_request", "prompt=none cannot be combined") }
        var maxAge: Int?
        if let text = query["max_age"] {
            guard let n = Int(text), n >= 0 else { throw refuse("invalid_request", "max_age must be a number of seconds") }
            maxAge = n
        }
        if let nonce = query["nonce"], nonce.utf8.count > 512 { throw refuse("invalid_request", "nonce is too long") }
        if let state, state.utf8.count > 2000 { throw refuse("invalid_request", "state is too long") }
        var organization: UUID?
        if let text = query["organization"] {
            guard let id = UUIDText.parse(text) else { throw refuse("invalid_request", "organization must be an org id") }
            organization = id
        }
        return AuthorizationRequest(
            client: client, redirectURI: redirectURI, scopes: scopes, state: state, nonce: query["nonce"], codeChallenge: challenge,
            prompt: prompt, maxAge: maxAge, loginHint: query["login_hint"].map { String($0.prefix(254)) }, organization: organization)
    }
}

/// Proof Key for Code Exchange, S256 only (RFC 7636).
public enum PKCE {
    static let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)

    public static func isWellFormed(_ text: String) -> Bool {
        (43...128).contains(text.utf8.count) && text.utf8.allSatisfy(alphabet.contains)
    }

    /// Whether `verifier` hashes to `challenge`.
    public static func matches(verifier: String, challenge: String) -> Bool {
        guard isWellFormed(verifier) else { return false }
        let digest = Secrets.base64url(Array(SHA256.hash(data: Data(verifier.utf8))))
        return Secrets.constantTimeEquals(digest, challenge)
    }
}
