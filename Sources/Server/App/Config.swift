import Foundation
import Identity
import Policy
import Storage

/// A configuration problem; start-up stops with this one line.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let variable: String
    public let message: String
    public var description: String { "\(variable): \(message)" }
}

public enum LogFormat: String, Sendable { case text, json }

/// Everything `serve` needs, read from `PORTCULLIS_*` environment variables.
public struct AppConfig: Sendable {
    public var databaseURL = "sqlite:./data/portcullis.db"
    public var host = "127.0.0.1"
    public var port = 8080
    public var publicURL = "http://localhost:8080"
    public var issuer = "http://localhost:8080"
    public var audience = "http://localhost:8080"
    public var accessTokenTTL: Duration = .seconds(900)
    public var refreshTokenTTL: Duration = .seconds(30 * 86_400)
    public var signup = SignupMode.open
    public var rootEmail: String?
    public var rootPassword: String?
    public var masterKey: String?
    /// How the hosted pages present the product (`PORTCULLIS_BRAND_NAME`, `_LOGO_URL`, `_COLOR`).
    public var brand = Brand()
    /// Whether this process may make a new instance: a database and its master key (`serve`,
    /// `migrate`, `restore`), or only act on one that exists (the admin commands).
    public var mayCreateInstance = true
    public var masterKeyFile = "./data/master.key"
    public var logFormat = LogFormat.text
    public var logLevel = "info"
    /// How often the change log is polled for writes made by other nodes.
    public var changePollInterval: Duration = .milliseconds(50)
    /// Whether a PostgreSQL node listens for commit notifications besides polling (no variable: tests turn it off to stall a node).
    public var changeNotifications = true
    /// How far behind the change log this node's memory may be before credentials and
    /// decisions are read through the database (`PORTCULLIS_MAX_STALENESS_MS`, SPEC §18).
    public var maxStaleness: Duration = .milliseconds(2000)
    /// `/v1/watch` streams this node serves at once (`PORTCULLIS_WATCH_MAX_STREAMS`).
    public var watchMaxStreams = 100
    /// Orgs one user may own (`PORTCULLIS_MAX_ORGS_PER_USER`); creating one more is 409.
    public var maxOrgsPerUser = 100
    /// How often API keys' `last_used_at` is written (`PORTCULLIS_KEY_USAGE_FLUSH_SECONDS`).
    public var keyUsageFlushInterval: Duration = .seconds(10)
    /// Rotate the signing key when the active one is older than this (`PORTCULLIS_SIGNING_KEY_ROTATION_DAYS`); nil: only by hand.
    public var signingKeyRotation: Duration?
    /// `log` (print mail to the log) or `smtp://[user:pass@]host[:port]` / `smtps://…`.
    public var smtpURL = "log"
    public var mailFrom = "Portcullis <portcullis@localhost>"
    /// A directory of mail templates overriding the built-in ones.
    public var templatesDir: String?
    /// How often the outbox is checked for due mail.
    public var outboxInterval: Duration = .seconds(1)
    /// Webhooks may go to http URLs and private, loopback or link-local addresses
    /// (`PORTCULLIS_WEBHOOK_ALLOW_PRIVATE`; tests and closed networks only).
    public var webhookAllowPrivate = false
    /// How often an idle node looks for due webhook deliveries (`PORTCULLIS_WEBHOOK_POLL_MS`).
    public var webhookInterval: Duration = .milliseconds(500)
    /// The wait after a delivery's first failure (`PORTCULLIS_WEBHOOK_FIRST_RETRY_MS`); each next
    /// wait doubles, up to six hours, for 24 attempts.
    public var webhookFirstRetry: Duration = .seconds(5)
    /// Custom permissions (`PORTCULLIS_POLICY_FILE`), YAML or JSON.
    public var policyFile: String?
    /// Browser origins allowed to call the API (`PORTCULLIS_CORS_ORIGINS`); empty: no CORS headers.
    public var corsOrigins: [String] = []
    /// The bearer token Prometheus sends to read `/metrics` (`PORTCULLIS_METRICS_TOKEN`); without
    /// one only the root may read it. Metrics are not public: counts can tell things apart.
    public var metricsToken: String?
    /// Peers whose `X-Forwarded-For` is believed (`PORTCULLIS_TRUSTED_PROXIES`).
    public var trustedProxies: [IPRange] = []
    /// Abuse limits on the credential endpoints (login, signup, password reset, invite claim).
    public var limits = AbuseLimits.Settings()
    /// Bindings per org and per principal in an org (`PORTCULLIS_MAX_BINDINGS_PER_ORG`,
    /// `PORTCULLIS_MAX_BINDINGS_PER_PRINCIPAL`); a write past them is 409 `quota_exceeded`.
    public var bindingQuotas = BindingQuotas()
    /// Groups and overrides per org (`PORTCULLIS_MAX_GROUPS_PER_ORG`, `PORTCULLIS_MAX_OVERRIDES_PER_ORG`).
    public var groupQuotas = GroupQuotas()
    /// Deadline for one database operation (`PORTCULLIS_DATABASE_TIMEOUT_MS`); then 503.
    public var databaseTimeout: Duration = .seconds(5)
    /// A connection that sends nothing for this long is closed: idle keep-alives, and clients that
    /// stall in the middle of a request head or body. (A body trickled a byte at a time just
    /// inside this interval still holds its connection; the 64 KiB body limit bounds how long.)
    public var clientTimeout: Duration = .seconds(30)

