import Authority
import Foundation
import Identity
import Tenancy
import Memberwise

/// An authorization code as stored (by the hash of the code): what the login granted, waiting
/// for the client to redeem it at the token endpoint.
public struct AuthorizationCode: Sendable, Equatable {
    public var clientID: UUID
    public var userID: UUID
    public var redirectURI: String
    public var scopes: [String]
    public var nonce: String?
    public var codeChallenge: String?
    /// When the person signed in (OpenID's `auth_time`).
    public var authTime: Date
    public var expiresAt: Date
    /// The org the login was scoped to (`organization=`), the person a member of it.
    public var orgID: UUID?

    public init(
        clientID: UUID, userID: UUID, redirectURI: String, scopes: [String], nonce: String?, codeChallenge: String?, authTime: Date, expiresAt: Date,
        orgID: UUID? = nil
    ) {
        self.clientID = clientID
        self.userID = userID
        self.redirectURI = redirectURI
        self.scopes = scopes
        self.nonce = nonce
        self.codeChallenge = codeChallenge
        self.authTime = authTime
        self.expiresAt = expiresAt
        self.orgID = orgID
    }
}

/// What an OpenID client's session remembers of the login that opened it, for the ID tokens a
/// refresh issues and for userinfo.
@PublicInit
public struct ClientSessionGrant: Sendable, Equatable {
    public var clientID: UUID
    public var orgID: UUID?
    public var authTime: Date?
}

/// What presenting a code led to.
public enum CodeRedemption: Sendable {
    /// The code was current: it is now spent.
    case redeemed(AuthorizationCode)
    /// Spent before: what its first use issued must be revoked (RFC 6749 §4.1.2).
    case reused(userID: UUID, issuedSession: UUID?)
    /// Unknown or expired.
    case invalid
}

/// Persistence for codes and consents.
public protocol GrantStore: Sendable {
    func insertCode(hash: String, _ code: AuthorizationCode, at: Date) async throws
    /// Spends the code at once when `clientID`'s (one of two concurrent redemptions wins); another
    /// client's attempt leaves it as it was.
    func redeemCode(hash: String, clientID: UUID, at: Date) async throws -> CodeRedemption
    /// Remembers the session a code's redemption opened (to end it if the code comes again), with
    /// the code's org and sign-in time.
    func recordIssuedSession(codeHash: String, sessionID: UUID) async throws
    /// What a client's session remembers of its login; nil for other sessions.
    func sessionGrant(sessionID: UUID) async throws -> ClientSessionGrant?
    /// The scopes the person consented to give the client, if ever.
    func consent(userID: UUID, clientID: UUID) async throws -> [String]?
    func saveConsent(userID: UUID, clientID: UUID, scopes: [String], at: Date) async throws
    /// The person's consents with their clients, newest first.
    func consents(userID: UUID) async throws -> [Consent]
    /// Forgets the consent; returns the live sessions opened for the client by the person.
    func revokeConsent(userID: UUID, clientID: UUID) async throws -> [UUID]
}

/// What a person allowed an app.
@PublicInit
public struct Consent: Sendable, Equatable {
    public var clientID: UUID
    public var clientName: String
    public var scopes: [String]
    public var grantedAt: Date
}

/// Why the token endpoint refused (RFC 6749 §5.2).
public struct TokenError: Error, Sendable, Equatable {
    public var code: String
    public var description: String

    public init(_ code: String, _ description: String) {
        self.code = code
        self.description = description
    }

    /// `invalid_client` answers 401; the others 400.
    public var status: Int { code == "invalid_client" ? 401 : 400 }
}

/// The OpenID provider's grants: codes for a signed-in person's consented request, redeemed
/// once by the client that asked, with its PKCE verifier (SPEC §14).
public struct OpenIDService: Sendable {
    public let store: any GrantStore
    public let clients: ClientService
    let now: @Sendable () -> Date

