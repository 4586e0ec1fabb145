import Foundation
import Federation
import Identity
import Invites
import Keys
import NIOPosix
import Logging
import OpenID
import Policy
import Storage
import Tenancy
import Webhooks

extension AbuseLimits: InviteMailThrottle {}

/// The wired-up domain services of one node, shared by the HTTP app and the CLI.
public struct AppServices: Sendable {
    public let config: AppConfig
    public let database: any SQLDatabase
    public let store: SQLIdentityStore
    public let tokens: TokenService
    public let auth: AuthService
    public let changeFeed: ChangeFeed
    /// Applies the change log (other nodes' writes) to this node's memory; `at_least` reads through it.
    public let changes: ChangeApplier
    public let tenancy: TenancyService
    public let bindings: BindingService
    /// Groups and overrides (SPEC §17).
    public let groups: GroupService
    public let overrides: OverrideService
    public let policy: PolicyService
    public let policyStore: SQLPolicyStore
    public let backup: SQLBackup
    public let keys: KeyService
    /// OpenID clients (the relying parties of "Log in with Portcullis").
    public let clients: ClientService
    /// The OpenID provider's codes and consents.
    public let openID: OpenIDService
    /// Webhook endpoints (SPEC §16) and the delivery queue this node's `WebhookSender` works.
    public let webhooks: WebhookService
    public let webhookQueue: SQLWebhookStore
    let webhookSecrets: SealedWebhookSecrets
    /// Verifies presented API keys from memory and coalesces their `last_used_at` writes.
    public let keyVerifier: APIKeyVerifier
    /// Sign-in through upstream providers and linked identities (SPEC §15).
    public let federation: FederationService
    public let invites: InviteService
    public let outbox: SQLOutbox
    public let mailSender: OutboxSender
    /// Throttles for the credential endpoints (this node's memory).
    public let limits: AbuseLimits
    public let metrics: ServerMetrics
    /// `/v1/watch` streams, fed by the change follower.
    public let watch: WatchHub
    /// Threads for blocking SMTP sends (never the hashing pool); stopped with the app (`MailThreads`).
    public let mailThreads: NIOThreadPool
    /// The hosted pages' templates and stylesheets, loaded once.
    let pages: PageRenderer
    /// Signs and reads the pages' session cookie (a key derived from the master key).
    let sessionCookie: SessionCookie

    public var freshness: Freshness { Freshness(changes: changes, bound: config.maxStaleness) }

