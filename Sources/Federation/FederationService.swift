import Authority
import Crypto
import Foundation
import Identity
import Tenancy

/// Sign-in through upstream providers (SPEC §15): the root's provider settings, the browser flow
/// (out to the upstream and back), the account rules for a first sign-in, and linking. Every rule
/// of federated sign-in lives here; routes and pages only map requests onto these calls.
public struct FederationService: Sendable {
    public let store: any FederationStore
    let auth: AuthService
    let tenancy: TenancyService
    let sealer: KeySealer
    let dialect: UpstreamDialect
    /// The server's public URL: callbacks are `<publicURL>/login/upstream/<id>/callback`.
    let publicURL: String
    public let now: @Sendable () -> Date
    /// How long a person may spend at the upstream before coming back.
    public static let flowLifetime: TimeInterval = 600
    /// Linking adds a way into the account: only within this long of signing in (a session
    /// left open on a shared computer, or a stolen cookie, is not enough).
    public static let linkWindow: TimeInterval = 600

    public init(
        store: any FederationStore, auth: AuthService, tenancy: TenancyService, sealer: KeySealer, http: any UpstreamHTTP,
        metadata: UpstreamMetadata = UpstreamMetadata(), publicURL: String, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.auth = auth
        self.tenancy = tenancy
        self.sealer = sealer
        self.dialect = UpstreamDialect(http: http, metadata: metadata)
        self.publicURL = publicURL
        self.now = now
    }

    public func redirectURI(_ providerID: String) -> String { "\(publicURL)\(Self.startPath(providerID))/callback" }

    /// Where a browser starts a sign-in at the provider (the login page's button).
    public static func startPath(_ providerID: String) -> String { "/login/upstream/\(providerID)" }

    // MARK: The root's providers

    func requireRoot(_ actor: Actor) async throws {
        try await tenancy.managesIntegrations(actor, orgID: nil, "identity providers")
    }

    public func providers(actor: Actor) async throws -> [UpstreamProvider] {
        try await requireRoot(actor)
        return try await store.providers()
    }

    /// What the login page offers: the enabled providers (no secrets, nobody signed in needed).
    public func enabledProviders() async throws -> [UpstreamProvider] {
        try await store.providers().filter(\.enabled)
    }

    public func provider(actor: Actor, id: String) async throws -> UpstreamProvider {
        try await requireRoot(actor)
        guard let provider = try await store.provider(id: id) else { throw FederationError.notFound("no such identity provider") }
        return provider
    }

    public func createProvider(actor: Actor, _ input: ProviderInput) async throws -> (UpstreamProvider, Revision) {
        try await requireRoot(actor)
        guard let rawKind = input.kind else { throw FederationError.invalid("kind is required: github, google or oidc") }
        guard let kind = ProviderKind(rawValue: rawKind) else { throw FederationError.invalid("kind must be github, google or oidc") }
        let id = try ProviderRules.validID(input.id ?? "")
        guard input.clientID != nil else { throw FederationError.invalid("client_id is required") }
        guard input.clientSecret != nil else { throw FederationError.invalid("client_secret is required") }
        if kind == .oidc, input.issuer == nil { throw FederationError.invalid("issuer is required for an OpenID provider") }
        let at = now()
        var provider = UpstreamProvider(
            id: id, kind: kind, displayName: "", clientID: "", sealedSecret: "", scopes: kind.defaultScopes,
            issuer: kind == .google ? UpstreamProvider.googleIssuer : nil,
            webBaseURL: kind == .github ? UpstreamDialect.GitHub.web : nil, apiBaseURL: kind == .github ? UpstreamDialect.GitHub.api : nil,
            enabled: true, createdAt: at, updatedAt: at)
        var fields = input
        // GitHub Enterprise answers its API under the web URL; github.com's API must not get its tokens.
        if kind == .github, let raw = input.webBaseURL, input.apiBaseURL == nil {
            let web = try ProviderRules.baseURL(raw, "web_base_url")
            if web != UpstreamDialect.GitHub.web { fields.apiBaseURL = web + "/api/v3" }
        }
        if fields.displayName == nil { fields.displayName = kind == .github ? "GitHub" : kind == .google ? "Google" : id }
        try apply(fields, to: &provider)
        let revision = try await store.createProvider(provider, actor: actor.subject.principal)
        return (provider, revision)
    }

