import Authority
import Crypto
import Federation
import Foundation
import Identity
import Server
import Storage
import Tenancy
import Testing

/// The account rules of federated sign-in (SPEC §15) on both backends, against an OpenID
/// provider in process (`UpstreamPeer`): first sign-in, no silent linking, invitations, linking,
/// the last credential, and the flow's single use and browser binding.
@Suite struct FederationTests {
    struct Rig {
        let services: AppServices
        let federation: FederationService
        let peer: UpstreamPeer
        let root: Actor

        var client: ClientInfo { ClientInfo(userAgent: "federation-tests", ip: "127.0.0.1") }

        /// One trip out and back, as a browser makes it (the cookie holds the state).
        func trip(intent: UpstreamFlow.Intent = .signIn(inviteTokenHash: nil), signedIn: UUID? = nil, returnTo: String? = nil) async throws -> FederationService.Arrival {
            let departure = try await federation.begin(providerID: "op", intent: intent, returnTo: returnTo, signedInAt: Date())
            let (code, state) = try peer.authorize(departure.location)
            return try await federation.complete(
                providerID: "op", code: code, state: state, cookieState: departure.state, upstreamError: nil, signedIn: signedIn, client: client)
        }

        func users(_ email: String) async throws -> Int64 {
            try await services.database.queryFirst("SELECT COUNT(*) AS n FROM users WHERE email = $1", email)?.int("n") ?? -1
        }

        func identityCount() async throws -> Int64 {
            try await services.database.queryFirst("SELECT COUNT(*) AS n FROM user_identities")?.int("n") ?? -1
        }

        func audits(_ action: String) async throws -> Int64 {
            try await services.database.queryFirst("SELECT COUNT(*) AS n FROM audit_events WHERE action = $1", action)?.int("n") ?? -1
        }

        func passwordUser(_ email: String) async throws -> User {
            try await services.auth.signup(.init(email: email, password: "a-long-password-1", emailVerified: true), trusted: true).0
        }
    }