    /// Migrates the database, loads (or creates) signing keys, and creates the root admin from
    /// `PORTCULLIS_ROOT_EMAIL`/`PORTCULLIS_ROOT_PASSWORD` when there is none yet.
    public static func start(
        config: AppConfig, database: any SQLDatabase, logger: Logger,
        hasher: (any PasswordHasher)? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> AppServices {
        // Every store below goes through the deadline and breaker (503 instead of a hung request).
        let database = database as? GuardedDatabase ?? GuardedDatabase(database, timeout: config.databaseTimeout)
        var permissions = PermissionTable.builtIn
        if let file = config.policyFile {
            do {
                permissions = PermissionTable.withCustom(try PermissionFile.load(path: file))
            } catch {
                throw ConfigError(variable: "PORTCULLIS_POLICY_FILE", message: error.message)
            }
        }
        // Migrations may take long on a big database: no deadline for them.
        try await Migrator(dialect: database.dialect).migrate(database.base)
        let relay = ChangeRelay()
        let store = SQLIdentityStore(database: database, observer: relay.observer)
        let masterKey = try MasterKey.load(base64: config.masterKey, file: config.masterKeyFile, create: config.mayCreateInstance)
        let tokens = TokenService(
            settings: TokenSettings(
                issuer: config.issuer, audience: config.audience,
                accessTokenTTL: config.accessTokenTTL, refreshTokenTTL: config.refreshTokenTTL),
            store: store, sealer: try KeySealer(masterKey: masterKey))
        do {
            try await tokens.start(now: now())
        } catch KeySealerError.cannotOpen {
            throw ConfigError(
                variable: config.masterKey == nil ? "PORTCULLIS_MASTER_KEY_FILE" : "PORTCULLIS_MASTER_KEY",
                message: "this master key cannot decrypt the signing keys in the database: it is not the key they were sealed with (\(config.masterKey == nil ? config.masterKeyFile : "the value given"))")
        }
        var auth = AuthService(
            users: store, sessions: store, hasher: try hasher ?? Argon2idHasher(), tokens: tokens,
            sessionGuard: SessionGuard(store: store), signupMode: config.signup, now: now)
        auth.links = MailLinks(publicURL: config.publicURL)
        let keyVerifier = APIKeyVerifier(lookup: SQLKeyStore(database: database))
        let templates = try MailTemplates.load(directory: config.templatesDir)
        let mailThreads = NIOThreadPool(numberOfThreads: 2)
        mailThreads.start()
        if config.smtpURL == "log" {
            logger.warning("PORTCULLIS_SMTP_URL=log: mail is printed to this log, links and tokens included; for development only")
        }
        let mailer: any Mailer = config.smtpURL == "log"
            ? LogMailer(logger: logger)
            : try SMTPMailer(url: config.smtpURL, from: config.mailFrom, pool: mailThreads)
        let policy = PolicyService(cache: GrantCache(loader: SQLPolicyStore(database: database)), permissions: permissions, now: now)
        let applyRemote = Self.applier(auth: auth, policy: policy, keys: keyVerifier)
        let local = LocalChanges()
        let apply: ChangeObserver = { changes in
            await applyRemote(changes)
            local.note(changes)
        }
        relay.connect(apply)
        // The follower reads on a connection of its own, past the deadline and breaker: it is
        // how this node knows it is current (SPEC §18). On PostgreSQL it also listens, on one
        // more, for the commits that wake it.
        let feed = ChangeFeed(database: try await database.dedicated(), interval: config.changePollInterval, listen: config.changeNotifications)
        let watch = WatchHub(capacity: config.watchMaxStreams)
        let tenancyStore = SQLTenancyStore(database: database, observer: apply)
        var tenancy = TenancyService(store: tenancyStore, permissions: permissions, now: now)
        tenancy.maxOwnedOrgs = config.maxOrgsPerUser
        let policyStore = SQLPolicyStore(database: database, observer: apply)
        let groupStore = SQLGroupStore(database: database, observer: apply)
        let limits = AbuseLimits(settings: config.limits)
        var invites = InviteService(store: SQLInviteStore(database: database, observer: apply), tenancy: tenancy, links: auth.links, now: now)
        invites.throttle = limits
        let clients = ClientService(store: SQLClientStore(database: database, observer: apply), tenancy: tenancy, now: now)
        let webhookStore = SQLWebhookStore(database: database, observer: apply)
        let webhookSecrets = SealedWebhookSecrets(sealer: try KeySealer(masterKey: masterKey))
        let services = AppServices(
            config: config, database: database, store: store, tokens: tokens, auth: auth, changeFeed: feed,
            changes: ChangeApplier(feed: feed, from: try await feed.latestRevision(), local: local, tap: watch.publish, handle: applyRemote),
            tenancy: tenancy,
            bindings: BindingService(store: policyStore, tenancy: tenancy, quotas: config.bindingQuotas, now: now),
            groups: GroupService(store: groupStore, tenancy: tenancy, quotas: config.groupQuotas, now: now),
            overrides: OverrideService(store: groupStore, tenancy: tenancy, quotas: config.groupQuotas, now: now),
            policy: policy,
            policyStore: policyStore,
            // A whole export or restore is one long transaction: no per-operation deadline.
            backup: SQLBackup(database: database.base, observer: apply),
            keys: KeyService(store: SQLKeyStore(database: database, observer: apply), tenancy: tenancy, now: now),
            clients: clients,
            openID: OpenIDService(store: SQLGrantStore(database: database), clients: clients, now: now),
            webhooks: WebhookService(store: webhookStore, tenancy: tenancy, box: webhookSecrets, allowPrivate: config.webhookAllowPrivate, now: now),
            webhookQueue: webhookStore,
            webhookSecrets: webhookSecrets,
            keyVerifier: keyVerifier,
            federation: FederationService(
                store: SQLFederationStore(database: database, observer: apply), auth: auth, tenancy: tenancy,
                sealer: try KeySealer(masterKey: masterKey), http: UpstreamClient(), publicURL: config.publicURL, now: now),
            invites: invites,
            outbox: SQLOutbox(database: database),
            mailSender: OutboxSender(outbox: SQLOutbox(database: database), mailer: mailer, templates: templates, logger: logger, interval: config.outboxInterval),
            limits: limits,
            metrics: ServerMetrics(),
            watch: watch,
            mailThreads: mailThreads,
            pages: try await PageRenderer.load(brand: config.brand),
            sessionCookie: SessionCookie(masterKey: masterKey))
        if let email = config.rootEmail, let password = config.rootPassword {
            try await services.ensureRoot(email: email, password: password, logger: logger)
        }
        return services
    }

    /// Creates a root admin unless one exists. Returns the user when it created one.
    @discardableResult
    public func ensureRoot(email: String, password: String, logger: Logger) async throws -> User? {
        if try await store.rootExists() { return nil }
        do {
            let (user, _) = try await auth.signup(
                .init(email: email, password: password, name: "Administrator", isRoot: true, emailVerified: true), trusted: true)
            logger.notice("created the root administrator", metadata: ["email": "\(user.email)"])
            return user
        } catch IdentityError.emailTaken {
            logger.warning("root e-mail belongs to an existing non-root account; no root created", metadata: ["email": "\(email)"])
            return nil
        }
    }

    /// Applies changes (this node's own, right after commit, and other nodes' from the change
    /// log) to the in-memory state: session liveness, signing keys, cached users and grants.
    public func apply(_ changes: [Change]) async {
        await Self.applier(auth: auth, policy: policy, keys: keyVerifier)(changes)
    }

    static func applier(auth: AuthService, policy: PolicyService, keys: APIKeyVerifier) -> ChangeObserver {
        // Each owner of in-memory state applies the events that concern it.
        { changes in
            let events = changes.map(\.event)
            // Revocations first: they cost no read, and the grant cache's patches read the database.
            for event in events { keys.apply(event) }
            await auth.apply(events)
            await policy.apply(events)
        }
    }
}

extension AppServices: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "AppServices(\(config))" }
    public var debugDescription: String { description }
}
