import ArgumentParser
import Foundation
import Hummingbird
import Identity
import Logging
import NIOCore
import Server
import Storage
import Tenancy
import Wire

@main
struct Portcullis: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portcullis",
        abstract: "Multi-tenant organization and RBAC authorization server.",
        discussion: "Start the server with `portcullis serve`; `portcullis serve --help` lists its environment variables.",
        version: PortcullisBuild.description,
        subcommands: [Serve.self, Migrate.self, Admin.self, Keys.self, Backup.self, Restore.self])

    /// The process's own arguments. Under an `LD_PRELOAD` library such as libfaketime (the clock
    /// skew tests), Swift's `CommandLine.arguments` can come up empty: the kernel's copy in
    /// /proc/self/cmdline is the fallback, so `serve` is never mistaken for no arguments.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if CommandLine.arguments.isEmpty, let cmdline = FileManager.default.contents(atPath: "/proc/self/cmdline") {
            arguments = cmdline.split(separator: 0, omittingEmptySubsequences: false).dropFirst().map { String(decoding: $0, as: UTF8.self) }
            if arguments.last == "" { arguments.removeLast() }
        }
        await main(arguments)
    }
}

/// Reads configuration and opens the database, or exits with one line naming the problem.
struct Runtime {
    let config: AppConfig
    let logger: Logger
    let database: any SQLDatabase

    /// Runs `body` with the configuration and an open database whose connections work for as
    /// long as `body` runs (a child task, not a loose one) and are closed after it. Only
    /// `serve`, `migrate` and `restore` may create a database (`creating`); the other commands
    /// act on an instance and refuse to start a new, empty one by accident.
    static func with<T: Sendable>(creating: Bool = false, _ body: (Runtime) async throws -> T) async throws -> T {
        var config: AppConfig
        do {
            config = try AppConfig.fromEnvironment()
        } catch let error as ConfigError {
            fail(error.description)
        }
        config.mayCreateInstance = creating
        let logger = Logging.make(config)
        let database: any SQLDatabase
        do {
            database = creating
                ? try await DatabaseOpener.open(url: config.databaseURL, logger: logger)
                : try await DatabaseOpener.openExisting(url: config.databaseURL, logger: logger)
        } catch let error as StorageError {
            fail("PORTCULLIS_DATABASE_URL: \(describe(error))")
        }
        return try await DatabaseOpener.running(database) { database in
            if !creating {
                do {
                    try await DatabaseOpener.requireSchema(database)
                } catch let error as StorageError {
                    fail("PORTCULLIS_DATABASE_URL: \(describe(error))")
                }
            }
            return try await body(Runtime(config: config, logger: logger, database: database))
        }
    }

    func services() async throws -> AppServices {
        do {
            return try await AppServices.start(config: config, database: database, logger: logger)
        } catch let error as ConfigError {
            fail(error.description)
        } catch let error as StorageError {
            fail(startupFailure(error))
        }
    }
}

extension Runtime {
    /// Backups touch only tables: no signing keys, so no master key is needed or created.
    func migratedBackup() async throws -> SQLBackup {
        do {
            try await Migrator(dialect: database.dialect).migrate(database)
        } catch let error as StorageError {
            fail(startupFailure(error))
        }
        return SQLBackup(database: database)
    }
}

func describe(_ error: StorageError) -> String {
    switch error {
    case .unavailable(let m), .other(let m), .inconsistentMigrations(let m), .conflict(let m), .migrationRefused(let m): return m
    default: return "\(error)"
    }
}

/// The one line a start-up that failed on the database ends with. A refused migration is
/// about the data, not the URL: its own message says what to do.
func startupFailure(_ error: StorageError) -> String {
    if case .migrationRefused(let m) = error { return "migration refused: \(m)" }
    return "PORTCULLIS_DATABASE_URL: \(describe(error))"
}

/// Writes a line to standard output at once. The CLI's one way to print: Swift's print is
/// block-buffered when stdout is a file or pipe, which would hold back the one-time root
/// password until exit.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