    /// Changes what `input` names; nothing named, nothing written (revision nil).
    public func updateProvider(actor: Actor, id: String, _ input: ProviderInput) async throws -> (UpstreamProvider, Revision?) {
        var provider = try await self.provider(actor: actor, id: id)
        if input.id != nil, input.id != id { throw FederationError.invalid("id cannot be changed; create another provider") }
        if input.kind != nil, input.kind != provider.kind.rawValue { throw FederationError.invalid("kind cannot be changed; create another provider") }
        let before = provider
        try apply(input, to: &provider)
        guard provider != before else { return (provider, nil) }
        // A subject is unique only at its issuer: pointing the provider elsewhere would hand the
        // accounts linked here to whoever has the same subject there.
        if (provider.issuer, provider.webBaseURL, provider.apiBaseURL) != (before.issuer, before.webBaseURL, before.apiBaseURL),
           try await store.identityCount(providerID: id) > 0 {
            throw FederationError.conflict(code: "provider_in_use", "accounts are linked through this provider, so its issuer and URLs stay; add another provider for another issuer")
        }
        provider.updatedAt = now()
        guard let revision = try await store.updateProvider(provider, actor: actor.subject.principal) else {
            throw FederationError.notFound("no such identity provider")
        }
        return (provider, revision)
    }

    public func deleteProvider(actor: Actor, id: String) async throws -> Revision {
        try await requireRoot(actor)
        guard let revision = try await store.deleteProvider(id: id, actor: actor.subject.principal, now: now()) else {
            throw FederationError.notFound("no such identity provider")
        }
        return revision
    }

    func apply(_ input: ProviderInput, to provider: inout UpstreamProvider) throws {
        if let name = input.displayName { provider.displayName = try ProviderRules.text(name, "display_name", max: 60) }
        if let clientID = input.clientID { provider.clientID = try ProviderRules.text(clientID, "client_id", max: 255) }
        if let secret = input.clientSecret {
            guard !secret.isEmpty, secret.utf8.count <= 1024 else { throw FederationError.invalid("client_secret must be 1 to 1024 bytes") }
            provider.sealedSecret = try sealer.seal(Data(secret.utf8))
        }
        if let scopes = input.scopes { provider.scopes = scopes }
        provider.scopes = try ProviderRules.scopes(provider.scopes, kind: provider.kind)
        if let issuer = input.issuer {
            guard provider.kind.speaksOpenID else { throw FederationError.invalid("issuer is for google and oidc providers; GitHub takes web_base_url and api_base_url") }
            provider.issuer = try ProviderRules.baseURL(issuer, "issuer", exact: true)
        }
        for (value, field) in [(input.webBaseURL, "web_base_url"), (input.apiBaseURL, "api_base_url")] where value != nil {
            guard provider.kind == .github else { throw FederationError.invalid("\(field) is for github providers; OpenID providers take issuer") }
            let url = try ProviderRules.baseURL(value!, field)
            if field == "web_base_url" { provider.webBaseURL = url } else { provider.apiBaseURL = url }
        }
        if let enabled = input.enabled { provider.enabled = enabled }
    }

    // MARK: The browser flow

    public struct Departure: Sendable {
        /// Where to send the browser.
        public var location: String
        /// The flow's state: also the browser's cookie, so only this browser can come back with it.
        public var state: String
    }

