import Foundation
import HTTPTypes
import Identity
import JWTKit
import Server
import Storage
import Testing

@Suite("Sign-up, login, tokens and sessions over HTTP")
struct AuthFlowTests {
    @Test("signup → login → me → refresh → reuse detection", arguments: Backend.allCases)
    func fullFlow(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let signup = try await api.send(.post, "/v1/users", json: ["email": "  Alice@Example.COM ", "password": "correct horse battery", "name": "Alice"])
            #expect(signup.status == .created)
            #expect(signup.json["email"] as? String == "alice@example.com")
            #expect(signup.json["email_verified"] as? Bool == false)
            #expect(signup.json["is_root"] as? Bool == false)
            #expect(signup.revision != nil)
            let id = try #require(signup.json["id"] as? String)
            #expect(id == id.lowercased() && UUID(uuidString: id) != nil)

            let login = try await api.send(.post, "/v1/auth/login", json: ["email": "ALICE@example.com", "password": "correct horse battery"])
            #expect(login.status == .ok)
            #expect(login.json["token_type"] as? String == "Bearer")
            #expect(login.json["expires_in"] as? Int == 900)
            #expect(login.json["refresh_expires_in"] as? Int == 30 * 86_400)
            let tokens = try Tokens(login.json)
            #expect(tokens.refresh.count >= 43)

            let me = try await api.send(.get, "/v1/me", token: tokens.access)
            #expect(me.status == .ok)
            #expect(me.json["id"] as? String == id)

            let refreshed = try await api.send(.post, "/v1/auth/refresh", json: ["refresh_token": tokens.refresh])
            #expect(refreshed.status == .ok)
            let next = try Tokens(refreshed.json)
            #expect(next.refresh != tokens.refresh)
            #expect(try await api.send(.get, "/v1/me", token: next.access).status == .ok)

            // Presenting the spent token again revokes the whole session, at once.
            let reuse = try await api.send(.post, "/v1/auth/refresh", json: ["refresh_token": tokens.refresh])
            #expect(reuse.status == .unauthorized)
            #expect(reuse.code == "unauthenticated")
            #expect(try await api.send(.get, "/v1/me", token: next.access).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/me", token: tokens.access).status == .unauthorized)
            #expect(try await api.send(.post, "/v1/auth/refresh", json: ["refresh_token": next.refresh]).status == .unauthorized)
        }
    }

    @Test("unknown e-mail and wrong password look the same", arguments: Backend.allCases)
    func noEnumeration(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            _ = try await api.signupAndLogin("bob@example.com")
            let wrong = try await api.send(.post, "/v1/auth/login", json: ["email": "bob@example.com", "password": "not the password"])
            let unknown = try await api.send(.post, "/v1/auth/login", json: ["email": "nobody@example.com", "password": "not the password"])
            #expect(wrong.status == .unauthorized)
            #expect(wrong.status == unknown.status)
            #expect(wrong.text == unknown.text)
        }
    }

    @Test("logout kills the session's access token; logout all kills every session", arguments: Backend.allCases)
    func logout(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let a = try await api.signupAndLogin("carol@example.com")
            let b = try await api.login("carol@example.com")
            let c = try await api.login("carol@example.com")
            let out = try await api.send(.post, "/v1/auth/logout", token: a.access)
            #expect(out.status == .noContent)
            #expect(out.revision != nil)
            #expect(try await api.send(.get, "/v1/me", token: a.access).status == .unauthorized)
            #expect(try await api.send(.post, "/v1/auth/refresh", json: ["refresh_token": a.refresh]).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/me", token: b.access).status == .ok)

            let all = try await api.send(.post, "/v1/auth/logout", json: ["all": true], token: b.access)
            #expect(all.status == .noContent)
            #expect(try await api.send(.get, "/v1/me", token: b.access).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/me", token: c.access).status == .unauthorized)
            #expect(try await api.send(.post, "/v1/auth/refresh", json: ["refresh_token": c.refresh]).status == .unauthorized)
        }
    }

    @Test("password change revokes the other sessions and keeps the current one", arguments: Backend.allCases)
    func passwordChange(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let a = try await api.signupAndLogin("dave@example.com")
            let b = try await api.login("dave@example.com")
            let wrong = try await api.send(.post, "/v1/me/password", json: ["current_password": "nope nope nope", "new_password": "a brand new password"], token: a.access)
            #expect(wrong.status == .forbidden)
            let weak = try await api.send(.post, "/v1/me/password", json: ["current_password": "correct horse battery", "new_password": "short"], token: a.access)
            #expect(weak.status == .badRequest)
            #expect(weak.code == "weak_password")
            let ok = try await api.send(.post, "/v1/me/password", json: ["current_password": "correct horse battery", "new_password": "a brand new password"], token: a.access)
            #expect(ok.status == .noContent)
            #expect(try await api.send(.get, "/v1/me", token: a.access).status == .ok)
            #expect(try await api.send(.get, "/v1/me", token: b.access).status == .unauthorized)
            #expect(try await api.send(.post, "/v1/auth/login", json: ["email": "dave@example.com", "password": "correct horse battery"]).status == .unauthorized)
            _ = try await api.login("dave@example.com", password: "a brand new password")
        }
    }

    @Test("sessions are listed with the current one marked and can be deleted", arguments: Backend.allCases)
    func sessions(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let a = try await api.signupAndLogin("erin@example.com")
            let b = try await api.login("erin@example.com")
            let list = try await api.send(.get, "/v1/me/sessions", token: a.access)
            #expect(list.status == .ok)
            #expect(list.json["total"] as? Int == 2)
            #expect(list.json["limit"] as? Int == 20)
            #expect(list.json["offset"] as? Int == 0)
            let items = try #require(list.json["items"] as? [[String: Any]])
            #expect(items.filter { $0["current"] as? Bool == true }.count == 1)
            let other = try #require(items.first { $0["current"] as? Bool == false }?["id"] as? String)
            #expect(try await api.send(.delete, "/v1/me/sessions/\(other)", token: a.access).status == .noContent)
            #expect(try await api.send(.get, "/v1/me", token: b.access).status == .unauthorized)
            #expect(try await api.send(.delete, "/v1/me/sessions/\(other)", token: a.access).status == .notFound)
            #expect(try await api.send(.delete, "/v1/me/sessions/not-a-uuid", token: a.access).status == .notFound)
            // Someone else's session is not found, not deletable.
            let f = try await api.signupAndLogin("frank@example.com")
            let mine = try #require((try await api.send(.get, "/v1/me/sessions", token: a.access).json["items"] as? [[String: Any]])?.first?["id"] as? String)
            #expect(try await api.send(.delete, "/v1/me/sessions/\(mine)", token: f.access).status == .notFound)
            #expect(try await api.send(.get, "/v1/me", token: a.access).status == .ok)
        }
    }

    @Test("PATCH /v1/me changes only the name", arguments: Backend.allCases)
    func patchMe(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let a = try await api.signupAndLogin("gina@example.com")
            let r = try await api.send(.patch, "/v1/me", json: ["name": "Gina G", "email": "evil@example.com", "is_root": true], token: a.access)
            #expect(r.status == .ok)
            #expect(r.json["name"] as? String == "Gina G")
            #expect(r.json["email"] as? String == "gina@example.com")
            #expect(r.json["is_root"] as? Bool == false)
            let long = try await api.send(.patch, "/v1/me", json: ["name": String(repeating: "x", count: 201)], token: a.access)
            #expect(long.status == .badRequest)
        }
    }

    @Test("access tokens verify against the published JWKS with a stock verifier", arguments: Backend.allCases)
    func jwksVerification(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let t = try await api.signupAndLogin("hank@example.com")
            let jwks = try await api.send(.get, "/.well-known/jwks.json")
            #expect(jwks.status == .ok)
            let discovery = try await api.send(.get, "/.well-known/openid-configuration")
            #expect(discovery.json["issuer"] as? String == "http://portcullis.test")
            // Only what is served.
            #expect(discovery.json["token_endpoint"] as? String == "http://portcullis.test/oauth/token")
            #expect(discovery.json["grant_types_supported"] as? [String] == ["authorization_code", "refresh_token", "client_credentials"])
            #expect(discovery.json["id_token_signing_alg_values_supported"] as? [String] == ["RS256", "ES256"])
            for absent in ["registration_endpoint", "check_session_iframe"] {
                #expect(discovery.json[absent] == nil, "\(absent)")
            }

            let keys = try await JWTKeyCollection().add(jwksJSON: jwks.text)
            struct Claims: JWTPayload {
                var iss: IssuerClaim, sub: SubjectClaim, aud: AudienceClaim, exp: ExpirationClaim
                var iat: IssuedAtClaim, nbf: NotBeforeClaim, jti: IDClaim, sid: String
                func verify(using algorithm: some JWTAlgorithm) async throws {
                    try exp.verifyNotExpired()
                    try aud.verifyIntendedAudience(includes: "http://portcullis.test")
                }
            }
            let claims = try await keys.verify(t.access, as: Claims.self)
            #expect(claims.sub.value == t.userID)
            #expect(claims.iss.value == "http://portcullis.test")
            #expect(claims.exp.value.timeIntervalSince(claims.iat.value) == 900)
            #expect(claims.exp.value.timeIntervalSince1970 == claims.exp.value.timeIntervalSince1970.rounded())
            let header = try #require(Secrets.base64urlDecode(String(t.access.split(separator: ".")[0])))
            let fields = try #require(try JSONSerialization.jsonObject(with: header) as? [String: Any])
            #expect(fields["typ"] as? String == "at+jwt")
            #expect(fields["alg"] as? String == "ES256")
            #expect(fields["kid"] as? String == services.tokens.activeKid)
        }
    }

    @Test("after rotation old tokens still verify, new tokens use the new key, JWKS lists both", arguments: Backend.allCases)
    func rotation(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.rootEmail = "root@example.com"; $0.rootPassword = "root password 123" }) { api, services in
            let old = try await api.signupAndLogin("ivy@example.com")
            let oldKid = services.tokens.activeKid
            let root = try await api.login("root@example.com", password: "root password 123")
            #expect(try await api.send(.post, "/v1/admin/signing-keys/rotate", token: old.access).status == .forbidden)
            let rotated = try await api.send(.post, "/v1/admin/signing-keys/rotate", token: root.access)
            #expect(rotated.status == .ok)
            #expect(rotated.revision != nil)
            let newKid = try #require(rotated.json["kid"] as? String)
            #expect(newKid != oldKid)
            #expect(try await api.send(.get, "/v1/me", token: old.access).status == .ok)
            let fresh = try await api.login("ivy@example.com")
            let header = try #require(Secrets.base64urlDecode(String(fresh.access.split(separator: ".")[0])))
            #expect(String(decoding: header, as: UTF8.self).contains(newKid))
            let keys = (try await api.send(.get, "/.well-known/jwks.json").json["keys"] as? [[String: Any]]) ?? []
            let accessKids = keys.filter { $0["alg"] as? String == "ES256" }.compactMap { $0["kid"] as? String }
            #expect(Set(accessKids) == Set([newKid, oldKid].compactMap { $0 }))
            // The RS256 key rotated with it: the old and the new one are published.
            let rotatedKeys = (rotated.json["keys"] as? [[String: Any]]) ?? []
            #expect(rotatedKeys.compactMap { $0["algorithm"] as? String }.sorted() == ["ES256", "RS256"])
            #expect(keys.filter { $0["alg"] as? String == "RS256" }.count == 2)
        }
    }

    @Test("a retired key leaves JWKS once its tokens have expired, and its tokens stop verifying", arguments: [Backend.sqlite])
    func retiredKeyDropped(_ backend: Backend) async throws {
        try await withServices(backend) { services in
            let t0 = Date()
            let (user, _) = try await services.auth.signup(.init(email: "jo@example.com", password: "correct horse battery"))
            let pair = try await services.auth.login(email: user.email, password: "correct horse battery", client: .init(userAgent: "", ip: ""))
            try await services.tokens.rotate(now: t0)
            #expect(services.tokens.jwks().count == 4)
            // Past the old keys' publication window (a client's longest token lifetime, a day, + leeway).
            let later = t0.addingTimeInterval(86_400 + 31)
            try await services.tokens.reload(now: later)
            #expect(services.tokens.jwks().count == 2)
            await #expect(throws: IdentityError.self) { try await services.tokens.verify(pair.accessToken, now: t0) }
        }
    }

    @Test("tokens are rejected when forged, expired, for another audience, or from an unknown key", arguments: [Backend.sqlite])
    func forgedTokens(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let t = try await api.signupAndLogin("kim@example.com")
            let parts = t.access.split(separator: ".").map(String.init)
            func b64(_ s: String) -> String { Secrets.base64url(Array(s.utf8)) }
            let none = b64(#"{"alg":"none","typ":"at+jwt"}"#) + "." + parts[1] + "."
            let tampered = parts[0] + "." + b64(#"{"sub":"00000000-0000-0000-0000-000000000000"}"#) + "." + parts[2]
            let unknownKid = b64(#"{"alg":"ES256","typ":"at+jwt","kid":"nope"}"#) + "." + parts[1] + "." + parts[2]
            let hs = b64(#"{"alg":"HS256","typ":"at+jwt","kid":"\#(services.tokens.activeKid ?? "")"}"#) + "." + parts[1] + "." + parts[2]
            for bad in [none, tampered, unknownKid, hs, "garbage", "", "a.b.c"] {
                let r = try await api.send(.get, "/v1/me", token: bad)
                #expect(r.status == .unauthorized, "\(bad.prefix(30))")
                #expect(r.headers[.wwwAuthenticate] == "Bearer")
                #expect(r.code == "unauthenticated")
            }
            #expect(try await api.send(.get, "/v1/me").status == .unauthorized)
            #expect(try await api.send(.get, "/v1/me", headers: [.authorization: "Basic abc"]).status == .unauthorized)
            // Expired: verify at a time past exp + leeway.
            await #expect(throws: IdentityError.self) {
                try await services.tokens.verify(t.access, now: Date().addingTimeInterval(900 + 31))
            }
            // Issued for another audience.
            let other = TokenService(settings: .init(issuer: "http://portcullis.test", audience: "someone-else"), store: services.store,
                                     sealer: try KeySealer(masterKey: Data(repeating: 7, count: 32)))
            await #expect(throws: (any Error).self) { try await other.verify(t.access) }
        }
    }

    @Test("self-signup can be disabled", arguments: [Backend.sqlite])
    func inviteOnly(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.signup = .inviteOnly }) { api, _ in
            let r = try await api.send(.post, "/v1/users", json: ["email": "x@example.com", "password": "correct horse battery"])
            #expect(r.status == .forbidden)
            #expect(r.code == "signup_disabled")
        }
    }

    @Test("root is created from the environment on first start only", arguments: Backend.allCases)
    func rootBootstrap(_ backend: Backend) async throws {
        try await withServices(backend, configure: { $0.rootEmail = "Root@Example.com"; $0.rootPassword = "root password 123" }) { services in
            let root = try #require(try await services.store.credentials(email: "root@example.com"))
            #expect(root.user.isRoot)
            #expect(root.user.emailVerified)
            #expect(try await services.ensureRoot(email: "other@example.com", password: "another password", logger: testLogger) == nil)
            #expect(try await services.store.credentials(email: "other@example.com") == nil)
        }
    }

    @Test("a revocation written by another node reaches this node through the change feed", arguments: Backend.allCases)
    func crossNodeRevocation(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, dir in
            let config = testConfig(dir: dir)
            let nodeA = try await AppServices.start(config: config, database: db, logger: testLogger, hasher: testHasher)
            let nodeB = try await AppServices.start(config: config, database: db, logger: testLogger, hasher: testHasher)
            _ = try await nodeA.auth.signup(.init(email: "lee@example.com", password: "correct horse battery"))
            let pair = try await nodeA.auth.login(email: "lee@example.com", password: "correct horse battery", client: .init(userAgent: "", ip: ""))
            let start = try await nodeB.changeFeed.latestRevision()
            _ = try await nodeB.auth.authenticate(accessToken: pair.accessToken) // B caches the session as alive
            _ = try await nodeA.auth.logout(userID: pair.user.id, sessionID: pair.sessionID, all: false)
            // B still has it cached as alive until it applies the feed…
            await nodeB.apply(try await nodeB.changeFeed.changes(after: start))
            await #expect(throws: IdentityError.self) { try await nodeB.auth.authenticate(accessToken: pair.accessToken) }
        }
    }
}