    /// A code lives for one minute: long enough for one redirect and one back-channel call.
    public static let codeLifetime: TimeInterval = 60

    public init(store: any GrantStore, clients: ClientService, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.clients = clients
        self.now = now
    }

    /// Checks a request against its client (see `AuthorizationRequest.check`).
    public func check(_ query: [String: String]) async throws -> AuthorizationRequest {
        try await AuthorizationRequest.check(query) { try await clients.store.client(id: $0)?.0 }
    }

    /// Whether the person must be asked before the client gets `request`'s scopes.
    public func needsConsent(userID: UUID, _ request: AuthorizationRequest) async throws -> Bool {
        if request.prompt.contains("consent") { return true }
        if request.client.firstParty { return false }
        guard let given = try await store.consent(userID: userID, clientID: request.client.id) else { return true }
        return !Set(request.scopes).isSubset(of: Set(given))
    }

    public func consent(userID: UUID, _ request: AuthorizationRequest) async throws {
        let before = try await store.consent(userID: userID, clientID: request.client.id) ?? []
        try await store.saveConsent(userID: userID, clientID: request.client.id, scopes: Array(Set(before + request.scopes)).sorted(), at: now())
    }

    public func consents(userID: UUID) async throws -> [Consent] {
        try await store.consents(userID: userID)
    }

    /// Takes back what the person allowed the app; `endSession` ends each session the app holds.
    public func revokeConsent(userID: UUID, clientID: UUID, endSession: (UUID) async throws -> Void) async throws {
        for session in try await store.revokeConsent(userID: userID, clientID: clientID) { try await endSession(session) }
    }

    /// Whether the person may sign in to `request`'s org (`organization=`): only its members may.
    public func mayEnterOrganization(userID: UUID, _ request: AuthorizationRequest) async throws -> Bool {
        guard let org = request.organization else { return true }
        return try await isMember(userID: userID, of: org)
    }

    /// RFC 6749 §6: a refresh may ask for a narrower scope (keeping `openid`), never a wider one.
    /// Returns the granted scopes that were asked for, in the granted order.
    public static func narrowedScope(asked: String, granted: String) throws -> String {
        let wanted = asked.split(separator: " ").map(String.init), held = granted.split(separator: " ").map(String.init)
        guard wanted.contains("openid"), Set(wanted).isSubset(of: Set(held)) else {
            throw TokenError("invalid_scope", "a refresh may narrow the scope granted (keeping openid), never widen it")
        }
        return held.filter(wanted.contains).joined(separator: " ")
    }

    /// A login for one org (`organization=`) stands while the person belongs to that org.
    public func loginStands(userID: UUID, _ grant: ClientSessionGrant?) async throws -> Bool {
        guard let org = grant?.orgID else { return true }
        return try await isMember(userID: userID, of: org)
    }

    /// Whether the person is (still) a member of `org`.
    public func isMember(userID: UUID, of org: UUID) async throws -> Bool {
        do {
            return try await clients.tenancy.org(actor: .user(userID, isRoot: false), id: org).role != nil
        } catch is TenancyError {
            return false
        }
    }

    /// The person's orgs with their role in each (the first 100): the `orgs` claim.
    public func orgs(of userID: UUID) async throws -> [IDTokenClaims.OrgClaim] {
        let (views, _) = try await clients.tenancy.listOrgs(actor: .user(userID, isRoot: false), everyOrg: false, nameContains: nil, limit: 100, offset: 0)
        return views.map { IDTokenClaims.OrgClaim(id: $0.org.id.lowercasedString, name: $0.org.name, role: $0.role?.rawValue ?? "") }
    }

    /// What `client` learns about `user` under `scopes`, in a login scoped to `loginOrg`.
    public func claims(user: User, scopes: [String], loginOrg: UUID?, client: OAuthClient) async throws -> PersonClaims {
        let orgs = PersonClaims.needsOrgs(scopes: scopes, template: client.claimTemplate) ? try await orgs(of: user.id) : []
        return PersonClaims(user: user, scopes: scopes, orgs: orgs, loginOrg: loginOrg, clientOrg: client.orgID, template: client.claimTemplate)
    }

