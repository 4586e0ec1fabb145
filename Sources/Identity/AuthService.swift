import Authority
import Foundation
import Memberwise

public enum SignupMode: String, Sendable {
    case open
    case inviteOnly = "invite_only"
}

/// Sign-up, sign-in, refresh, sign-out and password changes.
public struct AuthService: Sendable {
    public let users: any UserStore
    public let sessions: any SessionStore
    public let hasher: any PasswordHasher
    public let tokens: TokenService
    public let sessionGuard: SessionGuard
    public let signupMode: SignupMode
    public let now: @Sendable () -> Date
    /// Where mailed links point.
    public var links = MailLinks(publicURL: "http://localhost:8080")
    public static let resetLifetime: TimeInterval = 3600
    public static let verificationLifetime: TimeInterval = 7 * 86_400
    /// How long a woken or new invite stays pending.
    public static let inviteLifetime: TimeInterval = 7 * 86_400
    public let verifiedTokens = VerifiedTokenCache()
    public let userCache = UserCache()
    /// Reset and verification requests, worked off the request path (no enumeration by timing).
    public let accountMail = AccountMailQueue()

    public init(users: any UserStore, sessions: any SessionStore, hasher: any PasswordHasher, tokens: TokenService, sessionGuard: SessionGuard, signupMode: SignupMode, now: @escaping @Sendable () -> Date = { Date() }) {
        self.users = users
        self.sessions = sessions
        self.hasher = hasher
        self.tokens = tokens
        self.sessionGuard = sessionGuard
        self.signupMode = signupMode
        self.now = now
    }

    // MARK: - Accounts

    @PublicInit
    public struct SignupRequest: Sendable {
        public var email: String
        public var password: String
        public var name: String?
        public var isRoot: Bool = false
        public var emailVerified: Bool = false
    }

    /// Validates the fields without touching storage (so validation errors precede state errors).
    public static func validate(_ request: SignupRequest) throws -> (email: String, name: String) {
        guard let email = Email.canonical(request.email) else { throw IdentityError.invalidEmail }
        try PasswordPolicy.validate(request.password)
        let name = try DisplayName.validate(request.name ?? "")
        return (email, name)
    }

    /// Creates an account. Self-signup honours `signupMode`; `trusted` bypasses it (CLI, bootstrap).
    public func signup(_ request: SignupRequest, trusted: Bool = false) async throws -> (User, Revision) {
        let (email, name) = try Self.validate(request)
        if !trusted, signupMode == .inviteOnly { throw IdentityError.signupDisabled }
        let hash = try await hasher.hash(request.password)
        let at = now()
        let user = User(
            id: UUID(), email: email, name: name, emailVerified: request.emailVerified,
            isRoot: request.isRoot, createdAt: at, updatedAt: at)
        // An unverified address gets a verification mail, committed with the account.
        let verification = user.emailVerified ? nil : Self.verificationToken(for: user, links: links, at: at)
        let revision = try await users.createUser(UserCredentials(user: user, passwordHash: hash), verification: verification)
        return (user, revision)
    }

    /// Applies committed changes to this node's identity state: revoked sessions stop
    /// verifying, changed users are read again, and new signing keys are loaded. This node's own
    /// writes arrive here too, from the store's observer, before the write returns; that is how
    /// a logout or a reset takes effect at once (nothing else in this service touches the caches).
    public func apply(_ events: [ChangeEvent]) async {
        var revoked: [UUID] = []
        var keysChanged = false
        for event in events {
            switch event {
            case .sessionRevoked(let id): revoked.append(id)
            case .userCreated(let id), .userUpdated(let id): userCache.invalidate(id)
            case .restored: userCache.invalidateAll()
            case .signingKeysChanged: keysChanged = true
            default: break
            }
        }
        sessionGuard.sessionsRevoked(revoked)
        if keysChanged { try? await tokens.reload() }
    }

    // MARK: - E-mail tokens

