import Foundation
import Hummingbird
import Identity

/// The pages a person reaches from a mail or with no account yet: signup (`?invite_token=`),
/// forgot and reset password, e-mail verification. Each form maps onto the same flow as its API
/// twin (`IdentityRoutes.signup`, `InviteRoutes.requestReset`, …): no rule is decided here.
struct AccountPages: Sendable {
    let renderer: PageRenderer
    let guardian: FormGuard
    let identity: IdentityRoutes
    let accountMail: InviteRoutes

    // MARK: Rendering with the form token

    /// A form page, with the CSRF cookie set when the browser has none yet.
    func form(_ request: Request, _ template: String, title: String, status: HTTPResponse.Status = .ok, _ values: [String: Any] = [:]) -> Response {
        let (token, isNew) = guardian.token(for: request)
        var context = values
        context["csrf"] = token
        var response = renderer.page(template, title: title, status: status, context)
        if isNew { guardian.setCookie(token, on: &response) }
        return response
    }

    /// Reads a form post and refuses a forged one (403, nothing done).
    func post(_ request: Request) async throws -> FormPost? {
        let form = try await FormPost.read(request)
        return guardian.admits(request, form) ? form : nil
    }

    var forged: Response {
        renderer.message("This form has expired", ["The page was open too long, or the request did not come from this site. Go back, reload the page and try again."], status: .forbidden)
    }

    /// What a failed flow says in place: the problem's detail and status (never a 500 page for
    /// bad input; an unexpected error is logged and shown as one line).
    static func failure(_ error: any Error, _ context: AppRequestContext) -> (String, HTTPResponse.Status) {
        guard let problem = Problem.from(error) else {
            context.logger.error("page failed", metadata: ["error": "\(String(reflecting: error))"])
            return ("Something went wrong on our side; please try again.", .internalServerError)
        }
        return (problem.detail.prefix(1).uppercased() + problem.detail.dropFirst() + ".", problem.status)
    }

    // MARK: Signup

    @Sendable func signupPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        var values: [String: Any] = [:]
        if let token = request.uri.queryParameters.get("invite_token"), !token.isEmpty, token.utf8.count <= 256 { values["invite_token"] = token }
        return form(request, "signup", title: "Create your account", values)
    }

    @Sendable func signup(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await post(request) else { return forged }
        let email = form["email"] ?? "", name = form["name"] ?? ""
        let inviteToken = form["invite_token"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            let (user, _) = try await identity.signup(
                AuthService.SignupRequest(email: email, password: form["password"] ?? "", name: name.isEmpty ? nil : name),
                inviteToken: inviteToken, ip: context.clientIP)
            if user.emailVerified {
                return renderer.message("Account created", ["Your account for \(user.email) is ready, and the invitation proved your address."])
            }
            return renderer.message("Check your inbox", [
                "We sent a link to \(user.email). Open it to confirm that the address is yours.",
                "Until then, invitations to this address wait for you.",
            ])
        } catch {
            let (message, status) = Self.failure(error, context)
            var values: [String: Any] = ["error": message, "email": email, "name": name]
            if let inviteToken { values["invite_token"] = inviteToken }
            return self.form(request, "signup", title: "Create your account", status: status, values)
        }
    }

    // MARK: Password reset

    @Sendable func forgotPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        form(request, "forgot", title: "Reset your password")
    }

    @Sendable func forgot(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await post(request) else { return forged }
        let email = form["email"] ?? ""
        do {
            try accountMail.requestReset(email: email, ip: context.clientIP)
        } catch {
            let (message, status) = Self.failure(error, context)
            return self.form(request, "forgot", title: "Reset your password", status: status, ["error": message, "email": email])
        }
        // The same words whether or not the address has an account.
        return renderer.message("Check your inbox", [
            "If an account has this address, a link to choose a new password is on its way. It works once, for one hour.",
        ])
    }

    @Sendable func resetPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        form(request, "reset", title: "Choose a new password", ["token": Self.token(request) ?? ""])
    }

    @Sendable func reset(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await spendToken(request, context, "reset", title: "Choose a new password") { token, form in
            _ = try await accountMail.confirmReset(token: token, newPassword: form["new_password"] ?? "", ip: context.clientIP)
            return renderer.message("Password changed", ["Every session of the account has ended; sign in with the new password."])
        }
    }

    // MARK: E-mail verification

    /// The link only shows a button: the token is spent by the POST, so a mail scanner that
    /// opens links does not confirm anything.
    @Sendable func verifyPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        form(request, "verify", title: "Confirm your e-mail address", ["token": Self.token(request) ?? ""])
    }

    @Sendable func verify(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await spendToken(request, context, "verify", title: "Confirm your e-mail address") { token, _ in
            _ = try await accountMail.verifyEmail(token: token, ip: context.clientIP)
            return renderer.message("Address confirmed", ["Thank you: the address is confirmed, and invitations waiting for it are now yours to accept."])
        }
    }

    /// A form that spends a mailed token: refused when forged; on failure the same form again,
    /// with the error and the token, so the person can retry or ask for a new link.
    func spendToken(
        _ request: Request, _ context: AppRequestContext, _ template: String, title: String,
        _ act: (String, FormPost) async throws -> Response
    ) async throws -> Response {
        guard let form = try await post(request) else { return forged }
        let token = form["token"] ?? ""
        do {
            return try await act(token, form)
        } catch {
            let (message, status) = Self.failure(error, context)
            return self.form(request, template, title: title, status: status, ["error": message, "token": token])
        }
    }

    static func token(_ request: Request) -> String? {
        request.uri.queryParameters.get("token").flatMap { $0.utf8.count <= 256 ? $0 : nil }
    }
}
