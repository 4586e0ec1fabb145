import Foundation
import HTTPTypes
import Server
import Testing

@Suite("Bad input gets a clear 4xx problem and changes nothing")
struct BadInputTests {
    /// Each route with a body: bodies of the wrong shape must be 400, never 500.
    static let bodyRoutes: [(HTTPRequest.Method, String, Bool)] = [
        (.post, "/v1/users", false), (.post, "/v1/auth/login", false), (.post, "/v1/auth/refresh", false),
        (.patch, "/v1/me", true), (.post, "/v1/me/password", true),
    ]

    @Test("wrong types, missing fields, broken JSON, wrong content type, huge bodies", arguments: Backend.allCases)
    func bodies(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let t = try await api.signupAndLogin("zed@example.com")
            let before = try await services.changeFeed.latestRevision()
            for (method, path, needsAuth) in Self.bodyRoutes {
                let token = needsAuth ? t.access : nil
                let cases: [(String, HTTPResponse.Status, String)] = [
                    ("{", .badRequest, "invalid_request"),
                    ("[]", .badRequest, "invalid_request"),
                    ("\"text\"", .badRequest, "invalid_request"),
                    (#"{"email": 1, "password": [], "refresh_token": {}, "name": 5, "current_password": 1, "new_password": 2}"#, .badRequest, "invalid_request"),
                    ("", .badRequest, "invalid_request"),
                ]
                for (raw, status, code) in cases {
                    let r = try await api.send(method, path, raw: raw, token: token)
                    #expect(r.status == status, "\(method) \(path) \(raw): \(r.text)")
                    #expect(r.code == code)
                    #expect(r.headers[.contentType] == "application/problem+json")
                    #expect(r.json["status"] as? Int == Int(status.code))
                    #expect(r.json["type"] is String && r.json["title"] is String)
                }
                let wrongType = try await api.send(method, path, raw: "{}", token: token, contentType: "text/plain")
                #expect(wrongType.status == .unsupportedMediaType, "\(path)")
                #expect(wrongType.code == "unsupported_media_type")
                let huge = try await api.send(method, path, raw: "{\"name\":\"" + String(repeating: "a", count: 70_000) + "\"}", token: token)
                #expect(huge.status == .contentTooLarge, "\(path)")
                #expect(huge.code == "payload_too_large")
            }
            // PATCH with a body that is JSON but not an object of the right shape changes nothing.
            #expect(try await services.changeFeed.latestRevision() == before)
        }
    }