    func withRig(
        _ backend: Backend, signup: SignupMode = .open, person: UpstreamPeer.Person? = nil, peer given: UpstreamPeer? = nil,
        sealingKey: Data = Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }), restoring backup: BackupDocument? = nil,
        _ body: (Rig) async throws -> Void
    ) async throws {
        try await withServices(backend, configure: { $0.signup = signup }) { services in
            let (rootUser, _) = try await services.auth.signup(
                .init(email: "root@example.com", password: "root-password-1", isRoot: true, emailVerified: true), trusted: true)
            let peer = given ?? UpstreamPeer(person ?? .init(subject: "op-subject-1", email: "Ada@Example.com", verified: true))
            let federation = FederationService(
                store: SQLFederationStore(database: services.database), auth: services.auth, tenancy: services.tenancy,
                sealer: try KeySealer(masterKey: sealingKey), http: peer, publicURL: "http://portcullis.test")
            let root = Actor.user(rootUser.id, isRoot: true)
            if let backup {
                _ = try await services.backup.restore(backup, actor: root)
            } else {
                _ = try await federation.createProvider(actor: root, ProviderInput(
                    id: "op", kind: "oidc", displayName: "Example OP", clientID: peer.clientID, clientSecret: peer.clientSecret, issuer: peer.issuer))
            }
            try await body(Rig(services: services, federation: federation, peer: peer, root: root))
        }
    }

    @Test(arguments: Backend.allCases)
    func firstSignInMakesTheAccountAndTheSecondFindsIt(_ backend: Backend) async throws {
        try await withRig(backend) { rig in
            guard case .signedIn(let first, let created, _, _) = try await rig.trip() else { Issue.record("not signed in"); return }
            #expect(created)
            #expect(first.user.email == "ada@example.com")
            #expect(first.user.emailVerified)
            #expect(try await rig.services.store.credentials(id: first.user.id)?.passwordHash == "")
            guard case .signedIn(let second, let again, _, _) = try await rig.trip() else { Issue.record("not signed in"); return }
            #expect(!again)
            #expect(second.user.id == first.user.id)
            #expect(second.sessionID != first.sessionID)
            #expect(try await rig.identityCount() == 1)
            #expect(try await rig.audits("identity.signed_in") == 2)
            #expect(try await rig.audits("identity.linked") == 1)
            // The session behaves like a password session: refresh, then logout ends it.
            let refreshed = try await rig.services.auth.refresh(second.refreshToken)
            _ = try await rig.services.auth.logout(userID: second.user.id, sessionID: second.sessionID, all: false)
            await #expect(throws: IdentityError.self) { _ = try await rig.services.auth.refresh(refreshed.refreshToken) }
            // An account made upstream has no password: no password opens it, the empty one included.
            for guess in ["", "a-long-password-1"] {
                await #expect(throws: IdentityError.invalidCredentials) {
                    _ = try await rig.services.auth.login(email: "ada@example.com", password: guess, client: rig.client)
                }
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func anUnverifiedAddressMakesNoAccount(_ backend: Backend) async throws {
        try await withRig(backend, person: .init(subject: "s-unverified", email: "eve@example.com", verified: false)) { (rig: Rig) async throws in
            await #expect(throws: FederationError.self) { _ = try await rig.trip() }
            #expect(try await rig.users("eve@example.com") == 0)
            #expect(try await rig.identityCount() == 0)
        }
    }

    @Test(arguments: Backend.allCases)
    func anAddressAnAccountHoldsIsNeverLinkedSilently(_ backend: Backend) async throws {
        try await withRig(backend) { rig in
            let owner = try await rig.passwordUser("ada@example.com")
            await #expect(throws: FederationError.linkRequired(email: "ada@example.com", provider: "Example OP")) { _ = try await rig.trip() }
            #expect(try await rig.identityCount() == 0)
            #expect(try await rig.users("ada@example.com") == 1)
            // Signed in to the account, the person links it; then the upstream signs in to it.
            guard case .linked(let identity, _, _) = try await rig.trip(intent: .link(userID: owner.id), signedIn: owner.id) else {
                Issue.record("not linked"); return
            }
            #expect(identity.userID == owner.id)
            guard case .signedIn(let pair, let created, _, _) = try await rig.trip() else { Issue.record("not signed in"); return }
            #expect(!created)
            #expect(pair.user.id == owner.id)
        }
    }

    @Test(arguments: Backend.allCases)
    func linkingNeedsTheSameSignedInAccountAndAFreeIdentity(_ backend: Backend) async throws {
        try await withRig(backend) { rig in
            let ada = try await rig.passwordUser("ada.other@example.com")
            let bob = try await rig.passwordUser("bob@example.com")
            // Signed out (or signed in as someone else) by the time the browser comes back: refused.
            await #expect(throws: FederationError.self) { _ = try await rig.trip(intent: .link(userID: ada.id), signedIn: nil) }
            await #expect(throws: FederationError.self) { _ = try await rig.trip(intent: .link(userID: ada.id), signedIn: bob.id) }
            #expect(try await rig.identityCount() == 0)
            _ = try await rig.trip(intent: .link(userID: ada.id), signedIn: ada.id)
            // The same upstream account cannot be linked to a second account.
            await #expect(throws: FederationError.conflict(code: "identity_taken", "this Example OP account is linked to another account already; unlink it there first")) {
                _ = try await rig.trip(intent: .link(userID: bob.id), signedIn: bob.id)
            }
            #expect(try await rig.federation.methods(userID: bob.id).identities.isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func inviteOnlyNeedsAnInviteForTheAddress(_ backend: Backend) async throws {
        try await withRig(backend, signup: .inviteOnly) { rig in
            await #expect(throws: IdentityError.signupDisabled) { _ = try await rig.trip() }
            #expect(try await rig.users("ada@example.com") == 0)
            // An invitation for another address does not do.
            _ = try await rig.services.invites.createPlatformInvite(by: rig.root, email: "someone@example.com", orgInvites: [])
            let other = try await rig.services.mailedToken(to: "someone@example.com", template: "platform_invite")
            await #expect(throws: FederationError.self) { _ = try await rig.trip(intent: .signIn(inviteTokenHash: Secrets.hash(other))) }
            #expect(try await rig.users("ada@example.com") == 0)
            _ = try await rig.services.invites.createPlatformInvite(by: rig.root, email: "ada@example.com", orgInvites: [])
            let token = try await rig.services.mailedToken(to: "ada@example.com", template: "platform_invite")
            guard case .signedIn(let pair, let created, _, let invited) = try await rig.trip(intent: .signIn(inviteTokenHash: Secrets.hash(token))) else {
                Issue.record("not signed in"); return
            }
            #expect(created && invited)
            #expect(pair.user.email == "ada@example.com")
        }
    }

    @Test(arguments: Backend.allCases)
    func theLastWayToSignInStays(_ backend: Backend) async throws {
        try await withRig(backend) { rig in
            guard case .signedIn(let pair, _, _, _) = try await rig.trip() else { Issue.record("not signed in"); return }
            let only = try #require(try await rig.federation.methods(userID: pair.user.id).identities.first)
            await #expect(throws: FederationError.conflict(code: "last_credential", "this is the last way to sign in to the account; set a password or link another sign-in first")) {
                _ = try await rig.federation.unlink(userID: pair.user.id, identityID: only.id)
            }
            // Somebody else cannot unlink it either (it is not theirs: 404, nothing done).
            let bob = try await rig.passwordUser("bob@example.com")
            await #expect(throws: FederationError.notFound("no such linked sign-in")) { _ = try await rig.federation.unlink(userID: bob.id, identityID: only.id) }
            // With a second identity, two unlinks at once: exactly one passes, one way in stays.
            rig.peer.person.withLock { $0.subject = "op-subject-2" }
            _ = try await rig.trip(intent: .link(userID: pair.user.id), signedIn: pair.user.id)
            let both = try await rig.federation.methods(userID: pair.user.id).identities
            #expect(both.count == 2)
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for identity in both {
                    group.addTask { (try? await rig.federation.unlink(userID: pair.user.id, identityID: identity.id)) != nil }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1)
            #expect(try await rig.federation.methods(userID: pair.user.id).identities.count == 1)
            #expect(try await rig.audits("identity.unlinked") == 1)
            // A password account may unlink its only identity.
            let carol = try await rig.passwordUser("carol@example.com")
            rig.peer.person.withLock { $0.subject = "op-subject-3" }
            guard case .linked(let linked, _, _) = try await rig.trip(intent: .link(userID: carol.id), signedIn: carol.id) else { Issue.record("not linked"); return }
            _ = try await rig.federation.unlink(userID: carol.id, identityID: linked.id)
            #expect(try await rig.federation.methods(userID: carol.id).identities.isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func aFlowWorksOnceAndOnlyInTheBrowserThatStartedIt(_ backend: Backend) async throws {
        try await withRig(backend) { rig in
            let departure = try await rig.federation.begin(providerID: "op", intent: .signIn(inviteTokenHash: nil), returnTo: "/account/orgs")
            let (code, state) = try rig.peer.authorize(departure.location)
            func complete(state: String?, cookie: String?) async throws -> FederationService.Arrival {
                try await rig.federation.complete(providerID: "op", code: code, state: state, cookieState: cookie, upstreamError: nil, signedIn: nil, client: rig.client)
            }
            // Another browser (no cookie, or its own) and a forged state get nowhere, and spend nothing.
            await #expect(throws: FederationError.self) { _ = try await complete(state: state, cookie: nil) }
            await #expect(throws: FederationError.self) { _ = try await complete(state: state, cookie: Secrets.token()) }
            await #expect(throws: FederationError.self) { _ = try await complete(state: Secrets.token(), cookie: departure.state) }
            #expect(rig.peer.tokenRequests.load(ordering: .relaxed) == 0)
            guard case .signedIn(_, _, let back, _) = try await complete(state: state, cookie: departure.state) else { Issue.record("not signed in"); return }
            #expect(back == "/account/orgs")
            // The same callback again: the flow is spent.
            await #expect(throws: FederationError.self) { _ = try await complete(state: state, cookie: departure.state) }
            #expect(rig.peer.tokenRequests.load(ordering: .relaxed) == 1)
        }
    }

    @Test(arguments: [UpstreamPeer.Tamper.otherAudience, .otherKey, .otherNonce, .expired, .otherIssuer])
    func anIDTokenThatDoesNotCheckOutSignsNobodyIn(_ tamper: UpstreamPeer.Tamper) async throws {
        try await withRig(.sqlite) { (rig: Rig) async throws in
            rig.peer.tamper.withLock { $0 = tamper }
            await #expect(throws: FederationError.self) { _ = try await rig.trip() }
            #expect(try await rig.users("ada@example.com") == 0)
            #expect(try await rig.identityCount() == 0)
            #expect(try await rig.services.database.queryFirst("SELECT COUNT(*) AS n FROM sessions")?.int("n") == 0)
        }
    }

    @Test(arguments: Backend.allCases)
    func providersAreTheRootsAndTheirSecretsStaySealed(_ backend: Backend) async throws {
        try await withRig(backend) { rig in
            let bob = try await rig.passwordUser("bob@example.com")
            await #expect(throws: TenancyError.self) { _ = try await rig.federation.providers(actor: .user(bob.id, isRoot: false)) }
            let stored = try #require(try await rig.federation.store.provider(id: "op"))
            #expect(!stored.sealedSecret.contains(rig.peer.clientSecret))
            // Bad input is refused and writes nothing.
            for bad in [
                ProviderInput(id: "Op!", kind: "oidc", clientID: "c", clientSecret: "s", issuer: "https://x.test"),
                ProviderInput(id: "x", kind: "saml", clientID: "c", clientSecret: "s"),
                ProviderInput(id: "x", kind: "oidc", clientID: "c", clientSecret: "s"),
                ProviderInput(id: "x", kind: "oidc", clientID: "c", clientSecret: "s", issuer: "ftp://x.test"),
                ProviderInput(id: "x", kind: "github", clientID: "c", clientSecret: "s", issuer: "https://x.test"),
                ProviderInput(id: "x", kind: "oidc", clientID: "c", clientSecret: "s", scopes: ["email"], issuer: "https://x.test"),
            ] {
                await #expect(throws: FederationError.self) { _ = try await rig.federation.createProvider(actor: rig.root, bad) }
            }
            #expect(try await rig.federation.providers(actor: rig.root).map(\.id) == ["op"])
            await #expect(throws: FederationError.self) {
                _ = try await rig.federation.createProvider(actor: rig.root, ProviderInput(id: "op", kind: "google", clientID: "c", clientSecret: "s"))
            }
            // A disabled provider starts nothing; deleting it takes its identities.
            _ = try await rig.trip()
            _ = try await rig.federation.updateProvider(actor: rig.root, id: "op", ProviderInput(enabled: false))
            await #expect(throws: FederationError.self) { _ = try await rig.trip() }
            _ = try await rig.federation.deleteProvider(actor: rig.root, id: "op")
            #expect(try await rig.identityCount() == 0)
            #expect(try await rig.audits("identity_provider.deleted") == 1)
        }
    }

    /// Accounts made upstream (no password) and their linked identities survive a backup and
    /// a restore on the other backend; the providers come along, and sign in to the same account.
    @Test(arguments: [(Backend.sqlite, Backend.postgres), (.postgres, .sqlite)])
    func federatedAccountsSurviveABackup(_ from: Backend, _ to: Backend) async throws {
        let key = Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let peer = UpstreamPeer(.init(subject: "op-subject-1", email: "ada@example.com", verified: true))
        var document: BackupDocument?
        var userID: UUID?
        try await withRig(from, peer: peer, sealingKey: key) { rig in
            guard case .signedIn(let pair, _, _, _) = try await rig.trip() else { Issue.record("not signed in"); return }
            userID = pair.user.id
            document = try await rig.services.backup.export(actor: rig.root)
        }
        let backup = try #require(document)
        #expect(backup.identityProviders?.map(\.id) == ["op"])
        #expect(backup.userIdentities?.count == 1)
        #expect(backup.users.contains { $0.passwordHash.isEmpty })
        try await withRig(to, peer: peer, sealingKey: key, restoring: backup) { rig in
            guard case .signedIn(let pair, let created, _, _) = try await rig.trip() else { Issue.record("not signed in"); return }
            #expect(!created)
            #expect(pair.user.id == userID)
        }
    }

    /// Linking adds a way in: not for an account whose address is unproven (a squatter's link
    /// would outlive the owner's reset), and only soon after signing in.
    @Test(arguments: Backend.allCases)
    func linkingNeedsAProvenAddressAndAFreshSignIn(_ backend: Backend) async throws {
        try await withRig(backend) { rig in
            let squatter = try await rig.services.auth.signup(.init(email: "ada@example.com", password: "a-long-password-1"), trusted: true).0
            await #expect(throws: FederationError.forbidden("confirm your e-mail address before linking another way to sign in")) {
                _ = try await rig.federation.begin(providerID: "op", intent: .link(userID: squatter.id), returnTo: nil, signedInAt: Date())
            }
            let owner = try await rig.passwordUser("bob@example.com")
            for stale in [nil, Date().addingTimeInterval(-FederationService.linkWindow - 5)] {
                await #expect(throws: FederationError.self) {
                    _ = try await rig.federation.begin(providerID: "op", intent: .link(userID: owner.id), returnTo: nil, signedInAt: stale)
                }
            }
            #expect(try await rig.services.database.queryFirst("SELECT COUNT(*) AS n FROM upstream_flows")?.int("n") == 0)
            _ = try await rig.federation.begin(providerID: "op", intent: .link(userID: owner.id), returnTo: nil, signedInAt: Date().addingTimeInterval(-60))
        }
    }

    /// A subject is unique only at its issuer: while accounts are linked through a provider, it
    /// cannot be pointed at another one. GitHub Enterprise's API is found under its web URL.
    @Test(arguments: Backend.allCases)
    func aProviderInUseKeepsItsIssuer(_ backend: Backend) async throws {
        try await withRig(backend) { rig in
            _ = try await rig.federation.updateProvider(actor: rig.root, id: "op", ProviderInput(issuer: "https://other.example.test"))
            _ = try await rig.federation.updateProvider(actor: rig.root, id: "op", ProviderInput(issuer: rig.peer.issuer))
            _ = try await rig.trip()
            await #expect(throws: FederationError.self) {
                _ = try await rig.federation.updateProvider(actor: rig.root, id: "op", ProviderInput(issuer: "https://other.example.test"))
            }
            #expect(try await rig.federation.provider(actor: rig.root, id: "op").issuer == rig.peer.issuer)
            // Other fields still change.
            _ = try await rig.federation.updateProvider(actor: rig.root, id: "op", ProviderInput(displayName: "Renamed"))
            let (ghe, _) = try await rig.federation.createProvider(actor: rig.root, ProviderInput(
                id: "ghe", kind: "github", clientID: "c", clientSecret: "s", webBaseURL: "https://git.example.test/"))
            #expect(ghe.webBaseURL == "https://git.example.test" && ghe.apiBaseURL == "https://git.example.test/api/v3")
            let (gh, _) = try await rig.federation.createProvider(actor: rig.root, ProviderInput(id: "gh", kind: "github", clientID: "c", clientSecret: "s"))
            #expect(gh.apiBaseURL == "https://api.github.com")
        }
    }
}
