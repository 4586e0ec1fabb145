import Authority
import Foundation
import HTTPTypes
import Server
import Storage
import Testing

extension AppServices {
    /// The token in the newest outbox mail to `email` with `template` (read before sending,
    /// as a mail client would find it in the link).
    func mailedToken(to email: String, template: String) async throws -> String {
        // Reset and verification requests are worked after the answer: work them now.
        try await auth.drainAccountMail()
        let rows = try await database.query(
            "SELECT variables FROM outbox WHERE recipient = $1 AND template = $2 AND variables IS NOT NULL ORDER BY created_at DESC", email, template)
        let text = try #require(try rows.first?.string("variables"))
        let variables = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String])
        let link = try #require(variables["link"])
        return try #require(URLComponents(string: link)?.queryItems?.first { $0.name == "token" || $0.name == "invite_token" }?.value)
    }
}

extension APIClient {
    /// Signs up, proves the address with the mailed verification token, and logs in.
    func signupVerified(_ email: String, _ services: AppServices) async throws -> Tokens {
        let tokens = try await signupAndLogin(email)
        let token = try await services.mailedToken(to: email, template: "verify_email")
        #expect(try await send(.post, "/v1/auth/verify-email", json: ["token": token]).status == .noContent)
        return tokens
    }
}

@Suite("Invites, platform invites, mailed tokens")
struct InviteTests {
    @Test("org invites: every transition, and every forbidden one", arguments: Backend.allCases)
    func stateMachine(_ backend: Backend) async throws {
        let clock = TestClock()
        try await withApp(backend, clock: clock) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let bob = try await api.signupVerified("bob@example.com", services)
            let carol = try await api.signupVerified("carol@example.com", services)
            let org = try await api.createOrg(alice.access)
            func invite(_ email: String, _ role: String = "editor", token: String = alice.access) async throws -> APIClient.Reply {
                try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": email, "role": role], token: token)
            }
            let created = try await invite("BOB@example.com")
            #expect(created.status == .created, "\(created.text)")
            #expect(created.revision != nil)
            #expect(created.json["state"] as? String == "pending" && created.json["dormant"] as? Bool == false)
            #expect(created.json["email"] as? String == "bob@example.com" && created.json["org_name"] as? String == "Acme")
            let id = try #require(created.json["id"] as? String)
            #expect(try await invite("bob@example.com").status == .conflict) // one pending per (org, email)
            #expect(try await invite("alice@example.com").code == "already_member")
            #expect(try await invite("dave@example.com", "superuser").status == .badRequest)
            #expect(try await invite("not-an-address").status == .badRequest)

            // Only the invitee answers; others do not even see it.
            #expect(try await api.send(.post, "/v1/invites/\(id)/accept", token: carol.access).status == .notFound)
            #expect(try await api.send(.get, "/v1/invites/\(id)", token: carol.access).status == .notFound)
            #expect(try await api.send(.get, "/v1/invites/\(id)", token: bob.access).json["state"] as? String == "pending")
            #expect(try await api.items("/v1/me/invites", token: bob.access).count == 1)

            #expect(try await api.allowed(bob.access, "org:\(org)", "editor") == false) // warms the decision cache
            let accepted = try await api.send(.post, "/v1/invites/\(id)/accept", token: bob.access)
            #expect(accepted.status == .ok && accepted.json["state"] as? String == "accepted")
            #expect(try await api.allowed(bob.access, "org:\(org)", "editor")) // invalidated at once
            #expect(try await api.send(.get, "/v1/orgs/\(org)", token: bob.access).json["role"] as? String == "editor")
            for (method, path) in [(HTTPRequest.Method.post, "accept"), (.post, "decline")] {
                #expect(try await api.send(method, "/v1/invites/\(id)/\(path)", token: bob.access).status == .conflict, "\(path) after accept")
            }
            #expect(try await api.send(.delete, "/v1/invites/\(id)", token: alice.access).status == .conflict)
            #expect(try await api.send(.post, "/v1/invites/\(id)/resend", token: alice.access).status == .conflict)

            // Decline, and revoke (by an admin who is not the inviter).
            let toCarol = try #require(try await invite("carol@example.com", "viewer").json["id"] as? String)
            #expect(try await api.send(.post, "/v1/invites/\(toCarol)/decline", token: carol.access).json["state"] as? String == "declined")
            #expect(try await api.send(.post, "/v1/invites/\(toCarol)/accept", token: carol.access).status == .conflict)
            _ = try await api.signupAndLogin("admin@example.com")
            try await api.addMember(alice.access, org: org, email: "admin@example.com", role: "admin")
            let admin = try await api.login("admin@example.com")
            let again = try #require(try await invite("carol@example.com", "viewer").json["id"] as? String)
            #expect(try await api.send(.delete, "/v1/invites/\(again)", token: admin.access).status == .noContent)
            #expect(try await api.send(.get, "/v1/invites/\(again)", token: carol.access).json["state"] as? String == "revoked")
            #expect(try await api.send(.post, "/v1/invites/\(again)/accept", token: carol.access).status == .conflict)
            // A member without invites.read may not look.
            #expect(try await api.send(.get, "/v1/orgs/\(org)/invites", token: bob.access).status == .forbidden)
            #expect(try await api.send(.get, "/v1/invites/\(again)", token: bob.access).status == .forbidden)
            // Admins invite up to their own role only.
            #expect(try await invite("erin@example.com", "owner", token: admin.access).status == .forbidden)

            // Expiry is read off the clock: lists are never stale; accepting is 410; resend revives.
            let late = try #require(try await invite("carol@example.com", "viewer").json["id"] as? String)
            let oldToken = try await services.mailedToken(to: "carol@example.com", template: "invite")
            clock.advance(by: 8 * 86_400)
            // A week on, the old access tokens have expired too: sign in again.
            let carolNow = try await api.login("carol@example.com")
            let aliceNow = try await api.login("alice@example.com")
            let bobNow = try await api.login("bob@example.com")
            #expect(try await api.items("/v1/orgs/\(org)/invites?state=expired", token: aliceNow.access).compactMap { $0["id"] as? String } == [late])
            #expect(try await api.items("/v1/orgs/\(org)/invites?state=pending", token: aliceNow.access).isEmpty)
            let gone = try await api.send(.post, "/v1/invites/\(late)/accept", token: carolNow.access)
            #expect(gone.status == .gone && gone.code == "invite_expired")
            #expect(try await api.send(.get, "/v1/orgs/\(org)/invites?state=bogus", token: aliceNow.access).status == .badRequest)
            let resent = try await api.send(.post, "/v1/invites/\(late)/resend", token: aliceNow.access)
            #expect(resent.status == .ok && resent.json["state"] as? String == "pending")
            let newToken = try await services.mailedToken(to: "carol@example.com", template: "invite")
            #expect(newToken != oldToken)
            #expect(try await api.send(.post, "/v1/invites/claim", json: ["token": oldToken], token: carolNow.access).status == .notFound)
            #expect(try await api.send(.post, "/v1/invites/claim", json: ["token": newToken], token: bobNow.access).status == .notFound)
            let claimed = try await api.send(.post, "/v1/invites/claim", json: ["token": newToken], token: carolNow.access)
            #expect(claimed.status == .ok && claimed.json["state"] as? String == "accepted")
            let actions = try await api.items("/v1/orgs/\(org)/audit?limit=100", token: aliceNow.access).compactMap { $0["action"] as? String }
            for action in ["invite.created", "invite.accepted", "invite.declined", "invite.revoked", "invite.resent"] {
                #expect(actions.contains(action), "\(action)")
            }
        }
    }

    @Test("two accepts at once give exactly one membership", arguments: Backend.allCases)
    func doubleAccept(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let bob = try await api.signupVerified("bob@example.com", services)
            let org = try await api.createOrg(alice.access)
            let id = try #require(try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": "bob@example.com", "role": "viewer"], token: alice.access).json["id"] as? String)
            let codes = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { try await api.send(.post, "/v1/invites/\(id)/accept", token: bob.access).status.code } }
                var all: [Int] = []
                for try await c in group { all.append(c) }
                return all.sorted()
            }
            #expect(codes == [200, 409, 409, 409])
            let n = try await services.database.queryFirst("SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND user_id = $2",
                                                           UUID(uuidString: org)!, UUID(uuidString: bob.userID)!)?.int("n")
            #expect(n == 1)
        }
    }

    @Test("a dormant invite wakes when its address signs up with the token", arguments: Backend.allCases)
    func dormant(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let org = try await api.createOrg(alice.access)
            let second = try await api.createOrg(alice.access, name: "Second")
            let first = try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": "new@example.com", "role": "editor"], token: alice.access)
            #expect(first.json["dormant"] as? Bool == true)
            _ = try await api.send(.post, "/v1/orgs/\(second)/invites", json: ["email": "new@example.com", "role": "viewer"], token: alice.access)
            let token = try await services.mailedToken(to: "new@example.com", template: "invite")
            let variables = try #require(try await services.database.queryFirst(
                "SELECT variables FROM outbox WHERE recipient = 'new@example.com' ORDER BY created_at DESC")?.string("variables"))
            #expect(variables.contains("/signup?invite_token="))

            // A wrong address or a made-up token gets nothing.
            #expect(try await api.send(.post, "/v1/users", json: ["email": "other@example.com", "password": "correct horse battery", "invite_token": token]).code == "invalid_invite_token")
            #expect(try await api.send(.post, "/v1/users", json: ["email": "new@example.com", "password": "correct horse battery", "invite_token": "nope"]).code == "invalid_invite_token")
            let signup = try await api.send(.post, "/v1/users", json: ["email": "new@example.com", "password": "correct horse battery", "invite_token": token])
            #expect(signup.status == .created)
            #expect(signup.json["email_verified"] as? Bool == true)
            let me = try await api.login("new@example.com")
            let mine = try await api.items("/v1/me/invites?state=pending", token: me.access)
            #expect(mine.count == 2)
            #expect(mine.allSatisfy { $0["dormant"] as? Bool == false })
            let id = try #require(first.json["id"] as? String)
            #expect(try await api.send(.post, "/v1/invites/\(id)/accept", token: me.access).status == .ok)
            #expect(try await api.allowed(me.access, "org:\(org)", "editor"))
            // Signing up through an invite sends no verification mail.
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM outbox WHERE recipient = 'new@example.com' AND template = 'verify_email'")?.int("n") == 0)
        }
    }

    @Test("a dormant invite also wakes when a plain signup verifies its address", arguments: Backend.allCases)
    func wakeOnVerification(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let org = try await api.createOrg(alice.access)
            _ = try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": "late@example.com", "role": "viewer"], token: alice.access)
            let late = try await api.signupAndLogin("late@example.com")
            #expect(try await api.items("/v1/me/invites", token: late.access).isEmpty)
            // An invite to an account whose address is unproven is dormant too: whoever signed up
            // with someone else's address must not collect that person's invites.
            let second = try await api.createOrg(alice.access, name: "Second")
            let toUnverified = try await api.send(.post, "/v1/orgs/\(second)/invites", json: ["email": "late@example.com", "role": "viewer"], token: alice.access)
            #expect(toUnverified.json["dormant"] as? Bool == true)
            let unverifiedID = try #require(toUnverified.json["id"] as? String)
            // The invitee is told why, not "not found": by id, by the mailed token, and when reading it.
            #expect(try await api.send(.post, "/v1/invites/\(unverifiedID)/accept", token: late.access).code == "invite_dormant")
            #expect(try await api.send(.get, "/v1/invites/\(unverifiedID)", token: late.access).code == "invite_dormant")
            let inviteToken = try await services.mailedToken(to: "late@example.com", template: "invite")
            let claimed = try await api.send(.post, "/v1/invites/claim", json: ["token": inviteToken], token: late.access)
            #expect(claimed.status == .conflict && claimed.code == "invite_dormant")
            // ... and its mail says to confirm the address first, with the accept link (not the signup link).
            let mailRows = try await services.database.query(
                "SELECT variables FROM outbox WHERE recipient = $1 AND template = 'invite' ORDER BY created_at DESC", "late@example.com")
            let variablesText = try #require(try mailRows.first?.string("variables"))
            let variables = try #require(try JSONSerialization.jsonObject(with: Data(variablesText.utf8)) as? [String: String])
            #expect(variables["needs_verification"] == "yes" && variables["has_account"] == nil)
            #expect(variables["link"]?.contains("/invites/accept?token=") == true)
            // Someone else holding the token still learns nothing.
            let stranger = try await api.signupAndLogin("stranger@example.com")
            #expect(try await api.send(.post, "/v1/invites/claim", json: ["token": inviteToken], token: stranger.access).status == .notFound)
            let token = try await services.mailedToken(to: "late@example.com", template: "verify_email")
            #expect(try await api.send(.post, "/v1/auth/verify-email", json: ["token": "wrong"]).code == "invalid_token")
            #expect(try await api.send(.post, "/v1/auth/verify-email", json: ["token": token]).status == .noContent)
            #expect(try await api.send(.post, "/v1/auth/verify-email", json: ["token": token]).code == "invalid_token")
            #expect(try await api.send(.get, "/v1/me", token: late.access).json["email_verified"] as? Bool == true)
            #expect(try await api.items("/v1/me/invites", token: late.access).count == 2)
            #expect(try await api.send(.post, "/v1/invites/claim", json: ["token": inviteToken], token: late.access).status == .ok)
        }
    }

    @Test("platform invites carry org invites; invite-only signup needs a token", arguments: Backend.allCases)
    func platformInvites(_ backend: Backend) async throws {
        try await withApp(backend, configure: { c in rootSetup(&c); c.signup = .inviteOnly }) { api, services in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let org = try await api.createOrg(root.access)
            #expect(try await api.send(.post, "/v1/users", json: ["email": "x@example.com", "password": "correct horse battery"]).code == "signup_disabled")

            let created = try await api.send(.post, "/v1/platform-invites", json: [
                "email": "Newbie@Example.com", "org_invites": [["org_id": org, "role": "editor"]],
            ], token: root.access)
            #expect(created.status == .created, "\(created.text)")
            let orgInvites = try #require(created.json["org_invites"] as? [[String: Any]])
            #expect(orgInvites.count == 1 && orgInvites[0]["dormant"] as? Bool == true)
            #expect(try await api.send(.post, "/v1/platform-invites", json: ["email": "root@example.com"], token: root.access).status == .conflict)
            #expect(try await api.send(.post, "/v1/platform-invites", json: ["email": "y@example.com", "org_invites": [["org_id": UUID().uuidString, "role": "viewer"]]], token: root.access).status == .badRequest)
            #expect(try await api.items("/v1/platform-invites", token: root.access).count == 1)

            let token = try await services.mailedToken(to: "newbie@example.com", template: "platform_invite")
            let signup = try await api.send(.post, "/v1/users", json: ["email": "newbie@example.com", "password": "correct horse battery", "invite_token": token])
            #expect(signup.status == .created, "\(signup.text)")
            // Spent: the same token opens nothing twice.
            #expect(try await api.send(.post, "/v1/users", json: ["email": "newbie@example.com", "password": "correct horse battery", "invite_token": token]).status != .created)
            let newbie = try await api.login("newbie@example.com")
            let mine = try await api.items("/v1/me/invites", token: newbie.access)
            #expect(mine.count == 1 && mine[0]["state"] as? String == "pending")
            #expect(try await api.send(.post, "/v1/invites/\(mine[0]["id"] as? String ?? "")/accept", token: newbie.access).status == .ok)
            #expect(try await api.allowed(newbie.access, "org:\(org)", "editor"))
            #expect(try await api.send(.get, "/v1/platform-invites", token: newbie.access).status == .forbidden)

            // Revoking a platform invite revokes what it carried.
            let other = try await api.send(.post, "/v1/platform-invites", json: ["email": "z@example.com", "org_invites": [["org_id": org, "role": "viewer"]]], token: root.access)
            let otherID = try #require(other.json["id"] as? String)
            #expect(try await api.send(.delete, "/v1/platform-invites/\(otherID)", token: root.access).status == .noContent)
            let revoked = try await api.items("/v1/orgs/\(org)/invites?state=revoked", token: root.access)
            #expect(revoked.count == 1)
            let zToken = try await services.mailedToken(to: "z@example.com", template: "platform_invite")
            #expect(try await api.send(.post, "/v1/users", json: ["email": "z@example.com", "password": "correct horse battery", "invite_token": zToken]).code == "invalid_invite_token")
        }
    }

    @Test("platform invites: one by id (root only), the list's ?state=, one live invite per address", arguments: Backend.allCases)
    func platformInviteReads(_ backend: Backend) async throws {
        let clock = TestClock()
        try await withApp(backend, configure: rootSetup, clock: clock) { api, services in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let org = try await api.createOrg(root.access)
            @Sendable func invite(_ email: String, token: String = root.access) async throws -> APIClient.Reply {
                try await api.send(.post, "/v1/platform-invites", json: ["email": email, "org_invites": [["org_id": org, "role": "viewer"]]], token: token)
            }
            let created = try await invite("p1@example.com")
            #expect(created.status == .created, "\(created.text)")
            let first = try #require(created.json["id"] as? String)

            // One by id: the same shape as the list's items.
            let one = try await api.send(.get, "/v1/platform-invites/\(first)", token: root.access)
            #expect(one.status == .ok, "\(one.text)")
            let listed = try await api.items("/v1/platform-invites", token: root.access)
            func canonical(_ object: Any) throws -> String {
                String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
            }
            #expect(try canonical(one.json) == canonical(try #require(listed.first)))
            #expect((one.json["org_invites"] as? [[String: Any]])?.count == 1)
            for missing in [UUID().uuidString.lowercased(), "not-a-uuid"] {
                let r = try await api.send(.get, "/v1/platform-invites/\(missing)", token: root.access)
                #expect(r.status == .notFound && r.code == "not_found", "\(missing): \(r.text)")
            }
            let plain = try await api.signupAndLogin("plain@example.com")
            #expect(try await api.send(.get, "/v1/platform-invites/\(first)", token: plain.access).status == .forbidden)
            #expect(try await api.send(.get, "/v1/platform-invites/\(first)").status == .unauthorized)

            // A second live invite for the address, however it is spelled: 409, nothing added.
            let again = try await invite("P1@Example.COM")
            #expect(again.status == .conflict && again.code == "conflict", "\(again.text)")
            #expect(try await api.items("/v1/platform-invites", token: root.access).count == 1)
            // Two at once: one is made, the other refused.
            let pair = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<2 { group.addTask { try await invite("p2@example.com").status } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(pair.filter { $0 == .created }.count == 1 && pair.filter { $0 == .conflict }.count == 1, "\(pair)")

            // Revoked, then expired: each time a new invite may be made.
            #expect(try await api.send(.delete, "/v1/platform-invites/\(first)", token: root.access).status == .noContent)
            let second = try #require(try await invite("p1@example.com").json["id"] as? String)
            clock.advance(by: 8 * 86_400)
            let later = try await api.login("root@example.com", password: testRootPassword)
            let third = try await invite("p1@example.com", token: later.access)
            #expect(third.status == .created, "\(third.text)")
            let thirdID = try #require(third.json["id"] as? String)

            func ids(_ query: String) async throws -> Set<String> {
                Set(try await api.items("/v1/platform-invites\(query)", token: later.access).compactMap { $0["id"] as? String })
            }
            #expect(try await ids("?state=pending") == [thirdID])
            #expect(try await ids("?state=revoked") == [first])
            #expect(try await ids("?state=expired").contains(second))
            #expect(try await ids("?state=expired").count == 2) // p2's as well
            #expect(try await ids("?state=accepted").isEmpty)
            #expect(try await ids("").count == 4)
            let total = try await api.send(.get, "/v1/platform-invites?state=expired&limit=1", token: later.access)
            #expect(total.json["total"] as? Int == 2)
            let bogus = try await api.send(.get, "/v1/platform-invites?state=bogus", token: later.access)
            #expect(bogus.status == .badRequest && bogus.code == "invalid_request")
        }
    }

    @Test("password reset end to end through a real SMTP server", arguments: Backend.allCases)
    func passwordReset(_ backend: Backend) async throws {
        guard let smtp = ProcessInfo.processInfo.environment["PORTCULLIS_TEST_SMTP_URL"],
              let dir = ProcessInfo.processInfo.environment["PORTCULLIS_TEST_SMTP_DIR"] else {
            Issue.record("PORTCULLIS_TEST_SMTP_URL/_DIR are not set: run `make test`, which starts an SMTP sink")
            return
        }
        let email = "reset-\(UUID().uuidString.prefix(8).lowercased())@example.com"
        try await withApp(backend, configure: { $0.smtpURL = smtp; $0.mailFrom = "Portcullis <noreply@portcullis.test>" }) { api, services in
            let first = try await api.signupAndLogin(email)
            let other = try await api.login(email)
            let asked = try await api.send(.post, "/v1/auth/password-reset", json: ["email": email.uppercased()])
            let unknown = try await api.send(.post, "/v1/auth/password-reset", json: ["email": "nobody-\(UUID())@example.com"])
            #expect(asked.status == .accepted && unknown.status == .accepted && asked.text == unknown.text)

            let verify = try await services.mailedToken(to: email, template: "verify_email")
            // The sender delivers over SMTP (with AUTH); read the token back from the received message.
            #expect(try await services.mailSender.deliverDue() >= 1)
            let message = try #require(try await Self.received(in: dir, to: email, subject: "Reset your password"))
            #expect(message.contains("multipart/alternative") && message.contains("text/html"))
            let token = try #require(message.firstMatch(of: /reset-password\?token=([A-Za-z0-9_-]{43})/)?.1).description
            // Sent mail no longer keeps its link in the outbox.
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM outbox WHERE recipient = $1 AND variables IS NOT NULL AND template = 'password_reset'", email)?.int("n") == 0)

            #expect(try await api.send(.post, "/v1/auth/password-reset/confirm", json: ["token": token, "new_password": "short"]).code == "weak_password")
            let done = try await api.send(.post, "/v1/auth/password-reset/confirm", json: ["token": token, "new_password": "a brand new passphrase"])
            #expect(done.status == .noContent)
            #expect(try await api.send(.get, "/v1/me", token: first.access).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/me", token: other.access).status == .unauthorized)
            #expect(try await api.send(.post, "/v1/auth/login", json: ["email": email, "password": "correct horse battery"]).status == .unauthorized)
            #expect(try await api.send(.post, "/v1/auth/login", json: ["email": email, "password": "a brand new passphrase"]).status == .ok)
            #expect(try await api.send(.post, "/v1/auth/password-reset/confirm", json: ["token": token, "new_password": "yet another passphrase"]).code == "invalid_token")
            // A verification token is not a reset token.
            #expect(try await api.send(.post, "/v1/auth/password-reset/confirm", json: ["token": verify, "new_password": "yet another passphrase"]).code == "invalid_token")
        }
    }

    @Test("with SMTP down mail waits in the outbox and goes out when it is back")
    func smtpOutage() async throws {
        let port = Self.freePort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sink-\(UUID().uuidString)").path
        try await withApp(.sqlite, configure: { $0.smtpURL = "smtp://127.0.0.1:\(port)" }) { api, services in
            _ = try await api.signupAndLogin("outage@example.com")
            #expect(try await services.mailSender.deliverDue() == 0)
            let waiting = try await services.outbox.unsent()
            #expect(waiting.count == 1)
            #expect(waiting.first?.attempts == 1 && waiting.first?.lastError?.contains("SMTP error") == true)

            let sink = try Self.startSink(port: port, dir: dir)
            defer { sink.terminate() }
            // Due again after the backoff: delivered, and gone from the unsent list.
            #expect(try await services.mailSender.deliverDue(now: Date().addingTimeInterval(10)) == 1)
            #expect(try await services.outbox.unsent().isEmpty)
            #expect(try await Self.received(in: dir, to: "outage@example.com", subject: "Confirm your e-mail address") != nil)
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test("STARTTLS with AUTH delivers; credentials never go over a plain connection")
    func startTLS() async throws {
        let port = Self.freePort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-sink-\(UUID().uuidString)").path
        let sink = try Self.startSink(port: port, dir: dir, extra: ["--tls", "--user", "mailer", "--password", "s3cret"])
        defer { sink.terminate(); try? FileManager.default.removeItem(atPath: dir) }
        // Required STARTTLS (self-signed certificate, so verification is off for the test), then AUTH.
        try await withApp(.sqlite, configure: { $0.smtpURL = "smtp://mailer:s3cret@127.0.0.1:\(port)?starttls=required&insecure=1" }) { api, services in
            _ = try await api.signupAndLogin("tls@example.com")
            #expect(try await services.mailSender.deliverDue() == 1)
            #expect(try await Self.received(in: dir, to: "tls@example.com", subject: "Confirm your e-mail address") != nil)
        }
        // A server that offers no STARTTLS never sees the password: with credentials in the URL,
        // TLS is required unless the URL says insecure_auth=1.
        let plainPort = Self.freePort()
        let plainDir = dir + "-plain"
        let plain = try Self.startSink(port: plainPort, dir: plainDir, extra: ["--user", "mailer", "--password", "s3cret"])
        defer { plain.terminate(); try? FileManager.default.removeItem(atPath: plainDir) }
        try await withApp(.sqlite, configure: { $0.smtpURL = "smtp://mailer:s3cret@127.0.0.1:\(plainPort)" }) { api, services in
            _ = try await api.signupAndLogin("plain@example.com")
            #expect(try await services.mailSender.deliverDue() == 0)
            // curl's 64: the required TLS was not offered, so AUTH was never sent.
            #expect(try await services.outbox.unsent().first?.lastError?.contains("SMTP error 64") == true)
        }
    }

    // MARK: Helpers

    /// Waits up to five seconds for the sink to write the message (asleep between looks, so the
    /// wait holds no thread other tests need).
    static func received(in dir: String, to email: String, subject: String) async throws -> String? {
        for _ in 0..<50 {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".eml") }) ?? []
            for file in files.sorted() {
                let text = try String(contentsOfFile: (dir as NSString).appendingPathComponent(file), encoding: .utf8)
                if text.contains("X-Envelope-To: <\(email)>") || text.contains("X-Envelope-To: \(email)"), text.contains("Subject: \(subject)") {
                    return text
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// The same aiosmtpd sink `make test` uses, on a port of this test's choosing.
    static func startSink(port: Int, dir: String, extra: [String] = []) throws -> Process {
        let root = repositoryRoot
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", root.appendingPathComponent("scripts/smtp_sink.py").path, "--dir", dir, "--port", String(port)] + extra
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait for "ready <port>".
        let line = out.fileHandleForReading.availableData
        #expect(String(decoding: line, as: UTF8.self).hasPrefix("ready"))
        return process
    }
}