func fail(_ line: String) -> Never {
    FileHandle.standardError.write(Data(("portcullis: " + line + "\n").utf8))
    exit(1)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending migrations and serve the HTTP API.",
        discussion: AppConfig.variablesHelp)

    func run() async throws {
        try await Runtime.with(creating: true) { runtime in
            let logger = runtime.logger
            logger.info("starting \(PortcullisBuild.description)")
            let services = try await runtime.services()
            if runtime.config.rootPassword == nil {
                // No configured password: on the first start make an administrator and say so once
                // (ensureRoot does nothing when a root exists).
                let password = Secrets.token(bytes: 18)
                let email = runtime.config.rootEmail ?? "admin@portcullis.local"
                if let user = try await services.ensureRoot(email: email, password: password, logger: logger) {
                    say("""
                        Created the root administrator (shown once, store it now):
                          email:    \(user.email)
                          password: \(password)
                        """)
                }
            }
            let config = runtime.config
            // Said once the socket is bound: a port in use must not be announced as listening.
            let app = buildApplication(services: services, logger: logger) { port in
                let host = config.host == "0.0.0.0" || config.host == "::" ? "localhost" : config.host
                say("Portcullis listening on http://\(config.host):\(port) (issuer \(config.issuer), database \(config.databaseURL.hasPrefix("sqlite:") ? config.databaseURL : "postgres"))")
                say("Log in: curl -s -X POST http://\(host):\(port)/v1/auth/login -H 'Content-Type: application/json' -d '{\"email\":\"…\",\"password\":\"…\"}'")
            }
            do {
                try await runUntilSignalled(app, services: services, logger: logger)
            } catch let error as IOError {
                fail(Self.bindFailure(error, config: config))
            } catch {
                fail("server stopped: \(error)")
            }
            logger.info("stopped")
        }
    }

    /// The one line for a socket that cannot be bound, naming the variable to change.
    static func bindFailure(_ error: IOError, config: AppConfig) -> String {
        let address = "\(config.host):\(config.port)"
        switch error.errnoCode {
        case EADDRINUSE: return "PORTCULLIS_PORT: \(address) is already in use by another process; stop it or choose another port"
        case EACCES: return "PORTCULLIS_PORT: binding \(address) is not permitted (ports below 1024 need privileges); choose a port from 1024 up"
        case EADDRNOTAVAIL: return "PORTCULLIS_HOST: \(config.host) is not an address of this machine"
        default: return "cannot listen on \(address): \(String(cString: strerror(error.errnoCode)))"
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations (or list them).")

    @Flag(help: "List migrations and whether each is applied; change nothing.")
    var status = false

    func run() async throws {
        try await Runtime.with(creating: !status) { runtime in
            let migrator = try Migrator(dialect: runtime.database.dialect)
            if status {
                for m in try await migrator.status(runtime.database) {
                    say("\(String(format: "%04d", m.version)) \(m.applied ? "applied" : "pending") \(m.name)")
                }
            } else {
                let applied: [Int]
                do {
                    applied = try await migrator.migrate(runtime.database)
                } catch let error as StorageError {
                    fail(startupFailure(error))
                }
                say(applied.isEmpty ? "database is up to date" : "applied migrations \(applied.map { String(format: "%04d", $0) }.joined(separator: ", "))")
            }
        }
    }
}

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Administrative tasks.", subcommands: [CreateRoot.self, Outbox.self])

    struct CreateRoot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-root",
            abstract: "Create a platform administrator (password from PORTCULLIS_ROOT_PASSWORD or a prompt).")

        @Option(help: "E-mail address of the administrator.")
        var email: String

        func run() async throws {
            let password: String
            if let p = ProcessInfo.processInfo.environment["PORTCULLIS_ROOT_PASSWORD"], !p.isEmpty {
                password = p
            } else {
                guard let p = readPassword(prompt: "Password for \(email): ") else { fail("no password given") }
                password = p
            }
            try await Runtime.with { runtime in
                let services = try await runtime.services()
                do {
                    let (user, _) = try await services.auth.signup(
                        .init(email: email, password: password, name: "Administrator", isRoot: true, emailVerified: true), trusted: true)
                    say("created root administrator \(user.email) (\(user.id.uuidString.lowercased()))")
                } catch let error as IdentityError {
                    switch error {
                    case .emailTaken: fail("an account with this e-mail already exists")
                    case .invalidEmail: fail("--email is not a valid e-mail address")
                    case .weakPassword(let m): fail(m)
                    default: fail("\(error)")
                    }
                }
            }
        }
    }
}

extension Admin {
    struct Outbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List mail that has not been sent yet (waiting for a retry, or given up), with its last error.")

        func run() async throws {
            try await Runtime.with { runtime in
                _ = try await runtime.migratedBackup() // the outbox table may not exist yet
                let outbox = SQLOutbox(database: runtime.database)
                let (pending, failed, sent) = try await outbox.counts(maxAttempts: OutboxSender.maxAttempts)
                say("outbox: \(pending) pending, \(failed) given up, \(sent) sent")
                for m in try await outbox.unsent() {
                    let state = m.attempts >= OutboxSender.maxAttempts ? "given up" : "pending"
                    say("\(m.id.uuidString.lowercased())  \(state)  \(m.template)  to \(m.recipient)  attempts \(m.attempts)  next \(RFC3339.string(m.nextAttemptAt))  \(m.lastError ?? "")")
                }
            }
        }
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Signing keys.", subcommands: [Rotate.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make new active signing keys (ES256 and RS256); older keys stay in JWKS until their tokens expire.")

        func run() async throws {
            try await Runtime.with { runtime in
                let services = try await runtime.services()
                let (keys, _) = try await services.tokens.rotate()
                for key in keys { say("new \(key.algorithm) signing key \(key.kid) is active") }
            }
        }
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the whole instance as JSON to standard output (contains password hashes: keep it safe).")

    func run() async throws {
        try await Runtime.with { runtime in
            let backup = try await runtime.migratedBackup()
            let data = try BackupDocument.encode(try await backup.export(actor: nil))
            FileHandle.standardOutput.write(data)
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load a backup from standard input into an empty instance, in one transaction.")

    func run() async throws {
        let input = FileHandle.standardInput.readDataToEndOfFile()
        // Restoring is how a new instance is made from a backup: it may create the database.
        try await Runtime.with(creating: true) { runtime in
            let backup = try await runtime.migratedBackup()
            do {
                let summary = try await backup.restore(try BackupDocument.decode(input), actor: nil)
                FileHandle.standardError.write(Data(
                    "restored \(summary.users) users, \(summary.orgs) orgs, \(summary.memberships) memberships, \(summary.auditEvents) audit events\n".utf8))
            } catch let error as BackupError {
                switch error {
                case .invalid(let m), .conflict(let m): fail("restore: \(m)")
                }
            } catch TenancyError.invalid(let m) {
                // A field the org rules refuse (a name, say).
                fail("restore: \(m)")
            }
        }
    }
}

func readPassword(prompt: String) -> String? {
    FileHandle.standardError.write(Data(prompt.utf8))
    var oldt = termios()
    let isTTY = tcgetattr(STDIN_FILENO, &oldt) == 0
    if isTTY {
        var newt = oldt
        newt.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &newt)
    }
    defer {
        if isTTY {
            tcsetattr(STDIN_FILENO, TCSANOW, &oldt)
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }
    return readLine(strippingNewline: true).flatMap { $0.isEmpty ? nil : $0 }
}
