/// Every environment variable `serve` reads, with its default and meaning in a few words:
/// `portcullis serve --help` lists them, and a test holds this list, `AppConfig.fromEnvironment`
/// and the README's configuration table to the same set of names.
public struct ConfigVariable: Sendable {
    public let name: String
    public let defaultValue: String
    public let meaning: String
}

extension AppConfig {
    public static let variables: [ConfigVariable] = [
        .init(name: "PORTCULLIS_DATABASE_URL", defaultValue: "sqlite:./data/portcullis.db", meaning: "SQLite file, or postgres://user:pass@host:5432/db"),
        .init(name: "PORTCULLIS_HOST", defaultValue: "127.0.0.1", meaning: "address to listen on"),
        .init(name: "PORTCULLIS_PORT", defaultValue: "8080", meaning: "port to listen on"),
        .init(name: "PORTCULLIS_PUBLIC_URL", defaultValue: "http://localhost:<PORT>", meaning: "URL clients reach the server at (links in mail, discovery)"),
        .init(name: "PORTCULLIS_ISSUER", defaultValue: "the public URL", meaning: "iss of access tokens"),
        .init(name: "PORTCULLIS_AUDIENCE", defaultValue: "the issuer", meaning: "aud of access tokens"),
        .init(name: "PORTCULLIS_ACCESS_TOKEN_TTL", defaultValue: "15m", meaning: "access token lifetime (900, 15m, 1h)"),
        .init(name: "PORTCULLIS_REFRESH_TOKEN_TTL", defaultValue: "30d", meaning: "refresh token lifetime"),
        .init(name: "PORTCULLIS_SIGNUP", defaultValue: "open", meaning: "open or invite_only"),
        .init(name: "PORTCULLIS_ROOT_EMAIL", defaultValue: "admin@portcullis.local", meaning: "root admin made on first start"),
        .init(name: "PORTCULLIS_ROOT_PASSWORD", defaultValue: "generated, printed once", meaning: "its password"),
        .init(name: "PORTCULLIS_MASTER_KEY", defaultValue: "-", meaning: "base64 of 32 bytes; seals the signing keys"),
        .init(name: "PORTCULLIS_MASTER_KEY_FILE", defaultValue: "./data/master.key", meaning: "the master key's file when PORTCULLIS_MASTER_KEY is unset"),
        .init(name: "PORTCULLIS_LOG_FORMAT", defaultValue: "text", meaning: "text or json"),
        .init(name: "PORTCULLIS_LOG_LEVEL", defaultValue: "info", meaning: "trace, debug, info, notice, warning, error, critical"),
        .init(name: "PORTCULLIS_POLICY_FILE", defaultValue: "-", meaning: "custom permissions (YAML or JSON)"),
        .init(name: "PORTCULLIS_CHANGE_POLL_MS", defaultValue: "50", meaning: "how often the change log is read for other nodes' writes"),
        .init(name: "PORTCULLIS_KEY_USAGE_FLUSH_SECONDS", defaultValue: "10", meaning: "how often API keys' last_used_at is written"),
        .init(name: "PORTCULLIS_SIGNING_KEY_ROTATION_DAYS", defaultValue: "- (by hand)", meaning: "rotate the signing key at this age"),
        .init(name: "PORTCULLIS_SMTP_URL", defaultValue: "log", meaning: "log, smtp://[user:pass@]host[:port] or smtps://..."),
        .init(name: "PORTCULLIS_MAIL_FROM", defaultValue: "Portcullis <portcullis@localhost>", meaning: "sender of every mail"),
        .init(name: "PORTCULLIS_TEMPLATES_DIR", defaultValue: "- (built in)", meaning: "mail templates overriding the built-in ones"),
        .init(name: "PORTCULLIS_CORS_ORIGINS", defaultValue: "- (none)", meaning: "browser origins allowed to call the API"),
        .init(name: "PORTCULLIS_TRUSTED_PROXIES", defaultValue: "-", meaning: "proxies whose X-Forwarded-For is believed"),
        .init(name: "PORTCULLIS_IP_BURST", defaultValue: "50", meaning: "sign-in requests one address may make at once"),
        .init(name: "PORTCULLIS_IP_PER_MINUTE", defaultValue: "60", meaning: "how fast that allowance refills"),
        .init(name: "PORTCULLIS_ACCOUNT_FAILURES_PER_HOUR", defaultValue: "100", meaning: "failed logins per account per hour"),
        .init(name: "PORTCULLIS_RESET_MAILS_PER_HOUR", defaultValue: "5", meaning: "reset (and verification) mails per address per hour"),
        .init(name: "PORTCULLIS_CODE_MAILS_PER_HOUR", defaultValue: "5", meaning: "sign-in code requests per address per hour"),
        .init(name: "PORTCULLIS_INVITE_MAILS_PER_ORG_PER_HOUR", defaultValue: "200", meaning: "invite mails per org per hour"),
        .init(name: "PORTCULLIS_INVITE_MAILS_PER_RECIPIENT_PER_HOUR", defaultValue: "10", meaning: "invite mails per recipient per hour"),
        .init(name: "PORTCULLIS_PASSWORD_GUESSES_PER_SESSION_PER_HOUR", defaultValue: "5", meaning: "wrong current_password answers per session per hour"),
        .init(name: "PORTCULLIS_PASSWORD_GUESSES_PER_ACCOUNT_PER_HOUR", defaultValue: "20", meaning: "the same, per account"),
        .init(name: "PORTCULLIS_METRICS_TOKEN", defaultValue: "- (root only)", meaning: "bearer token that may read /metrics"),
        .init(name: "PORTCULLIS_MAX_STALENESS_MS", defaultValue: "2000", meaning: "lag after which memory is not trusted"),
        .init(name: "PORTCULLIS_MAX_ORGS_PER_USER", defaultValue: "100", meaning: "orgs one user may own"),
        .init(name: "PORTCULLIS_WRITES_PER_USER_PER_MINUTE", defaultValue: "600", meaning: "writes per user or service account per minute"),
        .init(name: "PORTCULLIS_WATCH_MAX_STREAMS", defaultValue: "100", meaning: "/v1/watch streams per node"),
        .init(name: "PORTCULLIS_DATABASE_TIMEOUT_MS", defaultValue: "5000", meaning: "deadline of one database operation"),
        .init(name: "PORTCULLIS_MAX_BINDINGS_PER_ORG", defaultValue: "10000", meaning: "role bindings per org"),
        .init(name: "PORTCULLIS_MAX_BINDINGS_PER_PRINCIPAL", defaultValue: "1000", meaning: "role bindings per principal in an org"),
        .init(name: "PORTCULLIS_MAX_GROUPS_PER_ORG", defaultValue: "1000", meaning: "groups per org"),
        .init(name: "PORTCULLIS_MAX_OVERRIDES_PER_ORG", defaultValue: "10000", meaning: "overrides per org"),
        .init(name: "PORTCULLIS_BRAND_NAME", defaultValue: "Portcullis", meaning: "product name on the hosted pages"),
        .init(name: "PORTCULLIS_BRAND_LOGO_URL", defaultValue: "- (none)", meaning: "logo on the hosted pages (https URL or a path here)"),
        .init(name: "PORTCULLIS_BRAND_COLOR", defaultValue: "#3b5bdb", meaning: "accent colour of the hosted pages"),
        .init(name: "PORTCULLIS_WEBHOOK_ALLOW_PRIVATE", defaultValue: "false", meaning: "true lets webhooks reach http and private addresses (tests)"),
        .init(name: "PORTCULLIS_WEBHOOK_POLL_MS", defaultValue: "500", meaning: "how often an idle node looks for due webhook deliveries"),
        .init(name: "PORTCULLIS_WEBHOOK_FIRST_RETRY_MS", defaultValue: "5000", meaning: "wait after a delivery's first failure (then doubling)"),
        .init(name: "PORTCULLIS_CLIENT_TIMEOUT_SECONDS", defaultValue: "30", meaning: "idle or stalled connections close after this"),
    ]

    /// The variables as `serve --help` shows them: a name, then its meaning and default indented.
    public static var variablesHelp: String {
        "Environment (the README's Configuration section has the details):\n" + variables.map {
            "  \($0.name)\n      \($0.meaning) [default: \($0.defaultValue)]"
        }.joined(separator: "\n")
    }
}
