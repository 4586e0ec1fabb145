import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Server
import Testing

/// One answer to "who administers an org", on both paths: the org's own routes and asking
/// decisions about others there (issue 13).
@Suite("Authority: membership makes an org's administrators")
struct AuthorityTests {
    @Test("a binding on the org object grants in decisions but is not membership; an admin membership opens both paths", arguments: Backend.allCases)
    func administersOneAnswer(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let bob = try await api.signupAndLogin("bob@example.com")
            let carol = try await api.signupAndLogin("carol@example.com")
            let org = try await api.createOrg(alice.access)
            // Bob holds admin on the org object through a binding, and no membership.
            #expect(try await api.send(.put, "/v1/orgs/\(org)/bindings",
                                       json: ["subject": ["user_id": bob.userID], "resource": "org:\(org)", "role": "admin"], token: alice.access).status == .created)
            #expect(try await api.allowed(bob.access, "org:\(org)/project:p", "admin"))

            // Not a member: the org's routes do not know him, and his authz:check key may not ask about others there.
            let bobChecker = try await api.createKey(bob.access, scopes: ["authz:check"]).key
            #expect(try await api.send(.get, "/v1/orgs/\(org)", token: bob.access).status == .notFound)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/members", json: ["user_id": carol.userID, "role": "viewer"], token: bob.access).status == .notFound)
            #expect(try await api.authorize(bobChecker, "org:\(org)", "viewer", subject: ["user_id": alice.userID]).status == .forbidden)
            #expect(try await api.authorize(bobChecker, "org:\(org)/project:p", "viewer", subject: ["user_id": alice.userID]).status == .forbidden)
            let lookup = try await api.send(.post, "/v1/lookup", json: ["permission": "viewer", "subject": ["user_id": alice.userID]], token: bobChecker)
            #expect((lookup.json["items"] as? [[String: Any]])?.isEmpty == true)

            // An editor member neither manages members nor asks about others.
            #expect(try await api.send(.post, "/v1/orgs/\(org)/members", json: ["user_id": bob.userID, "role": "editor"], token: alice.access).status == .created)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/members", json: ["user_id": carol.userID, "role": "viewer"], token: bob.access).status == .forbidden)
            #expect(try await api.authorize(bobChecker, "org:\(org)", "viewer", subject: ["user_id": alice.userID]).status == .forbidden)

            // An admin member: both paths open at once.
            #expect(try await api.send(.patch, "/v1/orgs/\(org)/members/\(bob.userID)", json: ["role": "admin"], token: alice.access).status == .ok)
            #expect(try await api.allowed(bobChecker, "org:\(org)", "owner", subject: ["user_id": alice.userID]))
            #expect(try await api.send(.post, "/v1/orgs/\(org)/members", json: ["user_id": carol.userID, "role": "viewer"], token: bob.access).status == .created)
        }
    }
}