    /// Starts a sign-in (or, with `.link`, a link) at `providerID`: the flow is stored, and the
    /// browser is sent to the upstream with `state`, a `nonce` (OpenID) and a PKCE challenge.
    /// A link needs an account whose address is proven (a squatter's link would outlive the
    /// owner's password reset) and a sign-in within `linkWindow` (`signedInAt`).
    public func begin(providerID: String, intent: UpstreamFlow.Intent, returnTo: String?, signedInAt: Date? = nil) async throws -> Departure {
        guard let provider = try await store.provider(id: providerID), provider.enabled else {
            throw FederationError.notFound("no such sign-in provider")
        }
        if case .link(let userID) = intent {
            guard let user = try await auth.users.user(id: userID), user.emailVerified else {
                throw FederationError.forbidden("confirm your e-mail address before linking another way to sign in")
            }
            guard let signedInAt, signedInAt >= now().addingTimeInterval(-Self.linkWindow) else {
                throw FederationError.reauthenticate("sign in again to link another way to sign in: you signed in more than ten minutes ago")
            }
        }
        let state = Secrets.token(), nonce = Secrets.token(), verifier = Secrets.token()
        let challenge = Secrets.base64url(SHA256.hash(data: Data(verifier.utf8)))
        let location = try await dialect.authorizeURL(provider, redirectURI: redirectURI(providerID), state: state, nonce: nonce, challenge: challenge)
        let at = now()
        try await store.saveFlow(UpstreamFlow(
            stateHash: Secrets.hash(state), providerID: providerID, nonce: nonce, codeVerifier: verifier, intent: intent, returnTo: returnTo,
            createdAt: at, expiresAt: at.addingTimeInterval(Self.flowLifetime)))
        return Departure(location: location, state: state)
    }

    public enum Arrival: Sendable {
        /// Signed in (a new account when `created`): the session, where to go next, and whether
        /// the flow came with an invite (its invitations wait on the account's page).
        case signedIn(TokenPair, created: Bool, returnTo: String?, invited: Bool)
        /// The upstream identity is now linked to the signed-in account.
        case linked(LinkedIdentity, UpstreamProvider, returnTo: String?)
    }

    /// Completes a flow: `state` must be the flow's and equal the browser's cookie (`cookieState`);
    /// the flow is spent either way. `signedIn` is the account the browser is signed in to now.
    public func complete(
        providerID: String, code: String?, state: String?, cookieState: String?, upstreamError: String?, signedIn: UUID?, client: ClientInfo
    ) async throws -> Arrival {
        guard let state, let cookieState, state.utf8.count <= 128, Secrets.constantTimeEquals(state, cookieState),
              let flow = try await store.takeFlow(stateHash: Secrets.hash(state), now: now()), flow.providerID == providerID else {
            throw FederationError.upstream("this sign-in expired or was started in another browser; start again")
        }
        if let upstreamError { throw FederationError.upstream("the provider refused the sign-in (\(upstreamError.prefix(60)))") }
        guard let code, !code.isEmpty, code.utf8.count <= 2048 else { throw FederationError.upstream("the provider sent no code") }
        guard let provider = try await store.provider(id: providerID), provider.enabled else { throw FederationError.notFound("no such sign-in provider") }
        let secret = String(decoding: try sealer.open(provider.sealedSecret), as: UTF8.self)
        let person = try await dialect.person(
            provider, clientSecret: secret, code: code, redirectURI: redirectURI(providerID), verifier: flow.codeVerifier,
            nonce: flow.nonce, now: now())
        switch flow.intent {
        case .link(let userID):
            guard signedIn == userID else { throw FederationError.upstream("you are no longer signed in to the account that asked for the link; sign in and start again") }
            return .linked(try await link(person, provider: provider, to: userID), provider, returnTo: flow.returnTo)
        case .signIn(let inviteTokenHash):
            return try await signIn(person, provider: provider, inviteTokenHash: inviteTokenHash, returnTo: flow.returnTo, client: client)
        }
    }

    func link(_ person: UpstreamPerson, provider: UpstreamProvider, to userID: UUID) async throws -> LinkedIdentity {
        if let existing = try await store.identity(providerID: provider.id, subject: person.subject) {
            guard existing.userID == userID else {
                throw FederationError.conflict(code: "identity_taken", "this \(provider.displayName) account is linked to another account already; unlink it there first")
            }
            return existing
        }
        let identity = LinkedIdentity(
            id: UUID(), userID: userID, providerID: provider.id, subject: person.subject, email: person.email, createdAt: now(), lastUsedAt: nil)
        _ = try await store.link(identity)
        return identity
    }

