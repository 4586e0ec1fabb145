import Foundation
import HTTPTypes
import Server
import Storage
import Testing

/// SPEC §12: the holes an outside review found (account squatting, side channels, mail floods,
/// password guessing through a stolen session, scoped keys out of scope, stale invites).
@Suite("Account rules")
struct AccountRulesTests {
    /// Reads the reset link mailed to `email` and sets `password` with it.
    static func reset(_ api: APIClient, _ services: AppServices, _ email: String, to password: String) async throws {
        #expect(try await api.send(.post, "/v1/auth/password-reset", json: ["email": email]).status == .accepted)
        let token = try await services.mailedToken(to: email, template: "password_reset")
        let done = try await api.send(.post, "/v1/auth/password-reset/confirm", json: ["token": token, "new_password": password])
        #expect(done.status == .noContent, "\(done.text)")
    }

    @Test("pre-hijacking: a squatter is never added by e-mail, and the owner's reset ends the squatter's sessions and keys", arguments: Backend.allCases)
    func preHijacking(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let admin = try await api.signupAndLogin("admin@example.com")
            let org = try await api.createOrg(admin.access)
            // The squatter signs up with the victim's address (never verified) and makes a key.
            let squatter = try await api.signupAndLogin("victim@example.com")
            let squatterKey = try await api.createKey(squatter.access, name: "squat").key
            #expect(try await api.send(.get, "/v1/me", token: squatterKey).status == .ok)

            // The admin adds the address: it is invited (dormant), not made a member.
            let added = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["email": "victim@example.com", "role": "admin"], token: admin.access)
            #expect(added.status == .accepted, "\(added.text)")
            #expect(added.json["dormant"] as? Bool == true)
            let inviteID = try #require(added.json["id"] as? String)
            #expect(try await api.items("/v1/orgs/\(org)/members", token: admin.access).count == 1)
            #expect(try await api.send(.get, "/v1/orgs/\(org)", token: squatter.access).status == .notFound)
            // Accepting waits for the address to be proven (409 invite_dormant): the squatter cannot prove it.
            #expect(try await api.send(.post, "/v1/invites/\(inviteID)/accept", token: squatter.access).code == "invite_dormant")
            #expect(try await api.items("/v1/orgs/\(org)/members", token: admin.access).count == 1)

            // The real owner recovers the account by password reset: that proves the address.
            try await Self.reset(api, services, "victim@example.com", to: "the owner's own passphrase")
            #expect(try await api.send(.get, "/v1/me", token: squatterKey).status == .unauthorized)
            #expect(try await api.send(.get, "/v1/me", token: squatter.access).status == .unauthorized)
            #expect(try await api.send(.post, "/v1/auth/refresh", json: ["refresh_token": squatter.refresh]).status == .unauthorized)
            let audit = try await services.database.query(
                "SELECT details FROM audit_events WHERE action = 'key.revoked' AND actor_id = $1", UUID(uuidString: squatter.userID)!)
            #expect(audit.count == 1)

            let owner = try await api.login("victim@example.com", password: "the owner's own passphrase")
            let me = try await api.send(.get, "/v1/me", token: owner.access)
            #expect(me.json["email_verified"] as? Bool == true)
            // The dormant invite woke with the proof; the owner (not the squatter) accepts it.
            let invite = try await api.send(.get, "/v1/invites/\(inviteID)", token: owner.access)
            #expect(invite.json["dormant"] as? Bool == false && invite.json["state"] as? String == "pending", "\(invite.text)")
            #expect(try await api.send(.post, "/v1/invites/\(inviteID)/accept", token: owner.access).status == .ok)

