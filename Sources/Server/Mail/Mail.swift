import Authority
import CCurlSMTP
import Foundation
import Identity
import Logging
import Mustache
import NIOPosix
import ServiceLifecycle
import Storage

/// A rendered mail.
public struct RenderedMail: Sendable, Equatable {
    public var to: String
    public var subject: String
    public var text: String
    public var html: String
}

/// Delivers rendered mail.
public protocol Mailer: Sendable {
    func send(_ mail: RenderedMail) async throws
}

/// `PORTCULLIS_SMTP_URL=log`: mail goes to the log (development). The link is in the text part.
struct LogMailer: Mailer {
    let logger: Logger

    func send(_ mail: RenderedMail) async throws {
        logger.notice("mail (PORTCULLIS_SMTP_URL=log, not sent)", metadata: ["to": "\(mail.to)", "subject": "\(mail.subject)", "text": "\(mail.text)"])
    }
}

struct SMTPError: Error, CustomStringConvertible {
    let code: Int32
    let message: String
    var description: String { "SMTP error \(code): \(message)" }
}

/// `PORTCULLIS_SMTP_URL` taken apart: the URL curl connects to (no credentials, no options), the
/// credentials, and the TLS options. Checked at start-up with the rest of the configuration.
struct SMTPSettings: CustomStringConvertible {
    var description: String { "SMTPSettings(credentials redacted)" }
    static let shape = "must be log, smtp://[user:password@]host[:port] or smtps://…"

    let url: String
    let user: String?
    let password: String?
    let requireTLS: Bool
    let insecure: Bool

