import Foundation
import Identity
import Logging
import Storage
import Tenancy

/// The wired-up domain services of one node, shared by the HTTP app and the CLI.
public struct AppServices: Sendable {
    public let config: AppConfig
    public let database: any SQLDatabase
    public let store: SQLIdentityStore
    public let tokens: TokenService
    public let auth: AuthService
    public let changeFeed: ChangeFeed
    public let tenancy: TenancyService
    public let backup: SQLBackup

    /// Migrates the database, loads (or creates) signing keys, and creates the root admin from
    /// `PORTCULLIS_ROOT_EMAIL`/`PORTCULLIS_ROOT_PASSWORD` when there is none yet.
    public static func start(
        config: AppConfig, database: any SQLDatabase, logger: Logger,
        hasher: (any PasswordHasher)? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> AppServices {
        try await Migrator(dialect: database.dialect).migrate(database)
        let store = SQLIdentityStore(database: database)
        let masterKey: Data
        do {
            masterKey = try KeySealer.masterKey(base64: config.masterKey, file: config.masterKeyFile)
        } catch let error as KeySealerError {
            throw ConfigError(variable: config.masterKey == nil ? "PORTCULLIS_MASTER_KEY_FILE" : "PORTCULLIS_MASTER_KEY", message: error.description)
        }
        let tokens = TokenService(
            settings: TokenSettings(
                issuer: config.issuer, audience: config.audience,
                accessTokenTTL: config.accessTokenTTL, refreshTokenTTL: config.refreshTokenTTL),
            store: store, sealer: try KeySealer(masterKey: masterKey))
        do {
            try await tokens.start(now: now())
        } catch KeySealerError.cannotOpen {
            throw ConfigError(variable: "PORTCULLIS_MASTER_KEY", message: KeySealerError.cannotOpen.description)
        }
        let auth = AuthService(
            users: store, sessions: store, hasher: try hasher ?? Argon2idHasher(), tokens: tokens,
            sessionGuard: SessionGuard(store: store), signupMode: config.signup, now: now)
        let services = AppServices(
            config: config, database: database, store: store, tokens: tokens, auth: auth,
            changeFeed: ChangeFeed(database: database, interval: config.changePollInterval),
            tenancy: TenancyService(store: SQLTenancyStore(database: database), now: now),
            backup: SQLBackup(database: database))
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

    /// Applies changes made by other nodes (or processes) to this node's in-memory state.
    public func apply(_ changes: [Change]) async {
        var revoked: [UUID] = []
        var keysChanged = false
        for change in changes {
            switch change.kind {
            case ChangeKind.sessionRevoked:
                if let id = UUID(uuidString: change.subject) { revoked.append(id) }
            case ChangeKind.signingKeysChanged:
                keysChanged = true
            default:
                break
            }
        }
        auth.sessionGuard.sessionsRevoked(revoked)
        if keysChanged { try? await tokens.reload() }
    }
}
