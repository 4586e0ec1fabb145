import Foundation
import HTTPTypes
import Server
import Testing

/// AuthZEN 1.0 beyond single evaluations: per-evaluation errors, the search APIs, the
/// metadata's identifier and the request id.
@Suite("AuthZEN")
struct AuthZENTests {
    static func decisions(_ reply: APIClient.Reply) -> [[String: Any]] {
        reply.json["evaluations"] as? [[String: Any]] ?? []
    }

    @Test("one bad evaluation fails alone, with its error in its context", arguments: Backend.allCases)
    func perItemErrors(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, _ in
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "viewer")
            let other = try await api.createOrg(bob.access, name: "Bob's own")
            let key = try await api.send(.post, "/v1/keys", json: ["name": "gw", "scopes": ["authz:check"]], token: alice.access)
            let gateway = try #require(key.json["key"] as? String)
            let many = try await api.send(.post, "/access/v1/evaluations", json: [
                "action": ["name": "viewer"],
                "evaluations": [
                    ["subject": ["type": "user", "id": bob.userID], "resource": ["type": "org", "id": org]],
                    ["subject": ["type": "group", "id": bob.userID], "resource": ["type": "org", "id": org]],
                    ["subject": ["type": "user", "id": bob.userID], "resource": ["type": "org", "id": org], "action": ["name": "fly"]],
                    // Alice's key may not ask about anyone in an org she does not run.
                    ["subject": ["type": "user", "id": bob.userID], "resource": ["type": "org", "id": other]],
                    ["subject": ["type": "user", "id": bob.userID], "resource": ["type": "org", "id": org], "action": ["name": "owner"]],
                ],
            ], token: gateway, headers: [HTTPField.Name("X-Request-ID")!: "pep-4711"])
            #expect(many.status == .ok, "\(many.text)")
            #expect(many.headers[HTTPField.Name("X-Request-ID")!] == "pep-4711")
            let results = Self.decisions(many)
            #expect(results.map { $0["decision"] as? Bool } == [true, false, false, false, false])
            let errors = results.map { (($0["context"] as? [String: Any])?["error"] as? [String: Any])?["status"] as? Int }
            #expect(errors == [nil, 400, 400, 403, nil])
            #expect(((results[4]["context"] as? [String: Any])?["reason"] as? String)?.contains("below owner") == true)
            // An error is a denial for deny_on_first_deny: the answer stops there.
            let stopped = try await api.send(.post, "/access/v1/evaluations", json: [
                "subject": ["type": "user", "id": bob.userID], "action": ["name": "viewer"],
                "options": ["evaluations_semantic": "deny_on_first_deny"],
                "evaluations": [["resource": ["type": "org", "id": org]], ["resource": ["type": "doc", "id": "d1"]], ["resource": ["type": "org", "id": org]]],
            ], token: gateway)
            #expect(Self.decisions(stopped).count == 2)
            // A permit that ends a run of evaluations stops permit_on_first_permit too.
            let permitFirst = try await api.send(.post, "/access/v1/evaluations", json: [
                "subject": ["type": "user", "id": bob.userID], "action": ["name": "viewer"],
                "options": ["evaluations_semantic": "permit_on_first_permit"],
                "evaluations": [["resource": ["type": "org", "id": org]], ["resource": ["type": "doc", "id": "d1"]], ["resource": ["type": "org", "id": org]]],
            ], token: gateway)
            #expect(Self.decisions(permitFirst).map { $0["decision"] as? Bool } == [true])
            // What concerns the whole request is still a 400.
            #expect(try await api.send(.post, "/access/v1/evaluations", json: [
                "options": ["evaluations_semantic": "sometimes"], "evaluations": [],
            ], token: gateway).status == .badRequest)
        }
    }

    @Test("subject, resource and action search answer what evaluation allows", arguments: Backend.allCases)
    func search(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, _ in
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "viewer")
            let root = try await api.login("root@example.com", password: testRootPassword)
            let bound = try await api.send(.put, "/v1/orgs/\(org)/bindings", json: [
                "subject": ["user_id": bob.userID], "resource": "org:\(org)/project:p1", "role": "editor",
            ], token: alice.access)
            #expect(bound.status == .created, "\(bound.text)")

            // Who may edit project p1? Alice (owner of the org) and Bob (bound there); on p2 only Alice.
            func subjects(_ resource: [String: Any], _ action: String, token: String, page: [String: Any]? = nil) async throws -> APIClient.Reply {
                var body: [String: Any] = ["subject": ["type": "user"], "action": ["name": action], "resource": resource]
                if let page { body["page"] = page }
                return try await api.send(.post, "/access/v1/search/subject", json: body, token: token)
            }
            let p1 = try await subjects(["type": "project", "id": "p1", "properties": ["org_id": org]], "editor", token: root.access)
            #expect(p1.status == .ok, "\(p1.text)")
            let ids = Set((p1.json["results"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
            #expect(ids == [alice.userID, bob.userID])
            #expect((p1.json["page"] as? [String: Any])?["next_token"] as? String == "")
            let p2 = try await subjects(["type": "project", "id": "p2", "properties": ["org_id": org]], "editor", token: root.access)
            #expect((p2.json["results"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [alice.userID])
            // Pages: one at a time, the token leads to the rest.
            let first = try await subjects(["type": "org", "id": org], "viewer", token: root.access, page: ["limit": 1])
            let token = try #require((first.json["page"] as? [String: Any])?["next_token"] as? String)
            #expect(!token.isEmpty && (first.json["results"] as? [Any])?.count == 1)
            let second = try await subjects(["type": "org", "id": org], "viewer", token: root.access, page: ["next_token": token, "limit": 1])
            #expect((second.json["results"] as? [Any])?.count == 1 && (second.json["page"] as? [String: Any])?["next_token"] as? String == "")
            #expect(try await subjects(["type": "org", "id": org], "viewer", token: root.access, page: ["next_token": "bogus"]).status == .badRequest)
            // A forged offset near Int.max is refused, not trusted (it would overflow).
            let huge = Data("o:9223372036854775807".utf8).base64EncodedString()
            #expect(try await subjects(["type": "org", "id": org], "viewer", token: root.access, page: ["next_token": huge]).status == .badRequest)
            let past = Data("o:1000".utf8).base64EncodedString()
            let beyond = try await subjects(["type": "org", "id": org], "viewer", token: root.access, page: ["next_token": past])
            #expect(beyond.status == .ok && (beyond.json["results"] as? [Any])?.isEmpty == true)
            // It answers about others: a plain member may not search.
            #expect(try await subjects(["type": "org", "id": org], "viewer", token: bob.access).status == .forbidden)

            // Which projects may Bob edit? The bound one, with an id evaluation accepts.
            let resources = try await api.send(.post, "/access/v1/search/resource", json: [
                "subject": ["type": "user", "id": bob.userID], "action": ["name": "editor"], "resource": ["type": "project"],
            ], token: bob.access)
            let found = resources.json["results"] as? [[String: Any]] ?? []
            #expect(found.count == 1 && found.first?["id"] as? String == "org:\(org)/project:p1" && found.first?["type"] as? String == "project")
            let orgs = try await api.send(.post, "/access/v1/search/resource", json: [
                "subject": ["type": "user", "id": bob.userID], "action": ["name": "org.read"], "resource": ["type": "org"],
            ], token: bob.access)
            #expect((orgs.json["results"] as? [[String: Any]])?.first?["id"] as? String == org)
            for result in found + (orgs.json["results"] as? [[String: Any]] ?? []) {
                let check = try await api.send(.post, "/access/v1/evaluation", json: [
                    "subject": ["type": "user", "id": bob.userID], "resource": result, "action": ["name": result["type"] as? String == "org" ? "org.read" : "editor"],
                ], token: bob.access)
                #expect(check.json["decision"] as? Bool == true, "\(result)")
            }

            // What may Bob do on p1? Up to editor, and each permission an editor holds.
            let actions = try await api.send(.post, "/access/v1/search/action", json: [
                "subject": ["type": "user", "id": bob.userID], "resource": ["type": "project", "id": "p1", "properties": ["org_id": org]],
            ], token: bob.access)
            let names = (actions.json["results"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(names.contains("viewer") && names.contains("editor") && names.contains("org.read") && !names.contains("admin"))
            #expect(!names.contains("members.write"))
        }
    }

    @Test("the metadata names this server and every endpoint it serves")
    func metadata() async throws {
        try await withApp(.sqlite) { api, _ in
            let meta = try await api.send(.get, "/.well-known/authzen-configuration")
            #expect(meta.json["policy_decision_point"] as? String == "http://portcullis.test")
            for (field, path) in [("search_subject_endpoint", "subject"), ("search_resource_endpoint", "resource"), ("search_action_endpoint", "action")] {
                #expect(meta.json[field] as? String == "http://portcullis.test/access/v1/search/\(path)")
            }
        }
    }
}