    public init() {}

    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> AppConfig {
        var c = AppConfig()
        func value(_ key: String) -> String? {
            guard let v = env["PORTCULLIS_" + key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        // The URLs that may carry a password are checked here, and their errors never show the
        // value (SPEC §9: one line naming the variable).
        if let v = value("DATABASE_URL") {
            do { try DatabaseOpener.validate(url: v) } catch StorageError.other(let message) {
                throw ConfigError(variable: "PORTCULLIS_DATABASE_URL", message: message)
            }
            c.databaseURL = v
        }
        if let v = value("HOST") { c.host = v }
        if let v = value("POLICY_FILE") { c.policyFile = v }
        if let v = value("SMTP_URL") {
            if v != "log" { _ = try SMTPSettings(v) }
            c.smtpURL = v
        }
        if let v = value("MAIL_FROM") {
            guard v.contains("@"), !v.contains("\n"), !v.contains("\r") else {
                throw ConfigError(variable: "PORTCULLIS_MAIL_FROM", message: "must be an address, optionally with a name: Name <a@b.c>")
            }
            c.mailFrom = v
        }
        if let v = value("TEMPLATES_DIR") { c.templatesDir = v }
        if let v = value("CHANGE_POLL_MS") {
            guard let n = Int(v), (5...5000).contains(n) else {
                throw ConfigError(variable: "PORTCULLIS_CHANGE_POLL_MS", message: "must be 5...5000 milliseconds (got \(v))")
            }
            c.changePollInterval = .milliseconds(n)
        }
        if let v = value("KEY_USAGE_FLUSH_SECONDS") {
            guard let n = Int(v), (1...3600).contains(n) else {
                throw ConfigError(variable: "PORTCULLIS_KEY_USAGE_FLUSH_SECONDS", message: "must be 1...3600 (got \(v))")
            }
            c.keyUsageFlushInterval = .seconds(n)
        }
        if let v = value("SIGNING_KEY_ROTATION_DAYS") {
            guard let n = Double(v), n >= 1, n <= 3650 else {
                throw ConfigError(variable: "PORTCULLIS_SIGNING_KEY_ROTATION_DAYS", message: "must be a number of days from 1 to 3650 (got \(v))")
            }
            c.signingKeyRotation = .seconds(n * 86_400)
        }
        if let v = value("PORT") {
            guard let p = Int(v), (0...65535).contains(p) else {
                throw ConfigError(variable: "PORTCULLIS_PORT", message: "must be a port number 0...65535 (got \(v))")
            }
            c.port = p
        }
        c.publicURL = "http://localhost:\(c.port)"
        if let v = value("PUBLIC_URL") {
            guard let url = URL(string: v), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ConfigError(variable: "PORTCULLIS_PUBLIC_URL", message: "must be an http(s) URL (got \(v))")
            }
            c.publicURL = v.hasSuffix("/") ? String(v.dropLast()) : v
        }
        c.issuer = value("ISSUER") ?? c.publicURL
        c.audience = value("AUDIENCE") ?? c.issuer
        if let v = value("ACCESS_TOKEN_TTL") {
            c.accessTokenTTL = try parseDuration(v, variable: "PORTCULLIS_ACCESS_TOKEN_TTL", range: 30...86_400)
        }
        if let v = value("REFRESH_TOKEN_TTL") {
            c.refreshTokenTTL = try parseDuration(v, variable: "PORTCULLIS_REFRESH_TOKEN_TTL", range: 60...(365 * 86_400))
        }
        if let v = value("SIGNUP") {
            guard let mode = SignupMode(rawValue: v) else {
                throw ConfigError(variable: "PORTCULLIS_SIGNUP", message: "must be open or invite_only (got \(v))")
            }
            c.signup = mode
        }
        c.rootEmail = value("ROOT_EMAIL")
        c.rootPassword = env["PORTCULLIS_ROOT_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        if let email = c.rootEmail, Email.canonical(email) == nil {
            throw ConfigError(variable: "PORTCULLIS_ROOT_EMAIL", message: "is not a valid e-mail address")
        }
        if let password = c.rootPassword {
            do { try PasswordPolicy.validate(password) } catch {
                throw ConfigError(variable: "PORTCULLIS_ROOT_PASSWORD", message: "must be \(PasswordPolicy.minLength)...\(PasswordPolicy.maxLength) characters")
            }
        }
        if c.rootPassword != nil, c.rootEmail == nil {
            throw ConfigError(variable: "PORTCULLIS_ROOT_EMAIL", message: "is required when PORTCULLIS_ROOT_PASSWORD is set")
        }
        c.masterKey = value("MASTER_KEY")
        if let k = c.masterKey, MasterKey.decode(k) == nil {
            throw ConfigError(variable: "PORTCULLIS_MASTER_KEY", message: "must be the base64 encoding of 32 random bytes (e.g. openssl rand -base64 32)")
        }
        if let v = value("MASTER_KEY_FILE") { c.masterKeyFile = v }
        if let v = value("LOG_FORMAT") {
            guard let f = LogFormat(rawValue: v) else {
                throw ConfigError(variable: "PORTCULLIS_LOG_FORMAT", message: "must be text or json (got \(v))")
            }
            c.logFormat = f
        }
        if let v = value("CORS_ORIGINS") {
            // Stored the way browsers send Origin: lowercase, no default port.
            c.corsOrigins = try v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { origin in
                guard let url = URL(string: origin), url.path.isEmpty, url.query == nil, url.user == nil, !origin.hasSuffix("/"),
                      let normalized = WebOrigin.of(url) else {
                    throw ConfigError(variable: "PORTCULLIS_CORS_ORIGINS", message: "must be a comma-separated list of origins like https://app.example.com (got \(origin))")
                }
                return normalized
            }
        }
        if let v = value("METRICS_TOKEN") {
            guard v.utf8.count >= 32, v.utf8.count <= 512, v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ConfigError(variable: "PORTCULLIS_METRICS_TOKEN", message: "must be 32 to 512 printable characters without spaces (for example: openssl rand -hex 32)")
            }
            c.metricsToken = v
        }
        if let v = value("TRUSTED_PROXIES") {
            c.trustedProxies = try v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map {
                guard let range = IPRange($0) else {
                    throw ConfigError(variable: "PORTCULLIS_TRUSTED_PROXIES", message: "must be a comma-separated list of IP addresses or CIDR ranges (got \($0))")
                }
                return range
            }
        }
        func count(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v = value(key) else { return nil }
            guard let n = Int(v), range.contains(n) else {
                throw ConfigError(variable: "PORTCULLIS_" + key, message: "must be a whole number \(range.lowerBound)...\(range.upperBound) (got \(v))")
            }
            return n
        }
        if let n = try count("IP_BURST", 0...1_000_000) { c.limits.ipBurst = n }
        if let n = try count("IP_PER_MINUTE", 0...1_000_000) { c.limits.ipPerMinute = n }
        if let n = try count("ACCOUNT_FAILURES_PER_HOUR", 1...1_000_000) { c.limits.accountFailuresPerHour = n }
        if let n = try count("RESET_MAILS_PER_HOUR", 1...1_000_000) { c.limits.resetMailsPerHour = n }
        if let n = try count("CODE_MAILS_PER_HOUR", 1...1_000_000) { c.limits.codeMailsPerHour = n }
        if let n = try count("WRITES_PER_USER_PER_MINUTE", 0...1_000_000) { c.limits.writesPerUserPerMinute = n }
        if let n = try count("MAX_ORGS_PER_USER", 1...1_000_000) { c.maxOrgsPerUser = n }
        if let n = try count("WATCH_MAX_STREAMS", 0...100_000) { c.watchMaxStreams = n }
        if let n = try count("INVITE_MAILS_PER_ORG_PER_HOUR", 1...1_000_000) { c.limits.inviteMailsPerOrgPerHour = n }
        if let n = try count("INVITE_MAILS_PER_RECIPIENT_PER_HOUR", 1...1_000_000) { c.limits.inviteMailsPerRecipientPerHour = n }
        if let n = try count("PASSWORD_GUESSES_PER_SESSION_PER_HOUR", 1...1_000_000) { c.limits.passwordGuessesPerSessionPerHour = n }
        if let n = try count("PASSWORD_GUESSES_PER_ACCOUNT_PER_HOUR", 1...1_000_000) { c.limits.passwordGuessesPerAccountPerHour = n }
        if let n = try count("MAX_BINDINGS_PER_ORG", 1...10_000_000) { c.bindingQuotas.perOrg = n }
        if let n = try count("MAX_BINDINGS_PER_PRINCIPAL", 1...10_000_000) { c.bindingQuotas.perPrincipal = n }
        if let n = try count("MAX_GROUPS_PER_ORG", 1...100_000) { c.groupQuotas.groupsPerOrg = n }
        if let n = try count("MAX_OVERRIDES_PER_ORG", 1...10_000_000) { c.groupQuotas.overridesPerOrg = n }
        if let n = try count("DATABASE_TIMEOUT_MS", 100...120_000) { c.databaseTimeout = .milliseconds(n) }
        if let n = try count("MAX_STALENESS_MS", 100...600_000) { c.maxStaleness = .milliseconds(n) }
        if let n = try count("CLIENT_TIMEOUT_SECONDS", 1...3600) { c.clientTimeout = .seconds(n) }
        if let n = try count("WEBHOOK_POLL_MS", 10...60_000) { c.webhookInterval = .milliseconds(n) }
        if let n = try count("WEBHOOK_FIRST_RETRY_MS", 10...3_600_000) { c.webhookFirstRetry = .milliseconds(n) }
        if let v = value("WEBHOOK_ALLOW_PRIVATE") {
            guard v == "true" || v == "false" else { throw ConfigError(variable: "PORTCULLIS_WEBHOOK_ALLOW_PRIVATE", message: "must be true or false (got \(v))") }
            c.webhookAllowPrivate = v == "true"
        }
        if let v = value("BRAND_NAME") {
            guard v.count <= 60 else { throw ConfigError(variable: "PORTCULLIS_BRAND_NAME", message: "must be at most 60 characters") }
            c.brand.name = v
        }
        if let v = value("BRAND_LOGO_URL") {
            guard let url = URL(string: v), url.scheme == "https" || (url.scheme == nil && v.hasPrefix("/")), !v.contains("\"") else {
                throw ConfigError(variable: "PORTCULLIS_BRAND_LOGO_URL", message: "must be an https URL or a path on this server (got \(v))")
            }
            c.brand.logoURL = v
        }
        if let v = value("BRAND_COLOR") {
            guard v.count == 7, v.hasPrefix("#"), v.dropFirst().allSatisfy(\.isHexDigit) else {
                throw ConfigError(variable: "PORTCULLIS_BRAND_COLOR", message: "must be a colour like #3b5bdb (got \(v))")
            }
            c.brand.color = v.lowercased()
        }
        if let v = value("LOG_LEVEL") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(v) else {
                throw ConfigError(variable: "PORTCULLIS_LOG_LEVEL", message: "must be one of \(levels.joined(separator: ", ")) (got \(v))")
            }
            c.logLevel = v
        }
        return c
    }

    /// `900`, `900s`, `15m`, `1h`, `30d`.
    static func parseDuration(_ text: String, variable: String, range: ClosedRange<Int>) throws -> Duration {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var digits = text
        var unit = 1
        if let last = text.last, let u = units[last] {
            unit = u
            digits = String(text.dropLast())
        }
        guard let n = Int(digits), n > 0, n <= Int.max / unit, range.contains(n * unit) else {
            throw ConfigError(variable: variable, message: "must be a duration like 900, 15m, 1h or 30d between \(range.lowerBound) and \(range.upperBound) seconds (got \(text))")
        }
        return .seconds(n * unit)
    }
}

/// Branding of the hosted pages.
public struct Brand: Sendable, Equatable {
    public var name = "Portcullis"
    public var logoURL: String?
    public var color = "#3b5bdb"

    public init() {}
}

/// Configuration holds secrets (root password, master key, SMTP credentials): whatever prints it —
/// a debug log of the service lifecycle, an error message — gets this redacted form instead.
extension AppConfig: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        "AppConfig(database: \(databaseURL.hasPrefix("sqlite:") ? databaseURL : "postgres"), host: \(host), port: \(port), issuer: \(issuer), secrets redacted)"
    }
    public var debugDescription: String { description }
}
