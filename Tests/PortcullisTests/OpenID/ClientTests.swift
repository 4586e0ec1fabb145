import Foundation
import OpenID
import Testing

/// `/v1/clients`: who may register and manage OpenID clients, what a registration may say, and
/// that a secret is shown once and kept only as a hash.
@Suite("OpenID clients over HTTP")
struct ClientTests {
    static let callback = "https://app.example.com/oidc/callback"

    @Test("platform clients are the root's; an org's clients are its admins'", arguments: Backend.allCases)
    func whoManages(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, services in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "editor")
            let body: [String: Any] = ["name": "Wiki", "redirect_uris": [Self.callback]]

            // Platform: root only.
            #expect(try await api.send(.post, "/v1/clients", json: body, token: alice.access).status == .forbidden)
            let platform = try await api.send(.post, "/v1/clients", json: body, token: root.access)
            #expect(platform.status == .created, "\(platform.text)")
            let platformID = try #require(platform.json["client_id"] as? String)
            let secret = try #require(platform.json["client_secret"] as? String)
            #expect(secret.hasPrefix("pcs_") && secret.count == 47)
            #expect(platform.json["type"] as? String == "confidential")
            #expect(platform.json["scopes"] as? [String] == ["openid", "profile", "email"])
            #expect(platform.json["org_id"] is NSNull)

            // The secret is stored as its SHA-256 only, and is never read back.
            let stored = try #require(try await services.database.queryFirst("SELECT secret_hash FROM oauth_clients WHERE id = $1", UUID(uuidString: platformID)!))
            #expect(try stored.string("secret_hash") != secret && (try stored.string("secret_hash")).count == 64)
            let read = try await api.send(.get, "/v1/clients/\(platformID)", token: root.access)
            #expect(read.status == .ok && read.json["client_secret"] == nil && !read.text.contains(secret))
            #expect(try await api.send(.get, "/v1/clients/\(platformID)", token: alice.access).status == .notFound)
            #expect(try await api.send(.get, "/v1/clients", token: alice.access).status == .forbidden)
            #expect(try await api.send(.get, "/v1/clients", token: root.access).json["total"] as? Int == 1)

            // An org's: admins and owners (org.update); an editor is refused, a stranger sees nothing.
            var orgBody = body
            orgBody["org_id"] = org
            orgBody["type"] = "public"
            #expect(try await api.send(.post, "/v1/clients", json: orgBody, token: bob.access).status == .forbidden)
            let stranger = try await api.signupAndLogin("stranger@example.com")
            #expect(try await api.send(.post, "/v1/clients", json: orgBody, token: stranger.access).status == .notFound)
            let orgClient = try await api.send(.post, "/v1/clients", json: orgBody, token: alice.access)
            #expect(orgClient.status == .created, "\(orgClient.text)")
            #expect(orgClient.json["client_secret"] == nil, "a public client has no secret")
            let orgClientID = try #require(orgClient.json["client_id"] as? String)
            #expect(try await api.send(.get, "/v1/clients?org_id=\(org)", token: alice.access).json["total"] as? Int == 1)
            #expect(try await api.send(.get, "/v1/clients?org_id=\(org)", token: bob.access).status == .forbidden)
            #expect(try await api.send(.get, "/v1/clients/\(orgClientID)", token: stranger.access).status == .notFound)
            #expect(try await api.send(.get, "/v1/clients/\(orgClientID)", token: root.access).status == .ok, "the root acts in every org")

