import Authority
import Foundation
import Identity
import Tenancy

/// An app that signs its users in through Portcullis (SPEC §14): a relying party of the OpenID
/// provider. Platform clients (no org) belong to the root; org clients to their org's admins.
public struct OAuthClient: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Keeps a secret (a server-side app): authenticates at the token endpoint.
        case confidential
        /// Cannot keep a secret (a single-page or mobile app): must use PKCE.
        case `public`
    }

    public var id: UUID
    public var orgID: UUID?
    public var name: String
    public var kind: Kind
    /// Exact matches only: a redirect URI is compared as a whole string.
    public var redirectURIs: [String]
    /// The scopes the client may ask for.
    public var scopes: [String]
    /// A first-party app skips the consent screen.
    public var firstParty: Bool
    public var createdAt: Date
    public var updatedAt: Date
    /// How its ID tokens are signed (RS256 unless it asks for ES256).
    public var idTokenAlgorithm: SigningAlgorithm = .rs256
    /// Its tokens' lifetimes in seconds; nil: the server's.
    public var accessTokenLifetime: Int?
    public var refreshTokenLifetime: Int?
    /// Extra claims in its ID tokens and userinfo.
    public var claimTemplate: ClaimTemplate?
    /// The service account of its org it acts as with `client_credentials` (confidential org
    /// clients only); nil: that grant is refused.
    public var serviceAccountID: UUID?
    /// When its secret was last replaced: client_credentials tokens from before are void.
    public var secretRotatedAt: Date?

    /// Which of its secrets is current, as client_credentials tokens carry it: exact, where a
    /// token's `iat` (whole seconds) could not tell a token from just before a rotation.
    public var secretGeneration: Int64 {
        secretRotatedAt.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } ?? 0
    }

    /// Its hold on the sessions it opens: its id and token lifetimes.
    public var sessionTerms: ClientSessionTerms {
        ClientSessionTerms(
            clientID: id.lowercasedString, accessLifetime: accessTokenLifetime.map { .seconds($0) },
            refreshLifetime: refreshTokenLifetime.map { .seconds($0) })
    }

    public init(
        id: UUID, orgID: UUID?, name: String, kind: Kind, redirectURIs: [String], scopes: [String], firstParty: Bool,
        createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.orgID = orgID
        self.name = name
        self.kind = kind
        self.redirectURIs = redirectURIs
        self.scopes = scopes
        self.firstParty = firstParty
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// What a client registration may say, checked (SPEC §14).
public enum ClientRules {
    /// The scopes this provider knows. `offline_access` brings a refresh token.
    public static let scopes = ["openid", "profile", "email", "orgs", "offline_access"]
    /// Access tokens: one minute to a day. Refresh tokens: an hour to 90 days.
    public static let accessLifetimes = 60...Int(TokenService.longestClientTokenLifetime)
    public static let refreshLifetimes = 3600...(90 * 86_400)

    public static func lifetime(_ seconds: Int?, _ range: ClosedRange<Int>, _ name: String) throws -> Int? {
        guard let seconds else { return nil }
        guard range.contains(seconds) else { throw ClientError.invalid("the \(name) must be between \(range.lowerBound) and \(range.upperBound) seconds") }
        return seconds
    }
    public static let maxRedirectURIs = 20
    public static let maxURILength = 2000

    /// A redirect URI: absolute, https (or http to a loopback address, for development and
    /// native apps), no fragment, no user info; kept exactly as given.
    public static func redirectURI(_ raw: String) throws -> String {
        guard raw.utf8.count <= maxURILength, let url = URL(string: raw), let scheme = url.scheme?.lowercased(),
              let host = url.host, !host.isEmpty else {
            throw ClientError.invalid("redirect_uris must be absolute URLs: \(raw.prefix(100))")
        }
        guard url.fragment == nil, !raw.contains("#") else { throw ClientError.invalid("a redirect URI must not have a fragment") }
        guard url.user == nil, url.password == nil else { throw ClientError.invalid("a redirect URI must not carry user information") }
        let loopback = ["localhost", "127.0.0.1", "[::1]", "::1"].contains(host.lowercased())
        guard scheme == "https" || (scheme == "http" && loopback) else {
            throw ClientError.invalid("a redirect URI must be https (http only to localhost): \(raw.prefix(100))")
        }
        return raw
    }

    public static func redirectURIs(_ list: [String]) throws -> [String] {
        guard !list.isEmpty else { throw ClientError.invalid("redirect_uris must name at least one URI") }
        guard list.count <= maxRedirectURIs else { throw ClientError.invalid("at most \(maxRedirectURIs) redirect_uris") }
        var seen = Set<String>()
        return try list.map(redirectURI).filter { seen.insert($0).inserted }
    }

    public static func scopes(_ list: [String]?) throws -> [String] {
        let given = list ?? ["openid", "profile", "email"]
        for scope in given where !scopes.contains(scope) {
            throw ClientError.invalid("unknown scope \(scope.prefix(50)); the scopes are \(scopes.joined(separator: ", "))")
        }
        guard given.contains("openid") else { throw ClientError.invalid("scopes must include openid") }
        return scopes.filter(given.contains)
    }
}

/// A client's fields as given at registration, or as changed by a patch.
public struct ClientFields: Sendable {
    public var name: String?
    public var kind: OAuthClient.Kind?
    public var redirectURIs: [String]?
    public var scopes: [String]?
    public var firstParty: Bool?
    public var idTokenAlgorithm: SigningAlgorithm?
    /// For these, `.some(nil)` clears the value (back to the server's default, or none).
    public var accessTokenLifetime: Int??
    public var refreshTokenLifetime: Int??
    public var claimTemplate: ClaimTemplate??
    public var serviceAccountID: UUID??

    public init(
        name: String? = nil, kind: OAuthClient.Kind? = nil, redirectURIs: [String]? = nil, scopes: [String]? = nil, firstParty: Bool? = nil,
        idTokenAlgorithm: SigningAlgorithm? = nil, accessTokenLifetime: Int?? = nil, refreshTokenLifetime: Int?? = nil,
        claimTemplate: ClaimTemplate?? = nil, serviceAccountID: UUID?? = nil
    ) {
        self.name = name
        self.kind = kind
        self.redirectURIs = redirectURIs
        self.scopes = scopes
        self.firstParty = firstParty
        self.idTokenAlgorithm = idTokenAlgorithm
        self.accessTokenLifetime = accessTokenLifetime
        self.refreshTokenLifetime = refreshTokenLifetime
        self.claimTemplate = claimTemplate
        self.serviceAccountID = serviceAccountID
    }
}

/// A client as registered: the secret appears here once and is stored only as a hash.
public struct RegisteredClient: Sendable {
    public var client: OAuthClient
    public var secret: String?
    public var revision: Int64
}

/// Why a client operation was refused (mapped to a problem at the HTTP edge).
public enum ClientError: Error, Sendable, Equatable {
    case invalid(String)
    case forbidden(String)
    case notFound(String)
}

/// Persistence for clients.
public protocol ClientStore: Sendable {
    func client(id: UUID) async throws -> (OAuthClient, secretHash: String?)?
    /// Platform clients (`orgID` nil) or one org's, oldest first, and their count.
    func clients(orgID: UUID?, limit: Int, offset: Int) async throws -> ([OAuthClient], Int)
    /// One transaction (the org locked when given) with tenancy and client statements.
    func writeClients<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter, any ClientWriter) async throws -> T) async throws -> T
}

public protocol ClientWriter: Sendable {
    func client(id: UUID) async throws -> OAuthClient?
    func insert(_ client: OAuthClient, secretHash: String?) async throws
    func update(_ client: OAuthClient) async throws
    /// A new secret: tokens minted with client_credentials before `at` stop working.
    func setSecret(id: UUID, hash: String?, at: Date) async throws
    /// Deletes the client and ends the sessions opened for it; returns those sessions.
    func delete(id: UUID, at: Date) async throws -> [UUID]
    /// A service account's org and role, for binding it to a client.
    func serviceAccount(id: UUID) async throws -> (orgID: UUID, role: Role)?
}
