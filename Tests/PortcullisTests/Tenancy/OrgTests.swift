import Foundation
import HTTPTypes
import Server
import Storage
import Testing
import Wire

@Suite("Orgs, members, visibility and audit over HTTP")
struct OrgTests {
    @Test("create, read, list, update, delete", arguments: Backend.allCases)
    func lifecycle(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let created = try await api.send(
                .post, "/v1/orgs", json: ["name": "  Acme  ", "description": "rockets", "metadata": ["tier": "gold", "seats": 5]], token: alice.access)
            #expect(created.status == .created)
            #expect(created.revision != nil)
            #expect(created.json["name"] as? String == "Acme")
            #expect(created.json["role"] as? String == "owner")
            #expect((created.json["metadata"] as? [String: Any])?["seats"] as? Int == 5)
            let id = try #require(created.json["id"] as? String)

            let read = try await api.send(.get, "/v1/orgs/\(id)", token: alice.access)
            #expect(read.status == .ok)
            #expect(read.json["description"] as? String == "rockets")

            let members = try await api.items("/v1/orgs/\(id)/members", token: alice.access)
            #expect(members.count == 1)
            #expect(members.first?["user_id"] as? String == alice.userID)
            #expect(members.first?["role"] as? String == "owner")
            #expect(members.first?["expires_at"] is NSNull)

            let deleted = try await api.send(.delete, "/v1/orgs/\(id)", token: alice.access)
            #expect(deleted.status == .noContent)
            #expect(deleted.revision != nil)
            #expect(try await api.send(.get, "/v1/orgs/\(id)", token: alice.access).status == .notFound)
            #expect(try await api.items("/v1/orgs", token: alice.access).isEmpty)
        }
    }

    @Test("bad org fields are 400 and create nothing", arguments: Backend.allCases)
    func badFields(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let big = String(repeating: "x", count: 17 * 1024)
            let cases: [[String: Any]] = [
                ["name": ""], ["name": "   "], ["name": String(repeating: "n", count: 201)], ["name": 5],
                ["name": "ok", "description": String(repeating: "d", count: 1025)],
                ["name": "ok", "metadata": [1, 2]], ["name": "ok", "metadata": "text"],
                ["name": "ok", "metadata": ["blob": big]], ["description": "no name"],
            ]
            for body in cases {
                let reply = try await api.send(.post, "/v1/orgs", json: body, token: alice.access)
                #expect(reply.status == .badRequest, "\(body.keys.sorted()): \(reply.text)")
                #expect(reply.code == "invalid_request")
            }
            #expect(try await api.items("/v1/orgs", token: alice.access).isEmpty)
            // Unauthenticated, with a valid body: 401 and nothing created.
            #expect(try await api.send(.post, "/v1/orgs", json: ["name": "x"]).status == .unauthorized)
        }
    }

    @Test("PATCH changes only the fields given", arguments: Backend.allCases)
    func partialUpdate(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let created = try await api.send(.post, "/v1/orgs", json: ["name": "Acme", "description": "d1", "metadata": ["a": 1]], token: alice.access)
            let id = try #require(created.json["id"] as? String)

            let desc = try await api.send(.patch, "/v1/orgs/\(id)", json: ["description": "d2"], token: alice.access)
            #expect(desc.status == .ok)
            #expect(desc.revision != nil)
            #expect(desc.json["name"] as? String == "Acme")
            #expect(desc.json["description"] as? String == "d2")
            #expect((desc.json["metadata"] as? [String: Any])?["a"] as? Int == 1)

            let renamed = try await api.send(.patch, "/v1/orgs/\(id)", json: ["name": "Acme Two", "unknown_field": true], token: alice.access)
            #expect(renamed.json["name"] as? String == "Acme Two")
            #expect(renamed.json["description"] as? String == "d2")

            let cleared = try await api.send(.patch, "/v1/orgs/\(id)", json: ["metadata": NSNull(), "description": NSNull()], token: alice.access)
            #expect((cleared.json["metadata"] as? [String: Any])?.isEmpty == true)
            #expect(cleared.json["description"] as? String == "")

            // A patch that changes nothing writes nothing: no revision, no audit event.
            let auditBefore = try await api.send(.get, "/v1/orgs/\(id)/audit", token: alice.access).json["total"] as? Int
            let same = try await api.send(.patch, "/v1/orgs/\(id)", json: ["name": "Acme Two"], token: alice.access)
            #expect(same.status == .ok)
            #expect(same.revision == nil)
            #expect(try await api.send(.get, "/v1/orgs/\(id)/audit", token: alice.access).json["total"] as? Int == auditBefore)

            for body: [String: Any] in [["name": NSNull()], ["name": ""], ["metadata": [1]], ["metadata": 3]] {
                let bad = try await api.send(.patch, "/v1/orgs/\(id)", json: body, token: alice.access)
                #expect(bad.status == .badRequest, "\(body.keys.sorted())")
            }
            let after = try await api.send(.get, "/v1/orgs/\(id)", token: alice.access)
            #expect(after.json["name"] as? String == "Acme Two")

            // A viewer may read but not update.
            let viewer = try await api.signupAndLogin("viewer@example.com")
            try await api.addMember(alice.access, org: id, email: "viewer@example.com", role: "viewer")
            #expect(try await api.send(.get, "/v1/orgs/\(id)", token: viewer.access).json["role"] as? String == "viewer")
            let denied = try await api.send(.patch, "/v1/orgs/\(id)", json: ["name": "Mine"], token: viewer.access)
            #expect(denied.status == .forbidden)
            #expect(try await api.send(.get, "/v1/orgs/\(id)", token: alice.access).json["name"] as? String == "Acme Two")
        }
    }

    @Test("listing: pagination bounds, stable order, name filter, root scope", arguments: Backend.allCases)
    func listing(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let names = ["100% real", "alpha_beta", "AlphaXbeta", "Zed"]
            var ids: [String] = []
            for name in names { ids.append(try await api.createOrg(alice.access, name: name)) }

            let first = try await api.send(.get, "/v1/orgs?limit=2", token: alice.access)
            #expect(first.json["total"] as? Int == 4)
            #expect(first.json["limit"] as? Int == 2)
            let page1 = (first.json["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            let page2 = try await api.items("/v1/orgs?limit=2&offset=2", token: alice.access).compactMap { $0["id"] as? String }
            #expect(page1 + page2 == ids)
            #expect(try await api.items("/v1/orgs?offset=4", token: alice.access).isEmpty)
            #expect(try await api.items("/v1/orgs?limit=100", token: alice.access).count == 4)
            // Authentication comes before query validation (SPEC §11 order).
            #expect(try await api.send(.get, "/v1/orgs?limit=500").status == .unauthorized)
            for query in ["limit=0", "limit=101", "limit=-1", "limit=x", "offset=-1", "limit=1&limit=2", "scope=bogus", "name=a&name=b"] {
                let reply = try await api.send(.get, "/v1/orgs?\(query)", token: alice.access)
                #expect(reply.status == .badRequest, "\(query)")
                #expect(reply.code == "invalid_request")
            }

            func named(_ filter: String) async throws -> [String] {
                let escaped = filter.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? filter
                return try await api.items("/v1/orgs?name=\(escaped)", token: alice.access).compactMap { $0["name"] as? String }
            }
            #expect(try await named("%") == ["100% real"])
            #expect(try await named("a_b") == ["alpha_beta"])
            #expect(try await named("ALPHA") == ["alpha_beta", "AlphaXbeta"])
            #expect(try await named("nothing").isEmpty)

            // Others see none of them; root sees all with scope=all and its own role (none) as null.
            let bob = try await api.signupAndLogin("bob@example.com")
            #expect(try await api.items("/v1/orgs", token: bob.access).isEmpty)
            #expect(try await api.send(.get, "/v1/orgs?scope=all", token: bob.access).status == .forbidden)
            let root = try await api.login("root@example.com", password: "root password 123")
            #expect(try await api.items("/v1/orgs", token: root.access).isEmpty)
            let all = try await api.items("/v1/orgs?scope=all", token: root.access)
            #expect(all.count == 4)
            #expect(all.allSatisfy { $0["role"] is NSNull })
        }
    }

    @Test("a non-member gets 404 on every org route, and malformed ids are 404", arguments: Backend.allCases)
    func nonMemberNotFound(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let org = try await api.createOrg(alice.access)
            let mallory = try await api.signupAndLogin("mallory@example.com")
            _ = try await api.createOrg(mallory.access, name: "Mallory's")
            // A valid body for every route under an org, so the 404 is about membership alone.
            func bodies(_ orgID: String) -> [String: [String: Any]] {
                [
                    "PATCH /v1/orgs/{org_id}": ["name": "Pwned"],
                    "POST /v1/orgs/{org_id}/members": ["email": "mallory@example.com", "role": "viewer"],
                    "PATCH /v1/orgs/{org_id}/members/{user_id}": ["role": "viewer"],
                    "PUT /v1/orgs/{org_id}/bindings": ["subject": ["user_id": mallory.userID], "resource": "org:\(orgID)/doc:1", "role": "viewer"],
                    "POST /v1/orgs/{org_id}/service-accounts": ["name": "ci", "role": "viewer"],
                    "POST /v1/orgs/{org_id}/service-accounts/{account_id}/keys": ["name": "ci key"],
                    "POST /v1/orgs/{org_id}/invites": ["email": "someone@example.com", "role": "viewer"],
                    "POST /v1/orgs/{org_id}/webhooks": ["url": "https://hooks.example.com/in"],
                    "PATCH /v1/orgs/{org_id}/webhooks/{webhook_id}": ["description": "pwned"],
                    "POST /v1/orgs/{org_id}/groups": ["name": "Pwned"],
                    "PATCH /v1/orgs/{org_id}/groups/{group_id}": ["name": "Pwned"],
                    "PUT /v1/orgs/{org_id}/groups/{group_id}/members": ["user_id": mallory.userID],
                    "POST /v1/orgs/{org_id}/overrides": [
                        "subject": ["user_id": mallory.userID], "resource": "org:\(orgID)", "permission": "org.read", "effect": "allow", "reason": "pwned",
                    ],
                ]
            }
            let orgRoutes = RouteTable.all(services: services).routes.filter { $0.path.hasPrefix("/v1/orgs/{org_id}") }
            #expect(orgRoutes.count >= 8)
            for route in orgRoutes {
                let key = "\(route.method) \(route.path)"
                let needsBody = route.method == .post || route.method == .patch || route.method == .put
                let body = bodies(org)[key] ?? (needsBody ? [:] : nil)
                for orgID in [org, UUID().uuidString.lowercased()] {
                    let path = route.path.replacingOccurrences(of: "{org_id}", with: orgID)
                        .replacingOccurrences(of: "{user_id}", with: alice.userID).replacingOccurrences(of: "{binding_id}", with: UUID().uuidString)
                        .replacingOccurrences(of: "{account_id}", with: UUID().uuidString).replacingOccurrences(of: "{key_id}", with: UUID().uuidString)
                        .replacingOccurrences(of: "{webhook_id}", with: UUID().uuidString).replacingOccurrences(of: "{delivery_id}", with: UUID().uuidString)
                        .replacingOccurrences(of: "{group_id}", with: UUID().uuidString).replacingOccurrences(of: "{member_id}", with: UUID().uuidString)
                        .replacingOccurrences(of: "{override_id}", with: UUID().uuidString)
                    let reply = try await api.send(route.method, path, json: bodies(orgID)[key] ?? body, token: mallory.access)
                    #expect(reply.status == .notFound, "\(key) as a non-member: \(reply.text)")
                    #expect(reply.code == "not_found")
                }
                for bad in ["not-a-uuid", "1", "%27%20OR%201%3D1", String(repeating: "f", count: 300)] {
                    let path = route.path.replacingOccurrences(of: "{org_id}", with: bad)
                        .replacingOccurrences(of: "{user_id}", with: alice.userID).replacingOccurrences(of: "{binding_id}", with: UUID().uuidString)
                        .replacingOccurrences(of: "{account_id}", with: UUID().uuidString).replacingOccurrences(of: "{key_id}", with: UUID().uuidString)
                        .replacingOccurrences(of: "{webhook_id}", with: UUID().uuidString).replacingOccurrences(of: "{delivery_id}", with: UUID().uuidString)
                        .replacingOccurrences(of: "{group_id}", with: UUID().uuidString).replacingOccurrences(of: "{member_id}", with: UUID().uuidString)
                        .replacingOccurrences(of: "{override_id}", with: UUID().uuidString)
                    let reply = try await api.send(route.method, path, json: body, token: alice.access)
                    #expect(reply.status == .notFound, "\(key) with org id \(bad): \(reply.text)")
                }
                if ["{user_id}", "{binding_id}", "{account_id}", "{key_id}", "{group_id}", "{override_id}"].contains(where: route.path.contains) {
                    let path = route.path.replacingOccurrences(of: "{org_id}", with: org)
                        .replacingOccurrences(of: "{user_id}", with: "nope").replacingOccurrences(of: "{binding_id}", with: "nope")
                        .replacingOccurrences(of: "{account_id}", with: "nope").replacingOccurrences(of: "{key_id}", with: "nope")
                        .replacingOccurrences(of: "{group_id}", with: "nope").replacingOccurrences(of: "{member_id}", with: "nope")
                        .replacingOccurrences(of: "{override_id}", with: "nope")
                    #expect(try await api.send(route.method, path, json: body, token: alice.access).status == .notFound, "\(key) bad id")
                }
            }
            // Nothing Mallory tried changed Alice's org.
            let after = try await api.send(.get, "/v1/orgs/\(org)", token: alice.access)
            #expect(after.json["name"] as? String == "Acme")
            #expect(try await api.items("/v1/orgs/\(org)/members", token: alice.access).count == 1)
        }
    }

    @Test("adding members: by id or e-mail, already_member, unknown user, bad fields", arguments: Backend.allCases)
    func addingMembers(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let org = try await api.createOrg(alice.access)
            let bobID = try await api.signup("bob@example.com")
            try await api.proveAddress("bob@example.com")
            let added = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["email": " BOB@example.com ", "role": "editor"], token: alice.access)
            #expect(added.status == .created)
            #expect(added.revision != nil)
            #expect(added.json["user_id"] as? String == bobID)
            #expect(added.json["email"] as? String == "bob@example.com")

            let again = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["user_id": bobID, "role": "viewer"], token: alice.access)
            #expect(again.status == .conflict)
            #expect(again.code == "already_member")

            // No account (or none with a proven address): the address is invited instead.
            let unknown = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["email": "ghost@example.com", "role": "viewer"], token: alice.access)
            #expect(unknown.status == .accepted, "\(unknown.text)")
            #expect(unknown.json["dormant"] as? Bool == true)
            #expect(unknown.json["email"] as? String == "ghost@example.com")
            let bad: [[String: Any]] = [
                ["email": "carol@example.com", "role": "superuser"], ["email": "carol@example.com"],
                ["user_id": bobID, "email": "bob@example.com", "role": "viewer"], ["role": "viewer"],
                ["email": "carol@example.com", "user_id": NSNull(), "role": "viewer"], ["email": NSNull(), "user_id": bobID, "role": "viewer"],
                ["user_id": "not-a-uuid", "role": "viewer"], ["email": "not an email", "role": "viewer"],
                ["email": "carol@example.com", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"],
                ["email": "carol@example.com", "role": "viewer", "expires_at": "tomorrow"],
            ]
            _ = try await api.signup("carol@example.com")
            for body in bad {
                let reply = try await api.send(.post, "/v1/orgs/\(org)/members", json: body, token: alice.access)
                #expect(reply.status == .badRequest, "\(body): \(reply.text)")
            }
            #expect(try await api.items("/v1/orgs/\(org)/members", token: alice.access).count == 2)
        }
    }

    @Test("time-bound memberships stop counting when they expire", arguments: Backend.allCases)
    func expiringMembership(_ backend: Backend) async throws {
        let clock = TestClock()
        try await withApp(backend, clock: clock) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let org = try await api.createOrg(alice.access)
            let bob = try await api.signupAndLogin("bob@example.com")
            let expires = RFC3339.string(clock.now.addingTimeInterval(60))
            let added = try await api.addMember(alice.access, org: org, email: "bob@example.com", role: "admin", expiresAt: expires)
            #expect(added.json["expires_at"] as? String == expires)
            #expect(try await api.send(.get, "/v1/orgs/\(org)", token: bob.access).json["role"] as? String == "admin")
            #expect(try await api.items("/v1/orgs", token: bob.access).count == 1)

            clock.advance(by: 120)
            #expect(try await api.send(.get, "/v1/orgs/\(org)", token: bob.access).status == .notFound)
            #expect(try await api.items("/v1/orgs", token: bob.access).isEmpty)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/members", token: bob.access).status == .notFound)
            // The owner still sees the expired grant and can renew it; adding again replaces it.
            let listed = try await api.items("/v1/orgs/\(org)/members", token: alice.access)
            #expect(listed.count == 2)
            let renewed = try await api.send(.patch, "/v1/orgs/\(org)/members/\(bob.userID)", json: ["expires_at": NSNull()], token: alice.access)
            #expect(renewed.status == .ok)
            #expect(renewed.json["expires_at"] is NSNull)
            #expect(try await api.send(.get, "/v1/orgs/\(org)", token: bob.access).json["role"] as? String == "admin")

            // A temporary owner does not count for the last-owner rule.
            let temp = RFC3339.string(clock.now.addingTimeInterval(3600))
            let carol = try await api.signupAndLogin("carol@example.com")
            try await api.addMember(alice.access, org: org, email: "carol@example.com", role: "owner", expiresAt: temp)
            let leave = try await api.send(.delete, "/v1/orgs/\(org)/members/\(alice.userID)", token: alice.access)
            #expect(leave.code == "last_owner")
            let carolLeaves = try await api.send(.delete, "/v1/orgs/\(org)/members/\(carol.userID)", token: carol.access)
            #expect(carolLeaves.status == .noContent)
        }
    }

    @Test("two owners demoting or removing each other at once leave exactly one owner", arguments: Backend.allCases)
    func lastOwnerRace(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let a = try await api.signupAndLogin("a@example.com")
            let b = try await api.signupAndLogin("b@example.com")
            let org = try await api.createOrg(a.access)
            for round in 0..<6 {
                try await api.addMember(a.access, org: org, email: "b@example.com", role: "owner")
                let statuses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                    if round % 2 == 0 {
                        group.addTask {
                            let r = try await api.send(.patch, "/v1/orgs/\(org)/members/\(b.userID)", json: ["role": "admin"], token: a.access)
                            return (r.status.code, r.code)
                        }
                        group.addTask {
                            let r = try await api.send(.patch, "/v1/orgs/\(org)/members/\(a.userID)", json: ["role": "admin"], token: b.access)
                            return (r.status.code, r.code)
                        }
                    } else {
                        // Both leave at once.
                        group.addTask {
                            let r = try await api.send(.delete, "/v1/orgs/\(org)/members/\(a.userID)", token: a.access)
                            return (r.status.code, r.code)
                        }
                        group.addTask {
                            let r = try await api.send(.delete, "/v1/orgs/\(org)/members/\(b.userID)", token: b.access)
                            return (r.status.code, r.code)
                        }
                    }
                    var all: [(Int, String?)] = []
                    for try await s in group { all.append(s) }
                    return all
                }
                let ok = statuses.filter { $0.0 == 200 || $0.0 == 204 }
                // The loser is refused either as the last owner (409) or, once demoted, as an
                // admin who may not change an owner (403); never may both succeed.
                let refused = statuses.filter { ($0.0 == 409 && $0.1 == "last_owner") || ($0.0 == 403 && $0.1 == "forbidden") }
                #expect(ok.count == 1 && refused.count == 1, "round \(round): \(statuses)")
                let owners = try await services.database.query(
                    "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner'", UUID(uuidString: org)!)
                #expect(owners.count == 1, "round \(round)")
                // Put the org back to "a is the only owner, b is out" for the next round.
                let ownerID = try owners[0].uuid("user_id").uuidString.lowercased()
                if ownerID == b.userID {
                    let aIsMember = try await api.send(.get, "/v1/orgs/\(org)/members/\(a.userID)", token: b.access).status == .ok
                    if aIsMember {
                        _ = try await api.send(.patch, "/v1/orgs/\(org)/members/\(a.userID)", json: ["role": "owner"], token: b.access)
                    } else {
                        try await api.addMember(b.access, org: org, email: "a@example.com", role: "owner")
                    }
                }
                if try await api.send(.get, "/v1/orgs/\(org)/members/\(b.userID)", token: a.access).status == .ok {
                    #expect(try await api.send(.delete, "/v1/orgs/\(org)/members/\(b.userID)", token: a.access).status == .noContent)
                }
                let reset = try await api.items("/v1/orgs/\(org)/members", token: a.access)
                #expect(reset.count == 1 && reset[0]["user_id"] as? String == a.userID, "round \(round) reset")
            }
        }
    }

    @Test("deleting an org removes its memberships atomically; only owners may", arguments: Backend.allCases)
    func cascade(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let org = try await api.createOrg(alice.access)
            let keep = try await api.createOrg(alice.access, name: "Keep")
            let admin = try await api.signupAndLogin("admin@example.com")
            try await api.addMember(alice.access, org: org, email: "admin@example.com", role: "admin")
            try await api.addMember(alice.access, org: keep, email: "admin@example.com", role: "viewer")
            let denied = try await api.send(.delete, "/v1/orgs/\(org)", token: admin.access)
            #expect(denied.status == .forbidden)
            func count(_ sql: String, _ id: String) async throws -> Int64 {
                try await services.database.queryFirst(sql, UUID(uuidString: id)!)?.int("n") ?? -1
            }
            #expect(try await count("SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1", org) == 2)
            #expect(try await api.send(.delete, "/v1/orgs/\(org)", token: alice.access).status == .noContent)
            #expect(try await count("SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1", org) == 0)
            #expect(try await count("SELECT COUNT(*) AS n FROM orgs WHERE id = $1", org) == 0)
            #expect(try await count("SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1", keep) == 2)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/members", token: admin.access).status == .notFound)
            #expect(try await api.items("/v1/orgs", token: admin.access).compactMap { $0["id"] as? String } == [keep])
            // The org's history outlives it.
            #expect(try await count("SELECT COUNT(*) AS n FROM audit_events WHERE org_id = $1", org) >= 3)
        }
    }

    @Test("every mutation writes its audit event; refused ones write none", arguments: Backend.allCases)
    func audit(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, _ in
            let (alice, bob, org) = try await api.aliceAndBob()
            _ = try await api.send(.patch, "/v1/orgs/\(org)", json: ["name": "Acme 2"], token: alice.access)
            try await api.addMember(alice.access, org: org, email: "bob@example.com", role: "viewer")
            _ = try await api.send(.patch, "/v1/orgs/\(org)/members/\(bob.userID)", json: ["role": "editor"], token: alice.access)
            _ = try await api.send(.patch, "/v1/orgs/\(org)/members/\(bob.userID)", json: ["expires_at": "2999-01-01T00:00:00Z"], token: alice.access)
            _ = try await api.send(.delete, "/v1/orgs/\(org)/members/\(bob.userID)", token: alice.access)
            try await api.addMember(alice.access, org: org, email: "bob@example.com", role: "viewer")
            _ = try await api.send(.delete, "/v1/orgs/\(org)/members/\(bob.userID)", token: bob.access)

            // Refused attempts leave no trace in the log.
            try await api.addMember(alice.access, org: org, email: "bob@example.com", role: "viewer")
            let totalBefore = try await api.send(.get, "/v1/orgs/\(org)/audit", token: alice.access).json["total"] as? Int
            #expect(try await api.send(.patch, "/v1/orgs/\(org)", json: ["name": "Bob's"], token: bob.access).status == .forbidden)
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/members/\(alice.userID)", token: alice.access).code == "last_owner")
            #expect(try await api.send(.get, "/v1/orgs/\(org)/audit", token: bob.access).status == .forbidden)
            let events = try await api.items("/v1/orgs/\(org)/audit?limit=100", token: alice.access)
            #expect(events.count == totalBefore)
            let actions = events.compactMap { $0["action"] as? String }
            #expect(actions == [
                "member.added", "member.left", "member.added", "member.removed", "member.updated",
                "member.role_changed", "member.added", "org.updated", "org.created",
            ])
            let changed = try #require(events.first { $0["action"] as? String == "member.role_changed" })
            #expect((changed["actor"] as? [String: Any])?["id"] as? String == alice.userID)
            #expect((changed["actor"] as? [String: Any])?["type"] as? String == "user")
            #expect(changed["target"] as? String == "user:\(bob.userID)")
            #expect(changed["org_id"] as? String == org)
            #expect((changed["details"] as? [String: Any])?["from"] as? String == "viewer")
            #expect((changed["details"] as? [String: Any])?["to"] as? String == "editor")
            let left = try #require(events.first { $0["action"] as? String == "member.left" })
            #expect((left["actor"] as? [String: Any])?["id"] as? String == bob.userID)

            // Root acts on any org; the act is marked in the log. Only root reads the platform log.
            let root = try await api.login("root@example.com", password: "root password 123")
            #expect(try await api.send(.patch, "/v1/orgs/\(org)", json: ["description": "by root"], token: root.access).status == .ok)
            let latest = try await api.items("/v1/orgs/\(org)/audit?limit=1", token: alice.access)
            #expect(latest.first?["action"] as? String == "org.updated")
            #expect((latest.first?["details"] as? [String: Any])?["as_root"] as? Bool == true)
            #expect(try await api.send(.get, "/v1/audit", token: alice.access).status == .forbidden)
            let platform = try await api.send(.get, "/v1/audit?limit=5", token: root.access)
            #expect(platform.json["total"] as? Int == events.count + 1)
            #expect((platform.json["items"] as? [[String: Any]])?.count == 5)

            // Filters: by action, by actor, both; bad ones are 400.
            let added = try await api.send(.get, "/v1/orgs/\(org)/audit?action=member.added", token: alice.access)
            #expect(added.json["total"] as? Int == 3)
            #expect((added.json["items"] as? [[String: Any]])?.allSatisfy { $0["action"] as? String == "member.added" } == true)
            let byBob = try await api.items("/v1/orgs/\(org)/audit?actor_id=\(bob.userID)", token: alice.access)
            #expect(byBob.compactMap { $0["action"] as? String } == ["member.left"])
            #expect(try await api.send(.get, "/v1/orgs/\(org)/audit?action=member.added&actor_id=\(bob.userID)", token: alice.access).json["total"] as? Int == 0)
            #expect(try await api.send(.get, "/v1/audit?action=org.updated", token: root.access).json["total"] as? Int == 2)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/audit?actor_id=nope", token: alice.access).status == .badRequest)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/audit?actor_id=", token: alice.access).status == .badRequest)
            #expect(try await api.send(.get, "/v1/audit?action=\(String(repeating: "a", count: 101))", token: root.access).status == .badRequest)
        }
    }
}