            // Audited in the org's log.
            let events = try await api.items("/v1/orgs/\(org)/audit?action=client.created", token: alice.access)
            #expect(events.count == 1 && events.first?["target"] as? String == "client:\(orgClientID)")
        }
    }

    @Test("registration checks: redirect URIs, scopes, type, name; nothing is stored on a refusal", arguments: Backend.allCases)
    func badRegistrations(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, _ in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let bad: [[String: Any]] = [
                ["name": "x", "redirect_uris": []],
                ["name": "x", "redirect_uris": ["http://app.example.com/cb"]],
                ["name": "x", "redirect_uris": ["https://app.example.com/cb#frag"]],
                ["name": "x", "redirect_uris": ["https://user:pw@app.example.com/cb"]],
                ["name": "x", "redirect_uris": ["/relative/cb"]],
                ["name": "x", "redirect_uris": ["javascript:alert(1)"]],
                ["name": "x", "redirect_uris": Array(repeating: Self.callback, count: 21)],
                ["name": "x", "redirect_uris": [Self.callback], "scopes": ["profile"]],
                ["name": "x", "redirect_uris": [Self.callback], "scopes": ["openid", "admin"]],
                ["name": "x", "redirect_uris": [Self.callback], "type": "secretive"],
                ["name": " ", "redirect_uris": [Self.callback]],
                ["name": "x", "redirect_uris": [Self.callback], "org_id": "nope"],
                ["redirect_uris": [Self.callback]],
            ]
            for body in bad {
                let reply = try await api.send(.post, "/v1/clients", json: body, token: root.access)
                #expect(reply.status == .badRequest, "\(body): \(reply.text)")
            }
            #expect(try await api.send(.get, "/v1/clients", token: root.access).json["total"] as? Int == 0)
            // Loopback http is allowed (development, native apps); repeats are kept once.
            let ok = try await api.send(.post, "/v1/clients", json: [
                "name": "cli", "redirect_uris": ["http://127.0.0.1:8765/cb", "http://localhost/cb", "http://127.0.0.1:8765/cb"],
                "scopes": ["orgs", "openid"],
            ], token: root.access)
            #expect(ok.status == .created, "\(ok.text)")
            #expect(ok.json["redirect_uris"] as? [String] == ["http://127.0.0.1:8765/cb", "http://localhost/cb"])
            #expect(ok.json["scopes"] as? [String] == ["openid", "orgs"])
            // offline_access (refresh tokens) is a scope a client may ask for; a made-up one is not.
            #expect(try await api.send(.post, "/v1/clients", json: ["name": "x", "redirect_uris": [Self.callback], "scopes": ["openid", "offline_access"]], token: root.access).status == .created)
            #expect(try await api.send(.post, "/v1/clients", json: ["name": "x", "redirect_uris": [Self.callback], "scopes": ["openid", "admin"]], token: root.access).status == .badRequest)
        }
    }

    @Test("binding a service account needs the rank to manage it, and only its own org's, to a confidential org client", arguments: Backend.allCases)
    func serviceAccountBinding(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, _ in
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "admin")
            let owner = try #require(try await api.send(.post, "/v1/orgs/\(org)/service-accounts", json: ["name": "deploy", "role": "owner"], token: alice.access)
                .json["id"] as? String)
            let editor = try #require(try await api.send(.post, "/v1/orgs/\(org)/service-accounts", json: ["name": "ci", "role": "editor"], token: alice.access)
                .json["id"] as? String)
            let otherOrg = try await api.createOrg(bob.access, name: "Other")
            let foreign = try #require(try await api.send(.post, "/v1/orgs/\(otherOrg)/service-accounts", json: ["name": "x", "role": "viewer"], token: bob.access)
                .json["id"] as? String)
            func register(_ token: String, _ extra: [String: Any]) async throws -> APIClient.Reply {
                try await api.send(.post, "/v1/clients", json: ["name": "svc", "redirect_uris": [Self.callback], "org_id": org].merging(extra) { $1 }, token: token)
            }
            // An admin cannot hand out an owner's authority through a client secret.
            #expect(try await register(bob.access, ["service_account_id": owner]).status == .forbidden)
            #expect(try await register(bob.access, ["service_account_id": foreign]).status == .badRequest)
            #expect(try await register(bob.access, ["service_account_id": editor, "type": "public"]).status == .badRequest)
            let ok = try await register(bob.access, ["service_account_id": editor])
            #expect(ok.status == .created, "\(ok.text)")
            #expect(ok.json["service_account_id"] as? String == editor)
            let id = try #require(ok.json["client_id"] as? String)
            // The same rule on a change; the owner may bind the owner account.
            #expect(try await api.send(.patch, "/v1/clients/\(id)", json: ["service_account_id": owner], token: bob.access).status == .forbidden)
            let patched = try await api.send(.patch, "/v1/clients/\(id)", json: ["service_account_id": owner], token: alice.access)
            #expect(patched.json["service_account_id"] as? String == owner)
            let cleared = try await api.send(.patch, "/v1/clients/\(id)", json: ["service_account_id": NSNull(), "claim_template": NSNull()], token: bob.access)
            #expect(cleared.status == .ok, "\(cleared.text)")
            #expect(cleared.json["service_account_id"] is NSNull)
        }
    }

    @Test("patch, secret rotation and delete; the old secret stops at once", arguments: Backend.allCases)
    func lifecycle(_ backend: Backend) async throws {
        try await withApp(backend, configure: rootSetup) { api, services in
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "admin")
            let created = try await api.send(.post, "/v1/clients", json: ["name": "Wiki", "redirect_uris": [Self.callback], "org_id": org], token: alice.access)
            let id = try #require(created.json["client_id"] as? String)
            let first = try #require(created.json["client_secret"] as? String)
            let uuid = try #require(UUID(uuidString: id))
            #expect(try await services.clients.authenticate(clientID: uuid, secret: first)?.name == "Wiki")

            // First-party (no consent screen) is the root's to mark, not an org admin's.
            #expect(try await api.send(.patch, "/v1/clients/\(id)", json: ["first_party": true], token: bob.access).status == .forbidden)
            #expect(try await api.send(.post, "/v1/clients", json: ["name": "x", "redirect_uris": [Self.callback], "org_id": org, "first_party": true], token: alice.access).status == .forbidden)
            let patched = try await api.send(.patch, "/v1/clients/\(id)", json: ["name": "Wiki 2", "first_party": false], token: bob.access)
            #expect(patched.status == .ok && patched.json["name"] as? String == "Wiki 2" && patched.json["first_party"] as? Bool == false)
            #expect(patched.json["redirect_uris"] as? [String] == [Self.callback], "fields left out stay")
            let revision = patched.headers[.portcullisRevision]
            let same = try await api.send(.patch, "/v1/clients/\(id)", json: ["name": "Wiki 2"], token: bob.access)
            #expect(same.status == .ok && same.headers[.portcullisRevision] == nil, "a patch that changes nothing writes nothing (\(String(describing: revision)))")
            #expect(try await api.send(.patch, "/v1/clients/\(id)", json: ["type": "public"], token: bob.access).status == .badRequest)
            for field in ["name", "scopes", "redirect_uris", "first_party"] {
                #expect(try await api.send(.patch, "/v1/clients/\(id)", json: [field: NSNull()], token: bob.access).status == .badRequest, "\(field): null")
            }
            #expect(try await api.send(.patch, "/v1/clients/\(id)", json: ["redirect_uris": ["http://evil.example/cb"]], token: bob.access).status == .badRequest)

            let rotated = try await api.send(.post, "/v1/clients/\(id)/secret", token: alice.access)
            let second = try #require(rotated.json["client_secret"] as? String)
            #expect(rotated.status == .ok && second != first)
            #expect(try await services.clients.authenticate(clientID: uuid, secret: first) == nil)
            #expect(try await services.clients.authenticate(clientID: uuid, secret: second) != nil)

            let spa = try await api.send(.post, "/v1/clients", json: ["name": "spa", "type": "public", "redirect_uris": [Self.callback], "org_id": org], token: alice.access)
            let spaID = try #require(spa.json["client_id"] as? String)
            #expect(try await api.send(.post, "/v1/clients/\(spaID)/secret", token: alice.access).status == .badRequest)

            #expect(try await api.send(.delete, "/v1/clients/\(id)", token: bob.access).status == .noContent)
            #expect(try await api.send(.get, "/v1/clients/\(id)", token: alice.access).status == .notFound)
            #expect(try await services.clients.authenticate(clientID: uuid, secret: second) == nil)
            let actions = try await api.items("/v1/orgs/\(org)/audit?limit=100", token: alice.access).compactMap { $0["action"] as? String }
            #expect(actions.filter { $0.hasPrefix("client.") } == ["client.deleted", "client.created", "client.secret_rotated", "client.updated", "client.created"])

            // Deleting the org takes its clients with it.
            #expect(try await api.send(.delete, "/v1/orgs/\(org)", token: alice.access).status == .noContent)
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM oauth_clients")?.int("n") == 0)
        }
    }
}