    /// Queues a reset mail for the address; the answer is the same whether or not it has an
    /// account, and no lookup happens before it (see `AccountMailQueue`).
    public func requestPasswordReset(email raw: String) {
        guard let email = Email.canonical(raw) else { return }
        accountMail.enqueue(.passwordReset(email: email))
    }

    /// Queues a fresh verification link for an account whose address is not proven yet; the
    /// same for every address.
    public func requestVerification(email raw: String) {
        guard let email = Email.canonical(raw) else { return }
        accountMail.enqueue(.verification(email: email))
    }

    /// Works the account-mail queue until cancelled (one per node, in the background).
    public func runAccountMail(onError: @escaping @Sendable (any Error) -> Void) async {
        await accountMail.run { request in
            do { try await perform(request) } catch { onError(error) }
        }
    }

    /// Works what is queued now (tests, and a last pass at shutdown).
    public func drainAccountMail() async throws {
        try await accountMail.drain { try await perform($0) }
    }

    func perform(_ request: AccountMailQueue.Request) async throws {
        let at = now()
        switch request {
        case .passwordReset(let email):
            guard let account = try await users.credentials(email: email) else { return }
            let token = Secrets.token()
            try await users.createResetToken(userID: account.user.id, PendingToken(
                hash: Secrets.hash(token), expiresAt: at.addingTimeInterval(Self.resetLifetime),
                mail: OutgoingMail(to: email, template: MailTemplate.passwordReset, variables: [
                    "name": account.user.name, "email": email, "link": links.resetPassword(token),
                    "expires_at": at.addingTimeInterval(Self.resetLifetime).ISO8601Format(),
                ])), now: at)
        case .signInCode(let email, let code):
            try await users.mailSignInCode(email: email, signInCodeMail(email: email, code: code), now: at)
        case .verification(let email):
            let links = links
            try await users.createVerificationToken(email: email, { user in
                Self.verificationToken(for: user, links: links, at: at)
            }, now: at)
        }
    }

    static func verificationToken(for user: User, links: MailLinks, at: Date) -> PendingToken {
        let token = Secrets.token()
        let expires = at.addingTimeInterval(verificationLifetime)
        return PendingToken(
            hash: Secrets.hash(token), expiresAt: expires,
            mail: OutgoingMail(to: user.email, template: MailTemplate.verifyEmail, variables: [
                "name": user.name, "email": user.email, "link": links.verifyEmail(token), "expires_at": expires.ISO8601Format(),
            ]))
    }

    /// Sets a new password with a mailed reset token (single use, one hour). The link proves the
    /// address; every session ends, and so does every API key made while the address was unproven.
    public func confirmPasswordReset(token: String, newPassword: String) async throws -> Revision {
        try PasswordPolicy.validate(newPassword)
        guard token.utf8.count <= 256 else { throw IdentityError.invalidToken }
        let hash = try await hasher.hash(newPassword)
        guard let result = try await users.resetPassword(
            tokenHash: Secrets.hash(token), newHash: hash, now: now(), inviteLifetime: Self.inviteLifetime) else {
            throw IdentityError.invalidToken
        }
        return result.revision
    }

    public func verifyEmail(token: String) async throws -> Revision {
        guard token.utf8.count <= 256,
              let result = try await users.verifyEmail(tokenHash: Secrets.hash(token), now: now(), inviteLifetime: Self.inviteLifetime) else {
            throw IdentityError.invalidToken
        }
        return result.revision
    }

    // MARK: - Sessions