            // A key made after the proof survives a later reset (documented).
            let kept = try await api.createKey(owner.access, name: "after proof").key
            try await Self.reset(api, services, "victim@example.com", to: "another passphrase again")
            #expect(try await api.send(.get, "/v1/me", token: kept).status == .ok)
        }
    }

    @Test("a proven address is added at once; add by e-mail with expires_at to an unproven one is refused", arguments: Backend.allCases)
    func addByEmail(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let admin = try await api.signupAndLogin("admin@example.com")
            let org = try await api.createOrg(admin.access)
            _ = try await api.signup("late@example.com")
            let timed = try await api.send(.post, "/v1/orgs/\(org)/members", json: [
                "email": "late@example.com", "role": "viewer", "expires_at": "2100-01-01T00:00:00Z",
            ], token: admin.access)
            #expect(timed.status == .conflict)
            // Unknown and unproven addresses get the same answer: a dormant invite.
            let unproven = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["email": "late@example.com", "role": "viewer"], token: admin.access)
            let unknown = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["email": "nobody@example.com", "role": "viewer"], token: admin.access)
            #expect(unproven.status == .accepted && unknown.status == .accepted)
            #expect(unproven.json["dormant"] as? Bool == true && unknown.json["dormant"] as? Bool == true)
            // Proving the address wakes the invite; adding by e-mail now adds directly.
            try await api.proveAddress("late@example.com")
            let late = try await api.login("late@example.com")
            let invites = try await api.items("/v1/me/invites", token: late.access)
            #expect(invites.count == 1 && invites.first?["state"] as? String == "pending")
            _ = try await api.signup("now@example.com")
            try await api.proveAddress("now@example.com")
            let now = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["email": "now@example.com", "role": "editor"], token: admin.access)
            #expect(now.status == .created && now.json["role"] as? String == "editor")
        }
    }

    @Test("verify-email/request mails a fresh link to an unverified account; the same 202 for every address", arguments: Backend.allCases)
    func verificationRequest(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.limits.resetMailsPerHour = 3 }) { api, services in
            _ = try await api.signup("fresh@example.com")
            _ = try await api.signupAndLogin("done@example.com")
            try await api.proveAddress("done@example.com")
            let first = try await services.mailedToken(to: "fresh@example.com", template: "verify_email")
            var answers: [String] = []
            for email in ["fresh@example.com", "done@example.com", "nobody@example.com"] {
                let r = try await api.send(.post, "/v1/auth/verify-email/request", json: ["email": email])
                #expect(r.status == .accepted)
                answers.append(r.text)
            }
            #expect(Set(answers).count == 1)
            try await services.auth.drainAccountMail()
            let count = { (email: String) in
                try await services.database.queryFirst("SELECT COUNT(*) AS n FROM outbox WHERE recipient = $1 AND template = 'verify_email'", email)?.int("n")
            }
            #expect(try await count("fresh@example.com") == 2)
            #expect(try await count("done@example.com") == 1)
            #expect(try await count("nobody@example.com") == 0)
            // The fresh link works; the one it replaced does not.
            let second = try await services.mailedToken(to: "fresh@example.com", template: "verify_email")
            #expect(second != first)
            #expect(try await api.send(.post, "/v1/auth/verify-email", json: ["token": first]).code == "invalid_token")
            #expect(try await api.send(.post, "/v1/auth/verify-email", json: ["token": second]).status == .noContent)
            // Throttled per address like reset: the 4th request within the hour is 429.
            for _ in 0..<2 { #expect(try await api.send(.post, "/v1/auth/verify-email/request", json: ["email": "nobody@example.com"]).status == .accepted) }
            let throttled = try await api.send(.post, "/v1/auth/verify-email/request", json: ["email": "nobody@example.com"])
            #expect(throttled.status == .tooManyRequests && throttled.headers[.retryAfter] != nil)
        }
    }

    @Test("a reset request does the same work on the request path for known and unknown addresses; /metrics is not public", arguments: Backend.allCases)
    func resetSideChannels(_ backend: Backend) async throws {
        let token = "metrics-token-for-tests-0123456789abcdef"
        try await withApp(backend, configure: { rootSetup(&$0); $0.metricsToken = token }) { api, services in
            _ = try await api.signup("known@example.com")
            try await services.auth.drainAccountMail()
            // The background worker would otherwise race the look below.
            services.auth.accountMail.hold()
            defer { services.auth.accountMail.release() }
            let pending = { try await services.database.queryFirst("SELECT COUNT(*) AS n FROM outbox")?.int("n") ?? -1 }
            let before = try await pending()
            let known = try await api.send(.post, "/v1/auth/password-reset", json: ["email": "known@example.com"])
            let unknown = try await api.send(.post, "/v1/auth/password-reset", json: ["email": "unknown@example.com"])
            #expect(known.status == .accepted && known.text == unknown.text)
            // Nothing was looked up or written before the answer: the outbox is as it was.
            #expect(try await pending() == before)
            try await services.auth.drainAccountMail()
            #expect(try await pending() == before + 1)

            #expect(try await api.send(.get, "/metrics").status == .unauthorized)
            #expect(try await api.send(.get, "/metrics", headers: [.authorization: "Bearer wrong-token-wrong-token-wrong-token"]).status == .unauthorized)
            let user = try await api.login("known@example.com")
            #expect(try await api.send(.get, "/metrics", token: user.access).status == .forbidden)
            #expect(try await api.send(.get, "/metrics", token: token).status == .ok)
            let root = try await api.login("root@example.com", password: testRootPassword)
            #expect(try await api.send(.get, "/metrics", token: root.access).status == .ok)
        }
    }

    @Test("invite mail is budgeted per org and per recipient", arguments: Backend.allCases)
    func inviteMailBudgets(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.limits.inviteMailsPerOrgPerHour = 4; $0.limits.inviteMailsPerRecipientPerHour = 3 }) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let org = try await api.createOrg(alice.access)
            let other = try await api.createOrg(alice.access, name: "Other")
            let invite = try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": "victim@example.com", "role": "viewer"], token: alice.access)
            let id = try #require(invite.json["id"] as? String)
            for _ in 0..<2 { #expect(try await api.send(.post, "/v1/invites/\(id)/resend", token: alice.access).status == .ok) }
            let mails = { try await services.database.queryFirst("SELECT COUNT(*) AS n FROM outbox WHERE recipient = 'victim@example.com'")?.int("n") }
            #expect(try await mails() == 3)
            // The recipient's budget is spent: a resend, or another org's invite, is 429 and mails nothing.
            let fourth = try await api.send(.post, "/v1/invites/\(id)/resend", token: alice.access)
            #expect(fourth.status == .tooManyRequests && fourth.code == "rate_limited")
            let elsewhere = try await api.send(.post, "/v1/orgs/\(other)/invites", json: ["email": "victim@example.com", "role": "viewer"], token: alice.access)
            #expect(elsewhere.status == .tooManyRequests)
            #expect(try await mails() == 3)
            #expect(try await api.items("/v1/orgs/\(other)/invites", token: alice.access).isEmpty)
            // The org's budget: one more mail to someone else, then 429.
            #expect(try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": "b@example.com", "role": "viewer"], token: alice.access).status == .created)
            #expect(try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": "c@example.com", "role": "viewer"], token: alice.access).status == .tooManyRequests)
        }
    }

    @Test("wrong current passwords are budgeted per session and per account; login still works", arguments: Backend.allCases)
    func passwordGuessing(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.limits.passwordGuessesPerSessionPerHour = 3; $0.limits.passwordGuessesPerAccountPerHour = 5 }) { api, _ in
            let stolen = try await api.signupAndLogin("owner@example.com")
            func guess(_ token: String, _ current: String = "wrong guess 123") async throws -> APIClient.Reply {
                try await api.send(.post, "/v1/me/password", json: ["current_password": current, "new_password": "attacker passphrase"], token: token)
            }
            for _ in 0..<3 { #expect(try await guess(stolen.access).status == .forbidden) }
            let refused = try await guess(stolen.access, "correct horse battery")
            #expect(refused.status == .tooManyRequests && refused.headers[.retryAfter] != nil)
            // The owner can still sign in; a second session has its own budget until the account's runs out.
            let second = try await api.login("owner@example.com")
            for _ in 0..<2 { #expect(try await guess(second.access).status == .forbidden) }
            #expect(try await guess(second.access).status == .tooManyRequests)
            let third = try await api.login("owner@example.com")
            #expect(try await api.send(.get, "/v1/me", token: third.access).status == .ok)
            #expect(try await guess(third.access, "correct horse battery").status == .tooManyRequests)
        }
    }

    @Test("scoped keys stay in scope: explain, invite revoke, invite accept, leaving", arguments: Backend.allCases)
    func scopedKeys(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let owner = try await api.signupAndLogin("owner@example.com")
            let orgA = try await api.createOrg(owner.access, name: "A")
            let orgB = try await api.createOrg(owner.access, name: "B")
            let host = try await api.signupAndLogin("host@example.com")
            let orgC = try await api.createOrg(host.access, name: "C")
            try await api.proveAddress("owner@example.com")
            let keyB = try await api.createKey(owner.access, name: "b", scopes: ["org:\(orgB)", "role:viewer"]).key
            let keyA = try await api.createKey(owner.access, name: "a", scopes: ["org:\(orgA)", "role:viewer"]).key
            let keyAll = try await api.createKey(owner.access, name: "capped", scopes: ["role:viewer"]).key

            // Explain about org A through a key scoped to B lists none of the owner's grants.
            let explained = try await api.send(.post, "/v1/authorize/explain", json: ["object": "org:\(orgA)/doc:1", "action": "viewer"], token: keyB)
            #expect(explained.status == .ok)
            #expect(explained.json["allowed"] as? Bool == false)
            #expect((explained.json["grants"] as? [Any])?.isEmpty == true, "\(explained.text)")

            // The inviter shortcut sees the key's narrowed authority.
            let invite = try await api.send(.post, "/v1/orgs/\(orgA)/invites", json: ["email": "guest@example.com", "role": "viewer"], token: owner.access)
            let inviteID = try #require(invite.json["id"] as? String)
            #expect(try await api.send(.delete, "/v1/invites/\(inviteID)", token: keyB).status == .notFound)
            #expect(try await api.send(.get, "/v1/invites/\(inviteID)", token: owner.access).json["state"] as? String == "pending")

            // Accepting: not through a key scoped to other orgs, nor above the key's role cap.
            let toC = try await api.send(.post, "/v1/orgs/\(orgC)/invites", json: ["email": "owner@example.com", "role": "admin"], token: host.access)
            let toCID = try #require(toC.json["id"] as? String)
            #expect(try await api.send(.post, "/v1/invites/\(toCID)/accept", token: keyB).status == .notFound)
            #expect(try await api.send(.post, "/v1/invites/\(toCID)/accept", token: keyAll).status == .forbidden)
            #expect(try await api.items("/v1/orgs/\(orgC)/members", token: host.access).count == 1)
            #expect(try await api.send(.post, "/v1/invites/\(toCID)/accept", token: owner.access).status == .ok)

            // Leaving through a read-only key is not allowed; the owner stays.
            let left = try await api.send(.delete, "/v1/orgs/\(orgA)/members/\(owner.userID)", token: keyA)
            #expect(left.status == .forbidden, "\(left.text)")
            #expect(try await api.send(.get, "/v1/orgs/\(orgA)/members/\(owner.userID)", token: owner.access).status == .ok)
        }
    }

    @Test("removing or demoting a member ends the invites they sent above their new role", arguments: Backend.allCases)
    func staleInvites(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let owner = try await api.signupAndLogin("owner@example.com")
            let admin = try await api.signupAndLogin("admin@example.com")
            let org = try await api.createOrg(owner.access)
            try await api.addMember(owner.access, org: org, email: "admin@example.com", role: "admin")
            func invite(_ email: String, _ role: String) async throws -> String {
                let r = try await api.send(.post, "/v1/orgs/\(org)/invites", json: ["email": email, "role": role], token: admin.access)
                #expect(r.status == .created, "\(r.text)")
                return try #require(r.json["id"] as? String)
            }
            let accomplice = try await api.signupVerified("accomplice@example.com", services)
            let adminInvite = try await invite("accomplice@example.com", "admin")
            let editorInvite = try await invite("editor@example.com", "editor")
            let viewerInvite = try await invite("viewer@example.com", "viewer")
            func state(_ id: String) async throws -> String? {
                try await api.send(.get, "/v1/invites/\(id)", token: owner.access).json["state"] as? String
            }
            // Demoted to editor: the admin invite ends; the editor and viewer ones stand.
            #expect(try await api.send(.patch, "/v1/orgs/\(org)/members/\(admin.userID)", json: ["role": "editor"], token: owner.access).status == .ok)
            #expect(try await state(adminInvite) == "revoked")
            #expect(try await state(editorInvite) == "pending")
            // The accomplice can no longer use it.
            #expect(try await api.send(.post, "/v1/invites/\(adminInvite)/accept", token: accomplice.access).status == .conflict)
            // Removed: every pending invite they sent ends, audited.
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/members/\(admin.userID)", token: owner.access).status == .noContent)
            #expect(try await state(editorInvite) == "revoked")
            #expect(try await state(viewerInvite) == "revoked")
            let audit = try await api.items("/v1/orgs/\(org)/audit?limit=100", token: owner.access)
            #expect(audit.filter { $0["action"] as? String == "invite.revoked" }.count == 3)
        }
    }
}
