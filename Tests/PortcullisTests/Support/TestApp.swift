import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import NIOCore
import Server
import Storage
import Synchronization
import Testing

/// Cheap argon2id parameters for tests: the same code path, a fraction of the cost.
let testHasher: Argon2idHasher = try! Argon2idHasher(parameters: .init(memory: 1024, iterations: 1, parallelism: 1))

func testConfig(dir: URL) -> AppConfig {
    var config = AppConfig()
    config.masterKeyFile = dir.appendingPathComponent("master.key").path
    config.issuer = "http://portcullis.test"
    config.audience = "http://portcullis.test"
    config.publicURL = "http://portcullis.test"
    config.port = 0
    // Tests read mailed tokens from the outbox and deliver on purpose (`mailSender.deliverDue`);
    // the background sender must not send (and wipe) them first.
    config.outboxInterval = .seconds(3600)
    // Likewise webhooks: tests run their own dispatchers against receivers in memory.
    config.webhookInterval = .seconds(3600)
    // In-process requests have no peer address, so every test client would share one IP
    // bucket; the throttling tests turn it back on with their own numbers.
    config.limits.ipBurst = 0
    // Likewise the per-user write budget; the quota tests turn it on.
    config.limits.writesPerUserPerMinute = 0
    // The suite runs dozens of apps at once on two cores: a slow moment is not an outage here.
    config.databaseTimeout = .seconds(30)
    // Likewise a follower that misses a few polls; the staleness tests set their own bound.
    config.maxStaleness = .seconds(30)
    return config
}

/// Starts a node's services on a fresh database and hands them to `body`.
func withServices<T: Sendable>(
    _ backend: Backend, configure: (inout AppConfig) -> Void = { _ in }, clock: TestClock? = nil,
    _ body: (AppServices) async throws -> T
) async throws -> T {
    try await withDatabase(backend) { db, dir in
        var config = testConfig(dir: dir)
        configure(&config)
        let now: @Sendable () -> Date
        if let clock { now = { clock.now } } else { now = { Date() } }
        let services = try await AppServices.start(config: config, database: db, logger: testLogger, hasher: testHasher, now: now)
        return try await body(services)
    }
}

/// Runs `body` against the full HTTP application, in process.
@discardableResult
func withApp<T: Sendable>(
    _ backend: Backend, configure: (inout AppConfig) -> Void = { _ in }, clock: TestClock? = nil,
    _ body: @escaping @Sendable (APIClient, AppServices) async throws -> T
) async throws -> T {
    try await withServices(backend, configure: configure, clock: clock) { services in
        let app = buildApplication(services: services, logger: testLogger)
        return try await app.test(.router) { client in
            try await body(APIClient(client: client, services: services), services)
        }
    }
}

/// A second node on `nodeA`'s database, following the change log every 20 ms, with its own
/// HTTP client: for tests of what other nodes see.
func withSecondNode(_ nodeA: AppServices, _ body: @escaping @Sendable (APIClient, AppServices) async throws -> Void) async throws {
    var config = nodeA.config
    config.changePollInterval = .milliseconds(20)
    let nodeB = try await AppServices.start(config: config, database: nodeA.database, logger: testLogger, hasher: testHasher)
    // The follower ends before the database closes: a read of it still running then would be
    // cut off mid-way, or (SQLite) hold the close up.
    let follower = Task { await nodeB.changes.run() }
    do {
        try await buildApplication(services: nodeB, logger: testLogger).test(.router) { client in
            try await body(APIClient(client: client, services: nodeB), nodeB)
        }
    } catch {
        follower.cancel()
        await follower.value
        throw error
    }
    follower.cancel()
    await follower.value
}

/// Polls `condition` every 5 ms for up to ten seconds; returns how long it took, or nil.
/// A hang guard, not a speed bound (`make bench` measures propagation): a full parallel run
/// has starved this process for ten seconds at its start.
func eventually(_ condition: () async throws -> Bool) async throws -> Duration? {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < .seconds(10) {
        if try await condition() { return ContinuousClock.now - start }
        try await Task.sleep(for: .milliseconds(5))
    }
    return nil
}

/// A small JSON client over HummingbirdTesting.
struct APIClient: Sendable {
    let client: any TestClientProtocol
    /// The node behind the client: lets helpers read mailed tokens, as a person reads mail.
    var services: AppServices? = nil