    /// Every route that authenticates and reads a body, each with a body that is well-formed JSON
    /// of the wrong shape (a required field missing, or a field of the wrong type).
    static let authenticatedBodyRoutes: [(HTTPRequest.Method, String, String)] = {
        let org = UUID().uuidString.lowercased(), other = UUID().uuidString.lowercased()
        return [
            (.post, "/v1/auth/logout", #"{"all": "yes"}"#),
            (.patch, "/v1/me", #"{"name": 5}"#),
            (.post, "/v1/me/password", #"{"new_password": "correct horse battery"}"#),
            (.post, "/v1/orgs", #"{"description": "no name"}"#),
            (.patch, "/v1/orgs/\(org)", #"{"name": 5}"#),
            (.post, "/v1/orgs/\(org)/members", #"{"email": "x@example.com"}"#),
            (.patch, "/v1/orgs/\(org)/members/\(other)", #"{"role": 5}"#),
            (.put, "/v1/orgs/\(org)/bindings", #"{"role": "viewer"}"#),
            (.post, "/v1/orgs/\(org)/service-accounts", #"{"role": "viewer"}"#),
            (.post, "/v1/orgs/\(org)/service-accounts/\(other)/keys", #"{"scopes": []}"#),
            (.post, "/v1/keys", #"{"scopes": []}"#),
            (.post, "/v1/orgs/\(org)/invites", #"{"role": "viewer"}"#),
            (.post, "/v1/invites/claim", #"{}"#),
            (.post, "/v1/platform-invites", #"{"org_invites": []}"#),
            (.post, "/v1/authorize", #"{"object": "org:\#(org)"}"#),
            (.post, "/v1/authorize/batch", #"{"consistency": "cached"}"#),
            (.post, "/v1/capabilities", #"{"objects": "org"}"#),
            (.post, "/v1/lookup", #"{"type": "org"}"#),
            (.post, "/v1/identify", #"{"token": 5}"#),
            (.post, "/access/v1/evaluation", #"{"subject": 5}"#),
            (.post, "/access/v1/evaluations", #"{"evaluations": {}}"#),
        ]
    }()

    @Test("authenticated routes check in the contract's order: 415, 413, broken JSON 400, 401, the fields' 400", arguments: Backend.allCases)
    func orderOfChecks(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            // Not root: for platform invites the fields' 400 comes before the 403 as well.
            let t = try await api.signupAndLogin("order@example.com")
            for (method, path, incomplete) in Self.authenticatedBodyRoutes {
                let route = "\(method) \(path)"
                let wrongType = try await api.send(method, path, raw: incomplete, contentType: "text/plain")
                #expect(wrongType.status == .unsupportedMediaType, "\(route): \(wrongType.text)")
                let huge = try await api.send(method, path, raw: "{\"name\":\"" + String(repeating: "a", count: 1_100_000) + "\"}")
                #expect(huge.status == .contentTooLarge, "\(route): \(huge.text)")
                for broken in ["{", #"{"name": }"#, "[1, 2", "nul"] {
                    let r = try await api.send(method, path, raw: broken)
                    #expect(r.status == .badRequest && r.code == "invalid_request", "\(route) \(broken): \(r.text)")
                }
                for token in [nil, "garbage"] as [String?] {
                    let r = try await api.send(method, path, raw: incomplete, token: token)
                    #expect(r.status == .unauthorized && r.code == "unauthenticated", "\(route) token \(token ?? "none"): \(r.text)")
                    #expect(r.headers[.wwwAuthenticate] == "Bearer", "\(route)")
                }
                let signedIn = try await api.send(method, path, raw: incomplete, token: t.access)
                #expect(signedIn.status == .badRequest && signedIn.code == "invalid_request", "\(route) signed in: \(signedIn.text)")
            }
            // Still signed in: no request above acted on the session.
            #expect(try await api.send(.get, "/v1/me", token: t.access).status == .ok)
        }
    }

    @Test("signup field validation", arguments: [Backend.sqlite])
    func signupValidation(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let cases: [([String: Any], String)] = [
                (["password": "correct horse battery"], "invalid_request"),
                (["email": "x@example.com"], "invalid_request"),
                (["email": "not-an-email", "password": "correct horse battery"], "invalid_request"),
                (["email": "a@b@c", "password": "correct horse battery"], "invalid_request"),
                (["email": String(repeating: "a", count: 250) + "@example.com", "password": "correct horse battery"], "invalid_request"),
                (["email": "x@example.com", "password": "short"], "weak_password"),
                (["email": "x@example.com", "password": String(repeating: "p", count: 257)], "weak_password"),
                (["email": "x@example.com", "password": "correct horse battery", "name": String(repeating: "n", count: 201)], "invalid_request"),
                (["email": "'; DROP TABLE users; --@example.com", "password": "correct horse battery"], "invalid_request"),
            ]
            for (body, code) in cases {
                let r = try await api.send(.post, "/v1/users", json: body)
                #expect(r.status == .badRequest, "\(body)")
                #expect(r.code == code, "\(body)")
            }
            #expect(try await services.store.credentials(email: "x@example.com") == nil)
            _ = try await api.send(.post, "/v1/users", json: ["email": "dup@example.com", "password": "correct horse battery"])
            let dup = try await api.send(.post, "/v1/users", json: ["email": "DUP@example.com", "password": "correct horse battery"])
            #expect(dup.status == .conflict)
            #expect(dup.code == "email_taken")
            let unicode = try await api.send(.post, "/v1/users", json: ["email": "ünï@exämple.com", "password": "pässwörd☃☃☃", "name": "Zoë 🦊"])
            #expect(unicode.status == .created)
            #expect(unicode.json["name"] as? String == "Zoë 🦊")
        }
    }

    @Test("unknown routes are 404 problems; known paths with other methods are 405 with Allow", arguments: [Backend.sqlite])
    func routing(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let missing = try await api.send(.get, "/v1/nothing-here")
            #expect(missing.status == .notFound)
            #expect(missing.code == "not_found")
            #expect(missing.headers[.contentType] == "application/problem+json")
            let wrongMethod = try await api.send(.put, "/v1/me")
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.code == "method_not_allowed")
            #expect(wrongMethod.headers[.allow] == "GET, PATCH")
            let security = try await api.send(.get, "/health")
            #expect(security.headers[.xContentTypeOptions] == "nosniff")
        }
    }

    @Test("pagination bounds and repeated query keys", arguments: [Backend.sqlite])
    func pagination(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let t = try await api.signupAndLogin("page@example.com")
            for bad in ["limit=0", "limit=101", "limit=-1", "limit=abc", "offset=-1", "offset=x", "limit=5&limit=6"] {
                let r = try await api.send(.get, "/v1/me/sessions?\(bad)", token: t.access)
                #expect(r.status == .badRequest, "\(bad)")
                #expect(r.code == "invalid_request")
            }
            let ok = try await api.send(.get, "/v1/me/sessions?limit=100&offset=1", token: t.access)
            #expect(ok.status == .ok)
            #expect(ok.json["limit"] as? Int == 100)
            #expect((ok.json["items"] as? [Any])?.count == 0)
            #expect(ok.json["total"] as? Int == 1)
        }
    }

    @Test("health, readiness and the API description are served", arguments: Backend.allCases)
    func platform(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            #expect(try await api.send(.get, "/health").json["status"] as? String == "ok")
            #expect(try await api.send(.get, "/ready").status == .ok)
            let doc = try await api.send(.get, "/openapi.yaml")
            #expect(doc.status == .ok)
            #expect(doc.text.hasPrefix("openapi: 3.1"))
        }
    }

    @Test("readiness answers 503 when the database is gone", arguments: [Backend.sqlite])
    func notReady(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            await services.database.close()
            let r = try await api.send(.get, "/ready")
            #expect(r.status == .serviceUnavailable)
            #expect(r.code == "unavailable")
        }
    }
}
