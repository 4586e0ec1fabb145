import Foundation
import NIOSSL
import PostgresNIO

/// `postgres://user:password@host:port/database?sslmode=disable|prefer|require&search_path=…`
struct PostgresURL {
    var host = "127.0.0.1"
    var port = 5432
    var username = "postgres"
    var password: String?
    var database: String?
    var sslMode = "prefer"
    var searchPath: String?

    static let shape = "postgres://user:password@host:port/database"

    init(_ string: String) throws {
        // No host means the local server, as with libpq.
        guard let components = CredentialURL.parse(string, schemes: ["postgres", "postgresql"], hostOptional: true) else {
            throw StorageError.other("must be a well-formed \(Self.shape); \(CredentialURL.encodingHint)")
        }
        if let h = components.host, !h.isEmpty { host = h }
        if let p = components.port { port = p }
        if let u = components.user, !u.isEmpty { username = u.removingPercentEncoding ?? u }
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        database = path.isEmpty ? nil : path
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode": sslMode = item.value ?? "prefer"
            case "search_path": searchPath = item.value
            default: break
            }
        }
        guard ["disable", "prefer", "require"].contains(sslMode) else {
            throw StorageError.other("sslmode must be disable, prefer or require (\(Self.shape)?sslmode=…)")
        }
    }

    var startupParameters: [(String, String)] {
        searchPath.map { [("search_path", $0)] } ?? []
    }

    var connectionTLS: PostgresConnection.Configuration.TLS {
        switch sslMode {
        case "disable": return .disable
        case "require": return (try? .require(.init(configuration: .makeClientConfiguration()))) ?? .disable
        default: return (try? .prefer(.init(configuration: .makeClientConfiguration()))) ?? .disable
        }
    }

    var clientTLS: PostgresClient.Configuration.TLS {
        switch sslMode {
        case "disable": return .disable
        case "require": return .require(.makeClientConfiguration())
        default: return .prefer(.makeClientConfiguration())
        }
    }
}