    struct Reply: Sendable {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let body: ByteBuffer

        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
        }
        var text: String { String(buffer: body) }
        var code: String? { json["code"] as? String }
        var revision: Int64? { headers[HTTPField.Name("Portcullis-Revision")!].flatMap { Int64($0) } }
    }

    @discardableResult
    func send(
        _ method: HTTPRequest.Method, _ uri: String, json: Any? = nil, raw: String? = nil,
        token: String? = nil, contentType: String? = "application/json", headers extra: HTTPFields = [:]
    ) async throws -> Reply {
        var headers = extra
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json))
        } else if let raw {
            body = ByteBuffer(string: raw)
        }
        if body != nil, let contentType { headers[.contentType] = contentType }
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body) { response in
            Reply(status: response.status, headers: response.headers, body: response.body)
        }
    }

    /// Signs up and logs in; returns the login reply's JSON.
    func signupAndLogin(_ email: String, password: String = "correct horse battery") async throws -> Tokens {
        let signup = try await send(.post, "/v1/users", json: ["email": email, "password": password, "name": "Test"])
        #expect(signup.status == .created, "signup: \(signup.text)")
        return try await login(email, password: password)
    }

    func login(_ email: String, password: String = "correct horse battery") async throws -> Tokens {
        let reply = try await send(.post, "/v1/auth/login", json: ["email": email, "password": password])
        #expect(reply.status == .ok, "login: \(reply.text)")
        return try Tokens(reply.json)
    }
}

struct Tokens: Sendable {
    let access: String
    let refresh: String
    let userID: String

    init(_ json: [String: Any]) throws {
        access = try #require(json["access_token"] as? String)
        refresh = try #require(json["refresh_token"] as? String)
        let user = try #require(json["user"] as? [String: Any])
        userID = try #require(user["id"] as? String)
    }
}

let testRootPassword = "root password 123"

/// Configures the root admin `root@example.com` (password `testRootPassword`).
func rootSetup(_ c: inout AppConfig) {
    c.rootEmail = "root@example.com"
    c.rootPassword = testRootPassword
}

/// A clock tests can move forward (for expiring grants); starts at the real time.
final class TestClock: Sendable {
    private let offset = Mutex<TimeInterval>(0)

    var now: Date { Date().addingTimeInterval(offset.withLock { $0 }) }

    func advance(by seconds: TimeInterval) {
        offset.withLock { $0 += seconds }
    }
}

extension APIClient {
    /// Creates an org as the token's user; returns its id.
    func createOrg(_ token: String, name: String = "Acme", description: String? = nil) async throws -> String {
        var body: [String: Any] = ["name": name]
        if let description { body["description"] = description }
        let reply = try await send(.post, "/v1/orgs", json: body, token: token)
        #expect(reply.status == .created, "create org: \(reply.text)")
        return try #require(reply.json["id"] as? String)
    }

    /// Adds a member by e-mail and expects it to work. Only proven addresses are added by
    /// e-mail (SPEC §12), so the member first proves theirs with the mailed verification link.
    @discardableResult
    func addMember(_ token: String, org: String, email: String, role: String, expiresAt: String? = nil) async throws -> Reply {
        try await proveAddress(email)
        var body: [String: Any] = ["email": email, "role": role]
        if let expiresAt { body["expires_at"] = expiresAt }
        let reply = try await send(.post, "/v1/orgs/\(org)/members", json: body, token: token)
        #expect(reply.status == .created, "add member: \(reply.text)")
        return reply
    }

    /// Verifies the account's address with its mailed link, unless it is verified already.
    func proveAddress(_ email: String) async throws {
        guard let services else { return }
        let rows = try await services.database.query("SELECT email_verified FROM users WHERE email = $1", email)
        guard let row = rows.first, try !row.bool("email_verified") else { return }
        let token = try await services.mailedToken(to: email, template: "verify_email")
        let reply = try await send(.post, "/v1/auth/verify-email", json: ["token": token])
        #expect(reply.status == .noContent, "verify \(email): \(reply.text)")
    }

    /// Signs up a user without logging in; returns the user id.
    func signup(_ email: String, password: String = "correct horse battery") async throws -> String {
        let reply = try await send(.post, "/v1/users", json: ["email": email, "password": password, "name": "Test"])
        #expect(reply.status == .created, "signup: \(reply.text)")
        return try #require(reply.json["id"] as? String)
    }

    /// The `items` of a list reply.
    func items(_ uri: String, token: String) async throws -> [[String: Any]] {
        let reply = try await send(.get, uri, token: token)
        #expect(reply.status == .ok, "\(uri): \(reply.text)")
        return reply.json["items"] as? [[String: Any]] ?? []
    }
}
