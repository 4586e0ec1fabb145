import Foundation
import Server
import Storage
import Testing

@Suite("Start-up")
struct StartupTests {
    @Test("a down PostgreSQL fails start-up within seconds with a clear message")
    func postgresDownFailsFast() async throws {
        let started = ContinuousClock.now
        do {
            _ = try await DatabaseOpener.open(url: "postgres://nobody:secret@127.0.0.1:1/nothing?sslmode=disable", logger: testLogger)
            Issue.record("connecting to a closed port must fail")
        } catch let error as StorageError {
            guard case .unavailable(let message) = error else { Issue.record("unexpected \(error)"); return }
            #expect(message.contains("127.0.0.1:1"))
            #expect(!message.contains("secret"), "the password never appears in messages")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test("a wrong PostgreSQL password fails start-up with the server's reason")
    func postgresWrongUser() async throws {
        guard let url = ProcessInfo.processInfo.environment["PORTCULLIS_TEST_POSTGRES_URL"],
              var components = URLComponents(string: url) else { throw MissingPostgres() }
        components.user = "no_such_role"
        await #expect(throws: StorageError.self) {
            _ = try await DatabaseOpener.open(url: components.string!, logger: testLogger)
        }
    }

    @Test("an unknown database URL scheme is refused")
    func badScheme() async throws {
        await #expect(throws: StorageError.self) { _ = try await DatabaseOpener.open(url: "mysql://x", logger: testLogger) }
        await #expect(throws: StorageError.self) { _ = try await DatabaseOpener.open(url: "sqlite:", logger: testLogger) }
    }

    @Test("serving starts on an empty data directory, creating the database and the master key")
    func emptyDataDirectory() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(UUID())/data")
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let db = try await DatabaseOpener.open(url: "sqlite:\(dir.path)/portcullis.db", logger: testLogger)
        let config = testConfig(dir: dir)
        let services = try await AppServices.start(config: config, database: db, logger: testLogger, hasher: testHasher)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("portcullis.db").path))
        #expect(FileManager.default.fileExists(atPath: config.masterKeyFile))
        #expect(services.tokens.jwks().count == 1)
        await db.close()
        // A second start on the same directory reuses the key: the same JWKS, no new key.
        let again = try await DatabaseOpener.open(url: "sqlite:\(dir.path)/portcullis.db", logger: testLogger)
        let restarted = try await AppServices.start(config: config, database: again, logger: testLogger, hasher: testHasher)
        #expect(restarted.tokens.activeKid == services.tokens.activeKid)
        await again.close()
    }
}
