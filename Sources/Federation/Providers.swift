import Foundation
import Identity
import Memberwise

/// What kind of upstream a provider is: it decides how a sign-in is completed.
public enum ProviderKind: String, Sendable, CaseIterable {
    /// GitHub's OAuth 2 web flow; the address is the verified primary one of `/user/emails`.
    case github
    /// Google: an OpenID provider whose issuer defaults to Google's.
    case google
    /// Any OpenID provider, found by its issuer's discovery document.
    case oidc

    public var speaksOpenID: Bool { self != .github }

    var defaultScopes: [String] {
        self == .github ? ["read:user", "user:email"] : ["openid", "email", "profile"]
    }
}

/// An upstream identity provider the root configured (SPEC §15). The client secret is kept
/// sealed with the master key and never leaves the server.
public struct UpstreamProvider: Sendable, Equatable {
    public var id: String
    public var kind: ProviderKind
    public var displayName: String
    public var clientID: String
    public var sealedSecret: String
    public var scopes: [String]
    /// OpenID kinds: the issuer whose discovery document and keys are used.
    public var issuer: String?
    /// GitHub: where people authorise (`/login/oauth/...`) and where the API answers (GitHub
    /// Enterprise, or a local stand-in in tests).
    public var webBaseURL: String?
    public var apiBaseURL: String?
    public var enabled: Bool
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, kind: ProviderKind, displayName: String, clientID: String, sealedSecret: String, scopes: [String],
        issuer: String?, webBaseURL: String?, apiBaseURL: String?, enabled: Bool, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.kind = kind
        self.displayName = displayName
        self.clientID = clientID
        self.sealedSecret = sealedSecret
        self.scopes = scopes
        self.issuer = issuer
        self.webBaseURL = webBaseURL
        self.apiBaseURL = apiBaseURL
        self.enabled = enabled
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A person's account at an upstream, linked to a Portcullis account: (provider, subject) is
/// the identity, never the e-mail.
@PublicInit
public struct LinkedIdentity: Sendable, Equatable {
    public var id: UUID
    public var userID: UUID
    public var providerID: String
    public var subject: String
    /// The address the upstream gave at the last sign-in (shown to the person; never matched on).
    public var email: String
    public var createdAt: Date
    public var lastUsedAt: Date?
}

/// The fields of a provider as the root sends them; nil leaves a field as it is (PATCH) or takes
/// its default (create).
public struct ProviderInput: Sendable {
    public var id: String?
    public var kind: String?
    public var displayName: String?
    public var clientID: String?
    public var clientSecret: String?
    public var scopes: [String]?
    public var issuer: String?
    public var webBaseURL: String?
    public var apiBaseURL: String?
    public var enabled: Bool?

    public init(
        id: String? = nil, kind: String? = nil, displayName: String? = nil, clientID: String? = nil, clientSecret: String? = nil,
        scopes: [String]? = nil, issuer: String? = nil, webBaseURL: String? = nil, apiBaseURL: String? = nil, enabled: Bool? = nil
    ) {
        self.id = id
        self.kind = kind
        self.displayName = displayName
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scopes = scopes
        self.issuer = issuer
        self.webBaseURL = webBaseURL
        self.apiBaseURL = apiBaseURL
        self.enabled = enabled
    }
}

public enum FederationError: Error, Sendable, Equatable {
    case invalid(String)
    case forbidden(String)
    case notFound(String)
    case conflict(code: String, String)
    /// The upstream's answer could not be trusted or used: the sign-in ends, nothing is changed.
    case upstream(String)
    /// The upstream did not answer (down, or unreachable from here): the sign-in ends, nothing is changed.
    case unreachable(String)
    /// The action needs a fresh sign-in first.
    case reauthenticate(String)
    /// An account already uses the upstream's address: sign in to it, then link.
    case linkRequired(email: String, provider: String)
}

/// The rules for a provider's fields, in one place for the API and the console.
enum ProviderRules {
    static let maxScopes = 20

    static func validID(_ id: String) throws(FederationError) -> String {
        let allowed = id.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
        guard allowed, (1...32).contains(id.utf8.count), id.utf8.first != 0x2d else {
            throw .invalid("id must be 1 to 32 lowercase letters, digits or dashes, starting with a letter or digit")
        }
        return id
    }

    static func text(_ value: String, _ field: String, max: Int) throws(FederationError) -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalid("\(field) must not be empty") }
        guard trimmed.count <= max, !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalid("\(field) must be at most \(max) characters, without control characters")
        }
        return trimmed
    }

    static func scopes(_ scopes: [String], kind: ProviderKind) throws(FederationError) -> [String] {
        guard scopes.count <= maxScopes else { throw .invalid("scopes: at most \(maxScopes)") }
        for scope in scopes where scope.isEmpty || scope.count > 100 || scope.contains(where: { $0 == " " || $0.asciiValue == nil || $0.asciiValue! < 0x21 || $0 == "\"" || $0 == "\\" }) {
            throw .invalid("scopes: \"\(scope.prefix(40))\" is not a scope token")
        }
        if kind.speaksOpenID, !scopes.contains("openid") { throw .invalid("scopes must include openid for an OpenID provider") }
        // The address comes from /user/emails, which needs one of these.
        if kind == .github, !scopes.contains("user:email"), !scopes.contains("user") { throw .invalid("scopes must include user:email for GitHub") }
        return scopes
    }

    /// An absolute http(s) URL without query or fragment. Plain http is allowed (a provider on the
    /// same host, tests); the root chooses. A base URL loses its trailing slash; an issuer keeps
    /// it, since ID tokens and discovery name it exactly as the provider spells it.
    static func baseURL(_ raw: String, _ field: String, exact: Bool = false) throws(FederationError) -> String {
        var text = raw.trimmingCharacters(in: .whitespaces)
        while !exact, text.hasSuffix("/") { text.removeLast() }
        guard text.count <= 500, let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil, url.user == nil else {
            throw .invalid("\(field) must be an absolute http or https URL without query, fragment or credentials")
        }
        return text
    }
}
