import Authority
import Foundation
import Hummingbird
import Identity
import OpenID
import Policy
import Storage
import Tenancy

/// Who is calling: a user in a session, a user through an API key, or a service account's key.
public struct Caller: Sendable {
    public enum Credential: Sendable {
        case session(UUID)
        case userKey(APIKey)
        case serviceAccountKey(APIKey, accountID: UUID, orgID: UUID)
        /// An OpenID client's client_credentials token, acting as its service account.
        case clientServiceAccount(clientID: String, accountID: UUID, orgID: UUID)
    }

    public var credential: Credential
    /// The person behind the call; nil for service accounts.
    public var user: User?
    /// Set for API keys: what the key's scopes leave of its owner's authority.
    public var scopes: KeyScopes?
    /// Set for an access token issued to an OpenID client: the client's id. Such a token asks
    /// for decisions only (`Authenticator.openIDPaths`), never acts on the account.
    public var openIDClient: String?

    public var sessionID: UUID? {
        if case .session(let id) = credential { return id }
        return nil
    }

    public var key: APIKey? {
        switch credential {
        case .session, .clientServiceAccount: return nil
        case .userKey(let k), .serviceAccountKey(let k, _, _): return k
        }
    }

    /// The service account and its org, for a service account's key or client token.
    public var serviceAccount: (accountID: UUID, orgID: UUID)? {
        switch credential {
        case .serviceAccountKey(_, let account, let org), .clientServiceAccount(_, let account, let org): return (account, org)
        case .session, .userKey: return nil
        }
    }

    public var principal: Principal {
        if let (account, _) = serviceAccount { return .serviceAccount(account) }
        return .user(user!.id)
    }

    /// The caller as the subject of a decision.
    public var subject: Subject { Subject(principal: principal, scopes: scopes) }

    /// Root, in a session or through an unscoped key.
    public var isRoot: Bool { (user?.isRoot ?? false) && (scopes == nil || scopes == .unrestricted) }

    /// The caller as an actor of org writes, narrowed like its decisions are.
    func actor(serviceAccountRole: Role?) -> Actor {
        switch credential {
        case .serviceAccountKey(_, let account, let org), .clientServiceAccount(_, let account, let org):
            return .serviceAccount(account, scopes: scopes, grant: Actor.ServiceAccountGrant(orgID: org, role: serviceAccountRole ?? .viewer))
        case .userKey:
            return .user(user!.id, isRoot: isRoot, scopes: scopes)
        case .session:
            return .user(user!.id, isRoot: user!.isRoot)
        }
    }

    /// A person, not a service account (403 otherwise).
    func requireUser() throws -> User {
        guard let user else { throw Problem.forbidden("a service account has no user account") }
        return user
    }

    /// A signed-in session, not an API key: keys cannot mint keys or touch credentials and sessions.
    func requireSession() throws -> (User, UUID) {
        guard let user, let session = sessionID else {
            throw Problem.forbidden("this needs a signed-in session; an API key cannot do it")
        }
        return (user, session)
    }
}

/// What a bearer token stands for.
struct ResolvedToken: Sendable {
    var caller: Caller
    var expiresAt: Date?
    var subject: Subject { caller.subject }
}

/// Resolves `Authorization: Bearer …` (an access token or an API key) to a caller, or throws 401.
struct Authenticator: Sendable {
    let auth: AuthService
    let keys: APIKeyVerifier
    let policy: PolicyService
    let freshness: Freshness
    let limits: AbuseLimits
    let openID: OpenIDService

