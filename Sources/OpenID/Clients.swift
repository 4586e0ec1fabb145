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
    /// The scopes this provider knows.
    /// (`offline_access` comes with refresh tokens for clients, which are not served yet.)
    public static let scopes = ["openid", "profile", "email", "orgs"]
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

    public init(name: String? = nil, kind: OAuthClient.Kind? = nil, redirectURIs: [String]? = nil, scopes: [String]? = nil, firstParty: Bool? = nil) {
        self.name = name
        self.kind = kind
        self.redirectURIs = redirectURIs
        self.scopes = scopes
        self.firstParty = firstParty
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
    func setSecret(id: UUID, hash: String?) async throws
    /// Deletes the client and ends the sessions opened for it; returns those sessions.
    func delete(id: UUID, at: Date) async throws -> [UUID]
}