    init(_ raw: String) throws {
        guard var parts = CredentialURL.parse(raw, schemes: ["smtp", "smtps"]) else {
            throw ConfigError(variable: "PORTCULLIS_SMTP_URL", message: "\(Self.shape); \(CredentialURL.encodingHint)")
        }
        let scheme = parts.scheme?.lowercased() ?? "smtp"
        user = parts.user?.removingPercentEncoding
        password = parts.password?.removingPercentEncoding
        let query = Dictionary((parts.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        // Credentials never cross a plain connection: with a user, STARTTLS is required unless
        // the URL says `?insecure_auth=1` (test servers on loopback).
        requireTLS = query["starttls"] == "required" || (parts.user != nil && scheme == "smtp" && query["insecure_auth"] != "1")
        insecure = query["insecure"] == "1"
        parts.user = nil
        parts.password = nil
        parts.queryItems = nil
        guard let bare = parts.string else {
            throw ConfigError(variable: "PORTCULLIS_SMTP_URL", message: "\(Self.shape); \(CredentialURL.encodingHint)")
        }
        url = bare
    }
}

/// SMTP through libcurl: `smtp://[user:pass@]host[:port]` (STARTTLS when the server offers it;
/// `?starttls=required` to insist), `smtps://…` (TLS from the start). `?insecure=1` skips
/// certificate checks (tests only). Sends run on a thread pool of their own, so a hung SMTP
/// server never delays password hashing.
struct SMTPMailer: Mailer, CustomStringConvertible {
    var description: String { "SMTPMailer(credentials redacted)" }
    let url: String
    let user: String?
    let password: String?
    let from: String
    let fromAddress: String
    let requireTLS: Bool
    let insecure: Bool
    let pool: NIOThreadPool
    let timeout: Int

    init(url raw: String, from: String, pool: NIOThreadPool, timeout: Int = 30) throws {
        let settings = try SMTPSettings(raw)
        url = settings.url
        user = settings.user
        password = settings.password
        requireTLS = settings.requireTLS
        insecure = settings.insecure
        self.from = from
        fromAddress = Self.address(from)
        self.pool = pool
        self.timeout = timeout
    }

    /// `Name <a@b>` → `<a@b>`; a bare address gets its angle brackets.
    static func address(_ from: String) -> String {
        if let open = from.lastIndex(of: "<"), let close = from.lastIndex(of: ">"), open < close { return String(from[open...close]) }
        return "<\(from.trimmingCharacters(in: .whitespaces))>"
    }

    func send(_ mail: RenderedMail) async throws {
        let payload = MIME.message(from: from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html)
        let (url, user, password, fromAddress, requireTLS, insecure, timeout) = (self.url, self.user, self.password, self.fromAddress, self.requireTLS, self.insecure, self.timeout)
        try await pool.runIfActive {
            var errbuf = [CChar](repeating: 0, count: 512)
            let recipient = "<\(mail.to)>"
            let code: Int32 = recipient.withCString { rcpt in
                var list: [UnsafePointer<CChar>?] = [rcpt]
                return list.withUnsafeMutableBufferPointer { rcpts in
                    payload.withCString { body in
                        pcl_smtp_send(url, user, password, fromAddress, rcpts.baseAddress, 1, body, strlen(body),
                                      timeout, requireTLS ? 1 : 0, insecure ? 1 : 0, nil, &errbuf)
                    }
                }
            }
            guard code == 0 else { throw SMTPError(code: code, message: String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        }
    }
}

/// A text and HTML message (multipart/alternative), UTF-8, headers per RFC 5322.
enum MIME {
    static func message(from: String, to: String, subject: String, text: String, html: String, date: Date = Date()) -> String {
        let boundary = "pcl-" + UUID().uuidString
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let domain = SMTPMailer.address(from).dropFirst().dropLast().split(separator: "@").last.map(String.init) ?? "localhost"
        func encodedSubject(_ s: String) -> String {
            s.allSatisfy { $0.isASCII } ? s : "=?UTF-8?B?\(Data(s.utf8).base64EncodedString())?="
        }
        let lines = [
            "From: \(from)", "To: <\(to)>", "Subject: \(encodedSubject(subject))", "Date: \(formatter.string(from: date))",
            "Message-ID: <\(UUID().uuidString.lowercased())@\(domain)>", "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"\(boundary)\"", "",
            "--\(boundary)", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "", text, "",
            "--\(boundary)", "Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: 8bit", "", html, "",
            "--\(boundary)--", "",
        ]
        // SMTP wants CRLF, and a lone "." line would end the message early.
        return lines.joined(separator: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(".") ? "." + $0 : String($0) }.joined(separator: "\r\n")
    }
}

/// Subject, text and HTML templates per mail (swift-mustache). Built in, and overridable per
/// file from `PORTCULLIS_TEMPLATES_DIR`: `<name>.subject.mustache`, `<name>.txt.mustache`, `<name>.html.mustache`.
struct MailTemplates: Sendable {
    struct Parts: Sendable {
        let subject: MustacheTemplate
        let text: MustacheTemplate
        let html: MustacheTemplate
    }

    let parts: [String: Parts]

    static let builtIn: [String: (subject: String, text: String, html: String)] = [
        MailTemplate.invite: (
            "You are invited to join {{{org_name}}}",
            "{{{inviter_name}}} invited you to join {{{org_name}}} as {{{role}}}.\n\n{{#has_account}}Accept the invitation:{{/has_account}}{{#needs_verification}}An account with {{{email}}} exists, but the address is not confirmed yet, so the invitation waits. If you made that account, confirm the address first (with the confirmation link you were mailed, or a new one), then accept. If you did not make it, someone signed up with your address: do not confirm it. Reset its password instead (forgot password): that proves the address is yours, signs the other person out and removes the keys they made. Then accept the invitation:{{/needs_verification}}{{^has_account}}{{^needs_verification}}Create your account to accept:{{/needs_verification}}{{/has_account}}\n{{{link}}}\n\nThe invitation expires at {{{expires_at}}}. If you did not expect it, ignore this mail.\n",
            "<p>{{inviter_name}} invited you to join <strong>{{org_name}}</strong> as {{role}}.</p>{{#needs_verification}}<p>An account with {{email}} exists, but the address is not confirmed yet, so the invitation waits. If you made that account, confirm the address first (with the confirmation link you were mailed, or a new one), then accept.</p><p>If you did not make it, someone signed up with your address: do not confirm it. Reset its password instead (forgot password): that proves the address is yours, signs the other person out and removes the keys they made. Then accept.</p>{{/needs_verification}}<p><a href=\"{{link}}\">{{#has_account}}Accept the invitation{{/has_account}}{{#needs_verification}}Accept the invitation{{/needs_verification}}{{^has_account}}{{^needs_verification}}Create your account to accept{{/needs_verification}}{{/has_account}}</a></p><p>The invitation expires at {{expires_at}}. If you did not expect it, ignore this mail.</p>"),
        MailTemplate.platformInvite: (
            "You are invited to Portcullis",
            "You are invited to create an account.{{#org_names}} Invitations to {{{org_names}}} wait for you there.{{/org_names}}\n\nCreate your account:\n{{{link}}}\n\nThe invitation expires at {{{expires_at}}}.\n",
            "<p>You are invited to create an account.{{#org_names}} Invitations to {{org_names}} wait for you there.{{/org_names}}</p><p><a href=\"{{link}}\">Create your account</a></p><p>The invitation expires at {{expires_at}}.</p>"),
        MailTemplate.passwordReset: (
            "Reset your password",
            "Someone asked to reset the password of {{{email}}}.\n\nChoose a new password (the link works once, for one hour):\n{{{link}}}\n\nIf it was not you, ignore this mail; your password stays as it is.\n",
            "<p>Someone asked to reset the password of {{email}}.</p><p><a href=\"{{link}}\">Choose a new password</a> (the link works once, for one hour).</p><p>If it was not you, ignore this mail; your password stays as it is.</p>"),
        MailTemplate.verifyEmail: (
            "Confirm your e-mail address",
            "Confirm that {{{email}}} is yours:\n{{{link}}}\n",
            "<p><a href=\"{{link}}\">Confirm that {{email}} is yours</a>.</p>"),
        MailTemplate.signInCode: (
            "Your sign-in code: {{{code}}}",
            "Your code to sign in as {{{email}}} is\n\n    {{{code}}}\n\nType it on the page that asked for it. It works once, for ten minutes. If you did not ask for it, ignore this mail: nobody can use it without that page.\n",
            "<p>Your code to sign in as {{email}} is</p><p style=\"font-size:1.6em;letter-spacing:0.2em\"><strong>{{code}}</strong></p><p>Type it on the page that asked for it. It works once, for ten minutes. If you did not ask for it, ignore this mail: nobody can use it without that page.</p>"),
    ]

    static func load(directory: String?) throws -> MailTemplates {
        if let directory {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ConfigError(variable: "PORTCULLIS_TEMPLATES_DIR", message: "\(directory) is not a directory")
            }
        }
        var parts: [String: Parts] = [:]
        for (name, defaults) in builtIn {
            func source(_ suffix: String, _ fallback: String) throws -> String {
                guard let directory else { return fallback }
                let path = (directory as NSString).appendingPathComponent("\(name).\(suffix).mustache")
                guard FileManager.default.fileExists(atPath: path) else { return fallback }
                return try String(contentsOfFile: path, encoding: .utf8)
            }
            do {
                parts[name] = Parts(
                    subject: try MustacheTemplate(string: try source("subject", defaults.subject)),
                    text: try MustacheTemplate(string: try source("txt", defaults.text)),
                    html: try MustacheTemplate(string: try source("html", defaults.html)))
            } catch {
                throw ConfigError(variable: "PORTCULLIS_TEMPLATES_DIR", message: "template \(name) does not load: \(error)")
            }
        }
        return MailTemplates(parts: parts)
    }

    func render(_ message: OutboxMessage) -> RenderedMail? {
        guard let parts = parts[message.template], let variables = message.variables else { return nil }
        let context = variables as [String: Any]
        return RenderedMail(
            to: message.recipient,
            subject: parts.subject.render(context).trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: " "),
            text: parts.text.render(context), html: parts.html.render(context))
    }
}

/// Delivers the outbox: claims due mail, renders, sends, and on failure retries with
/// exponential backoff (5 s doubling, at most an hour apart) up to `maxAttempts`; what still
/// fails stays in the outbox, logged and listed by `portcullis admin outbox`.
public struct OutboxSender: Service, CustomStringConvertible {
    public var description: String { "OutboxSender" }
    let outbox: SQLOutbox
    let mailer: any Mailer
    let templates: MailTemplates
    let logger: Logger
    let interval: Duration
    /// With the backoff capped at an hour, about 50 hours of trying (5 s doubling to the cap).
    public static let maxAttempts = 60

    static func backoff(attempts: Int) -> TimeInterval {
        min(5 * pow(2, Double(max(attempts - 1, 0))), 3600)
    }

    /// One pass over the due mail; returns how many were sent.
    @discardableResult
    public func deliverDue(now: Date = Date()) async throws -> Int {
        var sent = 0
        for message in try await outbox.claimDue(now: now, lease: 120, maxAttempts: Self.maxAttempts) {
            guard let mail = templates.render(message) else {
                try await outbox.markFailed(message.id, error: "unknown template \(message.template)", retryAt: now.addingTimeInterval(3600))
                continue
            }
            do {
                try await mailer.send(mail)
                try await outbox.markSent(message.id, at: Date())
                sent += 1
            } catch {
                let attempts = message.attempts + 1
                let retry = Date().addingTimeInterval(Self.backoff(attempts: attempts))
                try await outbox.markFailed(message.id, error: "\(error)", retryAt: retry)
                logger.warning("mail not sent; will retry", metadata: [
                    "outbox_id": "\(message.id)", "template": "\(message.template)", "attempt": "\(attempts)",
                    "error": "\(error)", "gives_up": "\(attempts >= Self.maxAttempts)",
                ])
            }
        }
        return sent
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                _ = try? await deliverDue()
            }
        }
    }
}