    func authenticate(_ request: Request) async throws -> Caller {
        guard let header = request.headers[.authorization] else { throw Problem.unauthenticated() }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Problem.unauthenticated("use Authorization: Bearer <token>")
        }
        // Trimmed by hand: Foundation's trimmingCharacters bridges through UTF-16 and showed up
        // as a seventh of the authorize path's CPU time.
        var raw = parts[1]
        while let last = raw.last, last == " " || last == "\t" { raw = raw.dropLast() }
        let token = String(raw)
        guard token.utf8.count <= 8192 else { throw Problem.unauthenticated("invalid or expired credentials") }
        let caller = try await resolve(token: token).caller
        RequestTrace.noteCaller(caller)
        if caller.openIDClient != nil, !Self.openIDPaths.contains(request.uri.path) {
            throw Problem.forbidden("this token was issued to an OpenID client: it may ask for decisions, nothing else")
        }
        if Self.isWrite(request), !caller.isRoot {
            try limits.spendWrite(principal: caller.principal.id, now: auth.now())
        }
        return caller
    }

    /// What an OpenID client's access token may call (besides `/oauth/userinfo`): a resource
    /// server asks yes-or-no questions about the person with it (SPEC §14). Listing the person's
    /// orgs and roles (lookup, capabilities, searches) is the `orgs` scope's, through userinfo.
    static let openIDPaths: Set<String> = ["/v1/authorize", "/v1/authorize/batch", "/access/v1/evaluation", "/access/v1/evaluations"]

    /// POSTs that only read: decisions, lookups, identify. (Logging out is a write, but it is
    /// never refused: a person must always be able to end a session.)
    static let readingPosts: Set<String> = [
        "/v1/authorize", "/v1/authorize/batch", "/v1/authorize/explain", "/v1/capabilities", "/v1/lookup",
        "/v1/identify", "/access/v1/evaluation", "/access/v1/evaluations", "/v1/auth/logout",
    ]

    /// Whether the request changes state, and so spends its caller's write budget (SPEC §18).
    static func isWrite(_ request: Request) -> Bool {
        switch request.method {
        case .put, .patch, .delete: return true
        case .post: return !readingPosts.contains(request.uri.path)
        default: return false
        }
    }

    /// The caller, as of at least revision `atLeast` when one is asked for. Only an
    /// authenticated caller makes this node read the change log (no database work before
    /// authentication); the credential is then checked again against what was read, so one
    /// revoked at or before that revision is refused.
    func authenticate(_ request: Request, reaching atLeast: Int64?) async throws -> Caller {
        let caller = try await authenticate(request)
        guard let n = atLeast, freshness.changes.applied < n else { return caller }
        _ = try? await freshness.changes.reach(n)
        return try await authenticate(request)
    }

    /// A token's identity: the caller of a request, or the subject of `identify` and `authorize`.
    func resolve(token: String) async throws -> ResolvedToken {
        if APIKeyFormat.looksLikeKey(token) { return try await resolve(key: token) }
        let verified: VerifiedAccessToken
        let stale = freshness.isStale
        do {
            switch try await auth.authenticateBearer(token, readThrough: stale) {
            case .session(let session): verified = session
            case .serviceAccount(let account): return try await resolve(clientToken: account)
            }
        } catch is IdentityError {
            throw Problem.unauthenticated("invalid or expired credentials")
        }
        guard let user = try await auth.user(id: verified.userID, readThrough: stale) else {
            throw Problem.unauthenticated("invalid or expired credentials")
        }
        var caller = Caller(credential: .session(verified.sessionID), user: user)
        if verified.clientID != "portcullis" { caller.openIDClient = verified.clientID }
        return ResolvedToken(caller: caller, expiresAt: verified.expiresAt)
    }

    /// A client_credentials token: good while its client stands and acts as that account. Like a
    /// user's OpenID token it asks for decisions only (`openIDPaths`).
    func resolve(clientToken token: VerifiedServiceAccountToken) async throws -> ResolvedToken {
        guard try await openID.isLive(token) else { throw Problem.unauthenticated("invalid or expired credentials") }
        var caller = Caller(credential: .clientServiceAccount(clientID: token.clientID, accountID: token.accountID, orgID: token.orgID), user: nil)
        caller.openIDClient = token.clientID
        return ResolvedToken(caller: caller, expiresAt: token.expiresAt)
    }

    func resolve(key presented: String) async throws -> ResolvedToken {
        let stale = freshness.isStale
        guard let key = try await keys.verify(presented, now: auth.now(), readThrough: stale) else {
            throw Problem.unauthenticated("invalid, expired or revoked API key")
        }
        // Scopes were validated when the key was made; a stored key never widens on a parse error.
        let scopes = (try? KeyScopes.parse(key.scopes)) ?? KeyScopes(orgs: [], roleCap: .viewer, authzCheck: false)
        switch key.owner {
        case .user(let id):
            guard let user = try await auth.user(id: id, readThrough: stale) else { throw Problem.unauthenticated("invalid, expired or revoked API key") }
            return ResolvedToken(caller: Caller(credential: .userKey(key), user: user, scopes: scopes), expiresAt: key.expiresAt)
        case .serviceAccount(let account, let org):
            return ResolvedToken(
                caller: Caller(credential: .serviceAccountKey(key, accountID: account, orgID: org), user: nil, scopes: scopes), expiresAt: key.expiresAt)
        }
    }

    /// The caller as an org actor; a service account's role comes from its org's grants.
    func actor(_ caller: Caller) async throws -> Actor {
        guard let (account, org) = caller.serviceAccount else { return caller.actor(serviceAccountRole: nil) }
        let role = try await policy.membershipRole(of: Subject(principal: .serviceAccount(account)), in: org, consistency: freshness.isStale ? .strong : .cached)
        guard role != nil else { throw Problem.unauthenticated("the service account no longer exists") }
        return caller.actor(serviceAccountRole: role)
    }
}

extension Authenticator {
    /// The node's authenticator (an extension, so the memberwise initializer stays).
    init(_ services: AppServices) {
        self.init(
            auth: services.auth, keys: services.keyVerifier, policy: services.policy, freshness: services.freshness, limits: services.limits,
            openID: services.openID)
    }
}