    /// The service account a client_credentials grant acts as: a confidential client's, bound
    /// by its org's admins (SPEC §14).
    public func serviceAccount(of client: OAuthClient) throws -> (accountID: UUID, orgID: UUID) {
        guard client.kind == .confidential, let account = client.serviceAccountID, let org = client.orgID else {
            throw TokenError("unauthorized_client", "this client has no service account to act as; client_credentials is refused")
        }
        return (account, org)
    }

    /// Whether a client_credentials token still stands: its client exists and still acts as
    /// that service account (deleting the client or unbinding the account ends its tokens).
    public func isLive(_ token: VerifiedServiceAccountToken) async throws -> Bool {
        guard let id = UUIDText.parse(token.clientID), let (client, _) = try await clients.store.client(id: id) else { return false }
        // A new secret voids the tokens of the old one.
        return client.serviceAccountID == token.accountID && client.orgID == token.orgID && client.secretGeneration == token.secretGeneration
    }

    /// A new code for the signed-in person (returned once; stored as its hash).
    public func issueCode(_ request: AuthorizationRequest, userID: UUID, authTime: Date) async throws -> String {
        let code = Secrets.token()
        let at = now()
        try await store.insertCode(hash: Secrets.hash(code), AuthorizationCode(
            clientID: request.client.id, userID: userID, redirectURI: request.redirectURI, scopes: request.scopes, nonce: request.nonce,
            codeChallenge: request.codeChallenge, authTime: authTime, expiresAt: at.addingTimeInterval(Self.codeLifetime),
            orgID: request.organization), at: at)
        return code
    }

    /// The client presenting a code: a confidential one by its secret, a public one by id alone
    /// (and then PKCE is what proves it). A public client presenting a secret is refused.
    public func authenticate(clientID: String?, secret: String?) async throws -> OAuthClient {
        guard let text = clientID, let id = UUIDText.parse(text), let (client, hash) = try await clients.store.client(id: id) else {
            throw TokenError("invalid_client", "unknown client")
        }
        switch client.kind {
        case .confidential:
            guard let secret, ClientService.secretMatches(secret, hash) else {
                throw TokenError("invalid_client", "client authentication failed")
            }
        case .public:
            guard secret == nil else { throw TokenError("invalid_client", "a public client has no secret") }
        }
        return client
    }

    /// Redeems a code for `client`. A code presented twice revokes what its first use issued
    /// (`onReuse`), and is refused.
    public func redeem(
        code: String, client: OAuthClient, redirectURI: String?, verifier: String?,
        onReuse: (UUID, UUID?) async throws -> Void
    ) async throws -> (AuthorizationCode, codeHash: String) {
        guard code.utf8.count <= 256 else { throw TokenError("invalid_grant", "the code is not valid") }
        let hash = Secrets.hash(code)
        switch try await store.redeemCode(hash: hash, clientID: client.id, at: now()) {
        case .invalid:
            throw TokenError("invalid_grant", "the code is not valid, or has expired")
        case .reused(let user, let session):
            try await onReuse(user, session)
            throw TokenError("invalid_grant", "the code was used before; what it issued is revoked")
        case .redeemed(let grant):
            guard redirectURI == grant.redirectURI else { throw TokenError("invalid_grant", "redirect_uri does not match the authorization request") }
            if let challenge = grant.codeChallenge {
                guard let verifier, PKCE.matches(verifier: verifier, challenge: challenge) else {
                    throw TokenError("invalid_grant", "code_verifier does not match the code_challenge")
                }
            } else if verifier != nil {
                throw TokenError("invalid_grant", "code_verifier given, but the authorization request had no code_challenge")
            }
            return (grant, hash)
        }
    }
}