    /// Checks the password and opens a session. Unknown e-mail and wrong password fail the
    /// same way and cost the same time (a decoy hash is verified for unknown accounts).
    public func login(email rawEmail: String, password: String, client: ClientInfo) async throws -> TokenPair {
        let account: UserCredentials?
        if let email = Email.canonical(rawEmail), password.count <= PasswordPolicy.maxLength {
            account = try await users.credentials(email: email)
        } else {
            account = nil
        }
        // An account made through an upstream may have no password: it is checked against the
        // decoy too, so it costs what a wrong password costs and never matches.
        let stored = account?.passwordHash ?? ""
        let matches = await hasher.verify(password, against: stored.isEmpty ? hasher.decoyHash : stored)
        guard let account, !stored.isEmpty, matches else { throw IdentityError.invalidCredentials }
        return try await openSession(for: account.user, client: client)
    }

    /// A session for a user whose identity was proven some other way than a password check just
    /// now: a signup that just set the password, or an OpenID client's login (its own row in the
    /// sessions table, so logging out everywhere ends it too; its tokens carry the client's id and
    /// the granted scope).
    public func openSession(userID: UUID, client: ClientInfo, for app: ClientSessionTerms? = nil, scope: String? = nil) async throws -> TokenPair {
        guard let user = try await users.user(id: userID) else { throw IdentityError.notFound }
        return try await openSession(for: user, client: client, app: app, scope: scope)
    }

    /// A session by id (for when a browser session signed in: OpenID's `auth_time`).
    public func session(id: UUID) async throws -> Session? {
        try await sessions.session(id: id)
    }

    func openSession(for user: User, client: ClientInfo, app: ClientSessionTerms? = nil, scope: String? = nil) async throws -> TokenPair {
        let at = now()
        let refresh = Secrets.token()
        let refreshTTL = app?.refreshLifetime ?? tokens.settings.refreshTokenTTL
        let refreshExpiry = at.addingTimeInterval(refreshTTL.seconds)
        let session = Session(
            id: UUID(), userID: user.id, createdAt: at, lastUsedAt: at, expiresAt: refreshExpiry,
            revokedAt: nil, userAgent: client.userAgent, ip: client.ip, clientID: app?.clientID, scope: scope)
        let revision = try await sessions.createSession(session, refreshHash: Secrets.hash(refresh), refreshExpiresAt: refreshExpiry)
        let access = try await tokens.issue(
            userID: user.id, sessionID: session.id, now: at, clientID: app?.clientID ?? TokenService.ownClientID, scope: scope,
            lifetime: app?.accessLifetime)
        return TokenPair(
            accessToken: access.token, accessExpiresIn: access.expiresIn, refreshToken: refresh,
            refreshExpiresIn: Int(refreshTTL.seconds), user: user,
            sessionID: session.id, revision: revision, scope: scope)
    }

    /// The scope granted to the session a refresh token belongs to, if the token is `app`'s
    /// (nil otherwise): read before a refresh that asks for a narrower scope.
    public func grantedScope(refreshToken: String, for app: ClientSessionTerms) async throws -> String? {
        guard refreshToken.count >= 43, refreshToken.count <= 512,
              let session = try await sessions.session(refreshHash: Secrets.hash(refreshToken)), session.clientID == app.clientID else { return nil }
        return session.scope
    }

    /// Spends a refresh token for a new pair. Presenting a spent token revokes its session. A
    /// session opened for an OpenID client refreshes only through that client (`app`), and keeps
    /// its client id and scope (the new access token may carry a `narrowed` one, checked by the
    /// caller); Portcullis's own sessions refresh with `app` nil.
    public func refresh(_ refreshToken: String, for app: ClientSessionTerms? = nil, narrowed: String? = nil) async throws -> TokenPair {
        guard refreshToken.count >= 43, refreshToken.count <= 512 else { throw IdentityError.invalidRefreshToken }
        let at = now()
        let next = Secrets.token()
        let refreshTTL = app?.refreshLifetime ?? tokens.settings.refreshTokenTTL
        let nextExpiry = at.addingTimeInterval(refreshTTL.seconds)
        switch try await sessions.rotateRefreshToken(
            oldHash: Secrets.hash(refreshToken), newHash: Secrets.hash(next), newExpiresAt: nextExpiry, clientID: app?.clientID, now: at) {
        case .invalid:
            throw IdentityError.invalidRefreshToken
        case .reused:
            throw IdentityError.invalidRefreshToken
        case .rotated(let session, let revision):
            guard let user = try await users.user(id: session.userID) else { throw IdentityError.invalidRefreshToken }
            let scope = narrowed ?? session.scope
            let access = try await tokens.issue(
                userID: user.id, sessionID: session.id, now: at, clientID: session.clientID ?? TokenService.ownClientID, scope: scope,
                lifetime: app?.accessLifetime)
            return TokenPair(
                accessToken: access.token, accessExpiresIn: access.expiresIn, refreshToken: next,
                refreshExpiresIn: Int(refreshTTL.seconds), user: user,
                sessionID: session.id, revision: revision, scope: scope)
        }
    }

