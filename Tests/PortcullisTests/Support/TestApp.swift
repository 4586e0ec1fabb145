import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import NIOCore
import Server
import Storage
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
    return config
}

/// Starts a node's services on a fresh database and hands them to `body`.
func withServices<T: Sendable>(
    _ backend: Backend, configure: (inout AppConfig) -> Void = { _ in },
    _ body: (AppServices) async throws -> T
) async throws -> T {
    try await withDatabase(backend) { db, dir in
        var config = testConfig(dir: dir)
        configure(&config)
        let services = try await AppServices.start(config: config, database: db, logger: testLogger, hasher: testHasher)
        return try await body(services)
    }
}

/// Runs `body` against the full HTTP application, in process.
func withApp(
    _ backend: Backend, configure: (inout AppConfig) -> Void = { _ in },
    _ body: @escaping @Sendable (APIClient, AppServices) async throws -> Void
) async throws {
    try await withServices(backend, configure: configure) { services in
        let app = buildApplication(services: services, logger: testLogger)
        try await app.test(.router) { client in
            try await body(APIClient(client: client), services)
        }
    }
}

/// A small JSON client over HummingbirdTesting.
struct APIClient: Sendable {
    let client: any TestClientProtocol

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