    /// A known identity signs in to its account. An unknown one makes an account only with a
    /// verified address no account holds, and only where signup is open (or with an invite
    /// for that address); an address some account holds means "sign in there and link".
    func signIn(_ person: UpstreamPerson, provider: UpstreamProvider, inviteTokenHash: String?, returnTo: String?, client: ClientInfo) async throws -> Arrival {
        if let known = try await store.identity(providerID: provider.id, subject: person.subject) {
            try await store.recordSignIn(known, email: person.email, now: now())
            let pair = try await auth.openSession(userID: known.userID, client: client)
            return .signedIn(pair, created: false, returnTo: returnTo, invited: inviteTokenHash != nil)
        }
        guard let email = person.verifiedEmail else {
            throw FederationError.upstream("\(provider.displayName) did not confirm that your e-mail address is verified, so no account can be made from it; verify it there, or sign up with a password")
        }
        if try await auth.users.credentials(email: email) != nil {
            throw FederationError.linkRequired(email: email, provider: provider.displayName)
        }
        if auth.signupMode == .inviteOnly, inviteTokenHash == nil { throw IdentityError.signupDisabled }
        let at = now()
        let name = (try? DisplayName.validate(person.name)) ?? ""
        let user = User(id: UUID(), email: email, name: name, emailVerified: true, isRoot: false, createdAt: at, updatedAt: at)
        let identity = LinkedIdentity(id: UUID(), userID: user.id, providerID: provider.id, subject: person.subject, email: person.email, createdAt: at, lastUsedAt: at)
        do {
            guard try await store.createUser(
                user, identity: identity, inviteTokenHash: inviteTokenHash, inviteLifetime: AuthService.inviteLifetime) != nil else {
                throw FederationError.invalid("the invitation is not valid for \(email) (or is used or expired)")
            }
        } catch IdentityError.emailTaken {
            throw FederationError.linkRequired(email: email, provider: provider.displayName)
        }
        let pair = try await auth.openSession(userID: user.id, client: client)
        return .signedIn(pair, created: true, returnTo: returnTo, invited: inviteTokenHash != nil)
    }

    // MARK: Linked identities

    /// An account's ways in: its linked identities (with their providers' names), whether it has
    /// a password, and the enabled providers it could link now (none before its address is proven,
    /// as `begin` requires).
    public struct SignInMethods: Sendable {
        public var identities: [LinkedIdentity]
        public var hasPassword: Bool
        public var providerNames: [String: String]
        public var linkable: [UpstreamProvider]
        /// Providers would be offered once the address is confirmed.
        public var linkNeedsProof: Bool

        public func providerName(_ identity: LinkedIdentity) -> String { providerNames[identity.providerID] ?? identity.providerID }
    }

    public func methods(userID: UUID) async throws -> SignInMethods {
        let identities = try await store.identities(userID: userID)
        let account = try await auth.users.credentials(id: userID)
        let providers = try await store.providers()
        let linked = Set(identities.map(\.providerID))
        let open = providers.filter { $0.enabled && !linked.contains($0.id) }
        let proven = account?.user.emailVerified ?? false
        return SignInMethods(
            identities: identities, hasPassword: account.map { !$0.passwordHash.isEmpty } ?? false,
            providerNames: Dictionary(providers.map { ($0.id, $0.displayName) }, uniquingKeysWith: { a, _ in a }),
            linkable: proven ? open : [], linkNeedsProof: !proven && !open.isEmpty)
    }

    public func unlink(userID: UUID, identityID: UUID) async throws -> Revision {
        switch try await store.unlink(identityID: identityID, userID: userID, now: now()) {
        case .unlinked(let revision): return revision
        case .notFound: throw FederationError.notFound("no such linked sign-in")
        case .lastCredential:
            throw FederationError.conflict(code: "last_credential", "this is the last way to sign in to the account; set a password or link another sign-in first")
        }
    }
}