    /// Verifies an access token and that its session is still alive (asking the database when
    /// `readThrough`, for a node whose memory may be behind). A service account's token is refused.
    public func authenticate(accessToken: String, readThrough: Bool = false) async throws -> VerifiedAccessToken {
        guard case .session(let verified) = try await authenticateBearer(accessToken, readThrough: readThrough) else {
            throw IdentityError.unauthenticated("not a session's token")
        }
        return verified
    }

    /// Any access token: a session's, checked as above, or an OpenID client's service-account
    /// token, whose signature and expiry are checked here and whose client the caller checks.
    public func authenticateBearer(_ accessToken: String, readThrough: Bool = false) async throws -> VerifiedBearer {
        let key = Secrets.hash(accessToken)
        let verified: VerifiedAccessToken
        if let hit = verifiedTokens.get(key, now: now()) {
            verified = hit
        } else {
            switch try await tokens.verifyBearer(accessToken, now: now()) {
            case .serviceAccount(let token): return .serviceAccount(token)
            case .session(let token): verified = token
            }
            verifiedTokens.put(key, verified)
        }
        guard try await sessionGuard.isAlive(sessionID: verified.sessionID, userID: verified.userID, now: now(), readThrough: readThrough) else {
            throw IdentityError.unauthenticated("session revoked")
        }
        return .session(verified)
    }

    /// The user of a live session: what a browser's session cookie names (SPEC §13). Nil once
    /// the session is revoked or expired.
    public func sessionUser(sessionID: UUID, userID: UUID, readThrough: Bool = false) async throws -> User? {
        guard try await sessionGuard.isAlive(sessionID: sessionID, userID: userID, now: now(), readThrough: readThrough) else { return nil }
        return try await user(id: userID, readThrough: readThrough)
    }

    public func logout(userID: UUID, sessionID: UUID, all: Bool) async throws -> Revision {
        if all {
            return try await sessions.revokeAllSessions(userID: userID, reason: .logoutAll, now: now()).0
        }
        guard let revision = try await sessions.revokeSession(id: sessionID, userID: userID, reason: .logout, now: now()) else {
            throw IdentityError.unauthenticated("session revoked")
        }
        return revision
    }

    /// Ends the session behind a refresh token issued to `clientID` (RFC 7009); false when the
    /// token is unknown, ended already, or another client's.
    public func revokeRefreshToken(_ token: String, clientID: String) async throws -> Bool {
        guard token.count >= 43, token.count <= 512 else { return false }
        return try await sessions.revokeSession(refreshHash: Secrets.hash(token), clientID: clientID, reason: .logout, now: now()) != nil
    }

    public func revokeSession(userID: UUID, sessionID: UUID) async throws -> Revision {
        guard let revision = try await sessions.revokeSession(id: sessionID, userID: userID, reason: .deleted, now: now()) else {
            throw IdentityError.notFound
        }
        return revision
    }

    public func activeSessions(userID: UUID, limit: Int, offset: Int) async throws -> ([Session], Int) {
        try await sessions.activeSessions(userID: userID, now: now(), limit: limit, offset: offset)
    }
}
