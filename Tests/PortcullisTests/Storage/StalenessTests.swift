import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Identity
import Server
import Storage
import Synchronization
import Testing

/// SPEC §18: a node serves credentials and decisions from memory only while its change follower
/// is current; past the bound it reads through the database. And no database work happens
/// before authentication.
@Suite("Bounded staleness")
struct StalenessTests {
    /// A node whose change follower reads the log once and then sleeps: its memory falls behind
    /// other nodes' writes, which these tests make with SQL as another node would.
    func withStalledNode(_ backend: Backend, bound: Duration, _ body: @escaping @Sendable (APIClient, AppServices) async throws -> Void) async throws {
        try await withServices(backend, configure: { $0.maxStaleness = bound; $0.changePollInterval = .seconds(3600); $0.changeNotifications = false }) { services in
            try await buildApplication(services: services, logger: testLogger).test(.router) { client in
                try await body(APIClient(client: client, services: services), services)
            }
        }
    }

    @Test("past the bound, revoked keys and sessions and removed grants are refused, never served from memory", arguments: Backend.allCases)
    func failsClosed(_ backend: Backend) async throws {
        // The bound leaves a loaded machine seconds between a catch-up and the check after it.
        try await withStalledNode(backend, bound: .seconds(2)) { api, services in
            let owner = try await api.signupAndLogin("owner@example.com")
            let member = try await api.signupAndLogin("member@example.com")
            let org = try await api.createOrg(owner.access)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/members", json: ["user_id": member.userID, "role": "viewer"], token: owner.access).status == .created)
            let key = try await api.createKey(member.access, name: "k").key
            func allowed(_ token: String) async throws -> Bool? {
                try await api.send(.post, "/v1/authorize", json: ["object": "org:\(org)", "action": "viewer"], token: token).json["allowed"] as? Bool
            }
            // Warm every cache: the key, the session, the user and the org's grants.
            #expect(try await allowed(key) == true)
            #expect(try await allowed(member.access) == true)

            // Another node revokes the key and the session and removes the membership.
            let db = services.database
            let memberID = UUID(uuidString: member.userID)!
            try await db.transaction { tx in
                for row in try await tx.query("UPDATE api_keys SET revoked_at = $1 RETURNING id", Date()) {
                    try await tx.execute("INSERT INTO changes (at, kind, subject) VALUES ($1, 'api_key.revoked', $2)", Date(), try row.uuid("id").uuidString.lowercased())
                }
                for row in try await tx.query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 RETURNING id", Date(), memberID) {
                    try await tx.execute("INSERT INTO changes (at, kind, subject) VALUES ($1, 'session.revoked', $2)", Date(), try row.uuid("id").uuidString.lowercased())
                }
                try await tx.execute("DELETE FROM memberships WHERE user_id = $1", memberID)
                try await tx.execute("INSERT INTO changes (at, kind, subject) VALUES ($1, 'membership.changed', $2)", Date(), "\(org)/\(member.userID)")
            }
            let fresh = try await api.login("member@example.com")
            try await Task.sleep(for: .milliseconds(2100))
            #expect(services.freshness.isStale)

            #expect(try await api.send(.post, "/v1/authorize", json: ["object": "org:\(org)", "action": "viewer"], token: key).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/me", token: member.access).status == .unauthorized)
            // A live credential gets a decision from the database: the removed membership counts.
            #expect(try await allowed(fresh.access) == false)

            // Once the node catches up, memory answers again, with the same answers.
            try await services.changes.catchUp()
            #expect(!services.freshness.isStale)
            #expect(try await api.send(.post, "/v1/authorize", json: ["object": "org:\(org)", "action": "viewer"], token: key).status == .unauthorized)
            #expect(try await allowed(fresh.access) == false)
        }
    }

    @Test("a Portcullis-Revision ahead of this node is read only for an authenticated caller", arguments: Backend.allCases)
    func noCatchUpBeforeAuthentication(_ backend: Backend) async throws {
        try await withStalledNode(backend, bound: .seconds(30)) { api, services in
            let user = try await api.signupAndLogin("user@example.com")
            try await services.changes.catchUp()
            let applied = services.changes.applied
            // A write by another node that this node has not read.
            try await services.database.execute(
                "INSERT INTO changes (at, kind, subject) VALUES ($1, $2, $3)", Date(), "user.updated", UUID().uuidString.lowercased())
            let ahead = String(applied + 1)
            let anonymous = try await api.send(.post, "/v1/authorize", json: ["object": "org:\(UUID())", "action": "viewer"],
                                               headers: [HTTPField.Name("Portcullis-Revision")!: ahead])
            #expect(anonymous.status == .unauthorized)
            let forged = try await api.send(.post, "/v1/authorize", json: ["object": "org:\(UUID())", "action": "viewer"],
                                            token: "pcl_0123456789ab_" + String(repeating: "x", count: 43), headers: [HTTPField.Name("Portcullis-Revision")!: ahead])
            #expect(forged.status == .unauthorized)
            #expect(services.changes.applied == applied, "no log read for a caller that is not authenticated")
            let signedIn = try await api.send(.post, "/v1/authorize", json: ["object": "org:\(UUID())", "action": "viewer"],
                                              token: user.access, headers: [HTTPField.Name("Portcullis-Revision")!: ahead])
            #expect(signedIn.status == .ok)
            #expect(services.changes.applied == applied + 1)
        }
    }

    /// Counts the database lookups behind the key verifier.
    final class CountingLookup: APIKeyLookup {
        let lookups = Atomic<Int>(0)
        func key(prefix: String) async throws -> (APIKey, secretHash: String)? {
            lookups.add(1, ordering: .relaxed)
            return nil
        }
        func recordUse(_ uses: [UUID: Date]) async throws {}
    }

    @Test("unknown API-key prefixes are remembered as absent for a short time")
    func absentPrefixes() async throws {
        let lookup = CountingLookup()
        let verifier = APIKeyVerifier(lookup: lookup)
        let guess = "pcl_0123456789ab_" + String(repeating: "x", count: 43)
        for _ in 0..<5 { #expect(try await verifier.verify(guess, now: Date()) == nil) }
        #expect(lookup.lookups.load(ordering: .relaxed) == 1)
        // A node behind the log asks again; any invalidation (a restore, say) forgets the answer.
        #expect(try await verifier.verify(guess, now: Date(), readThrough: true) == nil)
        verifier.invalidate { _ in false }
        #expect(try await verifier.verify(guess, now: Date()) == nil)
        #expect(lookup.lookups.load(ordering: .relaxed) == 3)
    }
}
