import Foundation
import Hummingbird
import Identity
import Invites

/// The pages a person reaches signed out or from a mail: login and logout, signup
/// (`?invite_token=`), forgot and reset password, e-mail verification, and accepting an invite
/// from its link. Each form maps onto the same flow as its API twin (`IdentityRoutes.login`,
/// `IdentityRoutes.signup`, `InviteRoutes.requestReset`, `InviteService.claim`, …): no rule is
/// decided here.
struct SignInPages: Sendable {
    let kit: PageKit
    let identity: IdentityRoutes
    let accountMail: InviteRoutes
    let invites: InviteService
    let authorize: AuthorizePages
    let upstream: UpstreamPages

    // MARK: Login and logout

    @Sendable func loginPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        let back = ReturnTo.sanitize(request.uri.queryParameters.get("return_to"))
        // `reauth=1`: an OpenID client asked for a fresh sign-in (prompt=login, max_age).
        let reauth = request.uri.queryParameters.get("reauth") == "1"
        if let who = try await kit.signedIn(request), !reauth { return kit.redirect(back ?? Self.home(who)) }
        var values: [String: Any] = ["return_to": back ?? ""]
        if let hint = request.uri.queryParameters.get("email"), hint.utf8.count <= 254 { values["email"] = hint }
        values.merge(await alternatives(back), uniquingKeysWith: { a, _ in a })
        var response = kit.page(request, nil, "login", title: "Sign in", values)
        if let uri = await authorize.redirectURI(after: back) { AuthorizePages.allowRedirect(&response, to: uri) }
        return response
    }

    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await kit.post(request) else { return kit.forged }
        let email = form["email"] ?? ""
        let back = ReturnTo.sanitize(form["return_to"])
        do {
            let pair = try await identity.login(
                email: email, password: form["password"] ?? "", userAgent: request.headers[.userAgent] ?? "", ip: context.clientIP)
            var response = kit.redirect(back ?? Self.home(SignedIn(user: pair.user, sessionID: pair.sessionID)))
            kit.startSession(pair, on: &response)
            return response
        } catch {
            let (message, status) = PageKit.failure(error, context)
            var values: [String: Any] = ["error": message, "email": email, "return_to": back ?? ""]
            values.merge(await alternatives(back), uniquingKeysWith: { a, _ in a })
            var response = kit.page(request, nil, "login", title: "Sign in", status: status, values)
            if let uri = await authorize.redirectURI(after: back) { AuthorizePages.allowRedirect(&response, to: uri) }
            return response
        }
    }

    /// Ends this browser's session (or, with `all=1`, every session of the account, API logins
    /// included). Never refused for a dead session: the cookie is cleared either way.
    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await kit.post(request) else { return kit.forged }
        if let who = try await kit.signedIn(request) {
            _ = try await identity.auth.logout(userID: who.user.id, sessionID: who.sessionID, all: form["all"] == "1")
        }
        var response = kit.redirect("/login", notice: form["all"] == "1" ? "Every session of your account has ended." : "You are signed out.")
        kit.endSession(on: &response)
        return response
    }

    static func home(_ who: SignedIn) -> String { "/account" }

    /// The other ways in, under the password form: the providers and the mailed code.
    func alternatives(_ back: String?) async -> [String: Any] {
        ["providers": await upstream.buttons(returnTo: back),
         "code_href": "/login/code" + (back.map { "?return_to=" + PageKit.queryEscape($0) } ?? "")]
    }

    // MARK: Signup

    @Sendable func signupPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        var values: [String: Any] = [:]
        let token = Self.token(request, "invite_token").flatMap { $0.isEmpty ? nil : $0 }
        if let token { values["invite_token"] = token }
        values["providers"] = await upstream.buttons(returnTo: nil, inviteToken: token)
        return kit.page(request, try await kit.signedIn(request), "signup", title: "Create your account", values)
    }

    /// With an invite's token the account starts verified and signed in, and goes on to accept
    /// the invite; without one it waits for the mailed confirmation.
    @Sendable func signup(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await kit.post(request) else { return kit.forged }
        let email = form["email"] ?? "", name = form["name"] ?? "", password = form["password"] ?? ""
        let inviteToken = form["invite_token"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            let (user, _) = try await identity.signup(
                AuthService.SignupRequest(email: email, password: password, name: name.isEmpty ? nil : name),
                inviteToken: inviteToken, ip: context.clientIP)
            if let inviteToken {
                // The password was set this moment: a session at once, not a second argon2 check.
                let pair = try await identity.auth.openSession(userID: user.id, client: ClientInfo(userAgent: request.headers[.userAgent] ?? "", ip: context.clientIP))
                var response = kit.redirect("/invites/accept?token=" + PageKit.queryEscape(inviteToken), notice: "Your account is ready.")
                kit.startSession(pair, on: &response)
                return response
            }
            return kit.renderer.message("Check your inbox", [
                "We sent a link to \(user.email). Open it to confirm that the address is yours.",
                "Until then, invitations to this address wait for you.",
            ], link: ("/login", "Sign in"))
        } catch {
            let (message, status) = PageKit.failure(error, context)
            var values: [String: Any] = ["error": message, "email": email, "name": name]
            if let inviteToken { values["invite_token"] = inviteToken }
            return kit.page(request, nil, "signup", title: "Create your account", status: status, values)
        }
    }

    // MARK: Accepting an invite from its mail

    /// Signed out: sign in or sign up first, then come back here. Signed in: a button, because
    /// only the POST spends the token (a mail scanner that opens links accepts nothing).
    @Sendable func invitePage(_ request: Request, context: AppRequestContext) async throws -> Response {
        let token = Self.token(request, "token") ?? ""
        let here = "/invites/accept?token=" + PageKit.queryEscape(token)
        return kit.page(request, try await kit.signedIn(request), "invite", title: "Accept the invitation", [
            "token": token, "login_href": "/login?return_to=" + PageKit.queryEscape(here),
            "signup_href": "/signup?invite_token=" + PageKit.queryEscape(token),
        ])
    }

    @Sendable func acceptInvite(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await kit.action(request) { who, form in
            let token = form["token"] ?? ""
            do {
                let (invite, _) = try await invites.claim(by: InviteService.Invitee(actor: who.actor, email: who.user.email), token: token)
                return kit.redirect("/orgs/\(invite.orgID.lowercasedString)", notice: "You joined \(invite.orgName) as \(invite.role.rawValue).")
            } catch {
                let (message, status) = PageKit.failure(error, context)
                let here = "/invites/accept?token=" + PageKit.queryEscape(token)
                return kit.page(request, who, "invite", title: "Accept the invitation", status: status, [
                    "token": token, "error": message, "login_href": "/login?return_to=" + PageKit.queryEscape(here),
                    "signup_href": "/signup?invite_token=" + PageKit.queryEscape(token),
                ])
            }
        }
    }

    // MARK: Password reset

    @Sendable func forgotPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        kit.page(request, nil, "forgot", title: "Reset your password")
    }

    @Sendable func forgot(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await kit.post(request) else { return kit.forged }
        let email = form["email"] ?? ""
        do {
            try accountMail.requestReset(email: email, ip: context.clientIP)
        } catch {
            let (message, status) = PageKit.failure(error, context)
            return kit.page(request, nil, "forgot", title: "Reset your password", status: status, ["error": message, "email": email])
        }
        // The same words whether or not the address has an account.
        return kit.renderer.message("Check your inbox", [
            "If an account has this address, a link to choose a new password is on its way. It works once, for one hour.",
        ])
    }

    @Sendable func resetPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        kit.page(request, nil, "reset", title: "Choose a new password", ["token": Self.token(request, "token") ?? ""])
    }

    @Sendable func reset(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await spendToken(request, context, "reset", title: "Choose a new password") { token, form in
            _ = try await accountMail.confirmReset(token: token, newPassword: form["new_password"] ?? "", ip: context.clientIP)
            return kit.renderer.message("Password changed", ["Every session of the account has ended; sign in with the new password."], link: ("/login", "Sign in"))
        }
    }

    // MARK: E-mail verification

    /// The link only shows a button: the token is spent by the POST, so a mail scanner that
    /// opens links does not confirm anything.
    @Sendable func verifyPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        kit.page(request, nil, "verify", title: "Confirm your e-mail address", ["token": Self.token(request, "token") ?? ""])
    }

    @Sendable func verify(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await spendToken(request, context, "verify", title: "Confirm your e-mail address") { token, _ in
            _ = try await accountMail.verifyEmail(token: token, ip: context.clientIP)
            return kit.renderer.message("Address confirmed", ["Thank you: the address is confirmed, and invitations waiting for it are now yours to accept."], link: ("/login", "Sign in"))
        }
    }

    /// A form that spends a mailed token: refused when forged; on failure the same form again,
    /// with the error and the token, so the person can retry or ask for a new link.
    func spendToken(
        _ request: Request, _ context: AppRequestContext, _ template: String, title: String,
        _ act: (String, FormPost) async throws -> Response
    ) async throws -> Response {
        guard let form = try await kit.post(request) else { return kit.forged }
        let token = form["token"] ?? ""
        do {
            return try await act(token, form)
        } catch {
            let (message, status) = PageKit.failure(error, context)
            return kit.page(request, nil, template, title: title, status: status, ["error": message, "token": token])
        }
    }

    static func token(_ request: Request, _ name: String) -> String? {
        request.uri.queryParameters.get(name).flatMap { $0.utf8.count <= 256 ? $0 : nil }
    }
}
