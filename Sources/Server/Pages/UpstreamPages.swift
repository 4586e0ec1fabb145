import Authority
import Federation
import Foundation
import Hummingbird
import Identity

/// Signing in through an upstream provider and by a mailed code, and linking upstream accounts
/// from `/account` (SPEC §15). Each handler maps the browser's request onto one call of
/// `FederationService` or of the e-mail code flow (`FederationRoutes`, shared with the API).
struct UpstreamPages: Sendable {
    let kit: PageKit
    let federation: FederationService
    let codes: FederationRoutes
    let authorize: AuthorizePages
    static let flowCookie = "portcullis_upstream"

    /// The "Continue with …" links of the login and signup pages.
    func buttons(returnTo: String?, inviteToken: String? = nil) async -> [[String: Any]] {
        let providers = (try? await federation.enabledProviders()) ?? []
        return providers.map { p in
            var query: [String] = []
            if let returnTo { query.append("return_to=" + PageKit.queryEscape(returnTo)) }
            if let inviteToken { query.append("invite_token=" + PageKit.queryEscape(inviteToken)) }
            return ["id": p.id, "name": p.displayName, "kind": p.kind.rawValue,
                    "href": FederationService.startPath(p.id) + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))]
        }
    }

    func setFlowCookie(_ state: String, on response: inout Response) {
        response.setCookie(Cookie(
            name: Self.flowCookie, value: state, maxAge: Int(FederationService.flowLifetime), path: "/login/upstream",
            secure: kit.guardian.secureCookies, httpOnly: true, sameSite: .lax))
    }

    func leave(_ departure: FederationService.Departure) -> Response {
        var response = Response(status: .found, headers: [.location: departure.location])
        PageRenderer.secure(&response.headers)
        setFlowCookie(departure.state, on: &response)
        return response
    }

    // MARK: Out and back

    /// `GET /login/upstream/{provider_id}`: off to the provider (a link, so no form is involved).
    @Sendable func begin(_ request: Request, context: AppRequestContext) async throws -> Response {
        let back = ReturnTo.sanitize(request.uri.queryParameters.get("return_to"))
        let invite = SignInPages.token(request, "invite_token").flatMap { $0.isEmpty ? nil : Secrets.hash($0) }
        do {
            // Each start writes a flow: budgeted per client like the other sign-in forms.
            try codes.limits.spend(ip: context.clientIP, now: federation.now())
            return leave(try await federation.begin(providerID: context.parameters.get("provider_id") ?? "", intent: .signIn(inviteTokenHash: invite), returnTo: back))
        } catch {
            return refusal(error, context)
        }
    }

    /// `GET /login/upstream/{provider_id}/callback`: the provider sends the browser back here.
    @Sendable func callback(_ request: Request, context: AppRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var response: Response
        do {
            let arrival = try await federation.complete(
                providerID: context.parameters.get("provider_id") ?? "", code: query.get("code"), state: query.get("state"),
                cookieState: request.cookies[Self.flowCookie]?.value, upstreamError: query.get("error"),
                signedIn: try await kit.signedIn(request)?.user.id,
                client: ClientInfo(userAgent: request.headers[.userAgent] ?? "", ip: context.clientIP))
            switch arrival {
            case .signedIn(let pair, let created, let back, let invited):
                let next = back ?? (invited ? "/account/invites" : "/account")
                if next.hasPrefix(AuthorizePages.authorizePath + "?") {
                    // Back to an OpenID client's authorization: through a page of our own, not a
                    // redirect. The provider's sign-in form started this chain of redirects, and a
                    // browser holds them all to that page's `form-action`, which does not name the
                    // client this one ends at.
                    response = kit.renderer.page("message", title: "Signed in", status: .ok, [
                        "paragraphs": ["You are signed in. Taking you back to the app…"], "link_href": next, "link_text": "Continue", "continue_to": next,
                    ])
                } else {
                    response = kit.redirect(next, notice: created ? "Your account is ready." : nil)
                }
                kit.startSession(pair, on: &response)
            case .linked(_, let provider, let back):
                response = kit.redirect(back ?? "/account", notice: "\(provider.displayName) is linked: you can sign in with it from now on.")
            }
        } catch {
            response = refusal(error, context)
        }
        // The flow is spent whatever happened.
        response.setCookie(Cookie(name: Self.flowCookie, value: "", maxAge: 0, path: "/login/upstream", secure: kit.guardian.secureCookies, httpOnly: true, sameSite: .lax))
        return response
    }

    /// A sign-in that did not work, as a page: what happened and what to do.
    func refusal(_ error: any Error, _ context: AppRequestContext) -> Response {
        if case FederationError.linkRequired(let email, let provider) = error {
            return kit.renderer.message("Sign in to your account first", [
                "An account with \(email) exists already. To use \(provider) with it, sign in to that account the usual way, then link \(provider) on your account page.",
                "Accounts are never joined just because their addresses match.",
            ], status: .conflict, link: ("/login?email=" + PageKit.queryEscape(email), "Sign in"))
        }
        let (message, status) = PageKit.failure(error, context)
        return kit.renderer.message("Sign-in did not work", [message], status: status, link: ("/login", "Back to sign in"))
    }

    // MARK: Linking from the account page

    /// `POST /account/identities/link`: off to the provider to link it to this account.
    var link: PageHandler {
        { request, context in
            try await kit.action(request) { who, form in
                do {
                    let signedInAt = try await kit.auth.session(id: who.sessionID)?.createdAt
                    return leave(try await federation.begin(
                        providerID: form["provider"] ?? "", intent: .link(userID: who.user.id), returnTo: "/account", signedInAt: signedInAt))
                } catch {
                    let (message, status) = PageKit.failure(error, context)
                    if case FederationError.reauthenticate = error {
                        return kit.page(request, who, "message", title: "Sign in again", status: status, [
                            "paragraphs": [message], "link_href": "/login?reauth=1&return_to=" + PageKit.queryEscape("/account"), "link_text": "Sign in again",
                        ])
                    }
                    return kit.redirect("/account", notice: status == .notFound ? "That sign-in provider is not available." : message)
                }
            }
        }
    }

    /// `POST /account/identities/{identity_id}/unlink`.
    var unlink: PageHandler {
        { request, context in
            try await kit.action(request) { who, _ in
                guard let id = context.parameters.get("identity_id").flatMap({ UUIDText.parse($0) }) else {
                    return kit.redirect("/account", notice: "No such linked sign-in.")
                }
                do {
                    _ = try await federation.unlink(userID: who.user.id, identityID: id)
                    return kit.redirect("/account", notice: "The sign-in is unlinked.")
                } catch {
                    let (message, status) = PageKit.failure(error, context)
                    return kit.page(request, who, "message", title: "Not unlinked", status: status, [
                        "paragraphs": [message], "link_href": "/account", "link_text": "Back to your account",
                    ])
                }
            }
        }
    }

    /// The account page's "Ways to sign in": the password, the linked providers with their
    /// unlink buttons, and the providers that can be linked now (`FederationService.methods`).
    func methods(_ who: SignedIn) async throws -> (values: [String: Any], linkable: [UpstreamProvider]) {
        let methods = try await federation.methods(userID: who.user.id)
        let last = !methods.hasPassword && methods.identities.count == 1
        var values: [String: Any] = [
            "has_password": methods.hasPassword,
            "linkable": methods.linkable.map { ["id": $0.id, "name": $0.displayName] },
        ]
        if !methods.identities.isEmpty {
            values["identities"] = methods.identities.map { i -> [String: Any] in
                var row: [String: Any] = ["id": i.id.lowercasedString, "provider": methods.providerName(i), "email": i.email,
                                          "linked_at": PageFormat.date(i.createdAt), "last": last]
                if let used = i.lastUsedAt { row["last_used_at"] = PageFormat.date(used) }
                return row
            }
        }
        if methods.linkNeedsProof { values["link_needs_proof"] = true }
        return (values, methods.linkable)
    }

    /// The account page's link form posts, through our redirect, to the providers' sign-in pages:
    /// browsers hold a form's redirects to `form-action`, so their origins are allowed there.
    static func allowLinkRedirects(_ response: inout Response, to providers: [UpstreamProvider]) {
        for provider in providers { AuthorizePages.allowRedirect(&response, to: provider.signInBase) }
    }

    // MARK: E-mail codes

    @Sendable func codePage(_ request: Request, context: AppRequestContext) async throws -> Response {
        var values: [String: Any] = [:]
        if let back = ReturnTo.sanitize(request.uri.queryParameters.get("return_to")) { values["return_to"] = back }
        return kit.page(request, nil, "login-code", title: "Sign in with a code", values)
    }

    /// Asks for a code: the same page follows for every address, with the flow in a cookie.
    @Sendable func requestCode(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await kit.post(request) else { return kit.forged }
        let email = form["email"] ?? ""
        var values: [String: Any] = ["email": email]
        if let back = ReturnTo.sanitize(form["return_to"]) { values["return_to"] = back }
        do {
            let flow = try await codes.requestCode(email: email, ip: context.clientIP)
            values["sent"] = true
            var response = kit.page(request, nil, "login-code", title: "Enter your code", values)
            codes.setCodeCookie(flow, on: &response)
            await allowAuthorizationRedirect(&response, after: values["return_to"] as? String)
            return response
        } catch {
            let (message, status) = PageKit.failure(error, context)
            values["error"] = message
            return kit.page(request, nil, "login-code", title: "Sign in with a code", status: status, values)
        }
    }

    @Sendable func verifyCode(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await kit.post(request) else { return kit.forged }
        let email = form["email"] ?? ""
        let back = ReturnTo.sanitize(form["return_to"])
        do {
            let pair = try await codes.verifyCode(
                email: email, code: (form["code"] ?? "").trimmingCharacters(in: .whitespaces), flow: request.cookies[FederationRoutes.codeCookie]?.value ?? "",
                userAgent: request.headers[.userAgent] ?? "", ip: context.clientIP)
            var response = kit.redirect(back ?? SignInPages.home(SignedIn(user: pair.user, sessionID: pair.sessionID)))
            kit.startSession(pair, on: &response)
            response.setCookie(Cookie(name: FederationRoutes.codeCookie, value: "", maxAge: 0, path: "/", secure: kit.guardian.secureCookies, httpOnly: true, sameSite: .strict))
            return response
        } catch {
            let (message, status) = PageKit.failure(error, context)
            var values: [String: Any] = ["email": email, "sent": true, "error": message]
            if let back { values["return_to"] = back }
            var response = kit.page(request, nil, "login-code", title: "Enter your code", status: status, values)
            await allowAuthorizationRedirect(&response, after: back)
            return response
        }
    }

    /// The code form's post ends, when signing in is a step of an OpenID authorization, in a
    /// redirect to the client: browsers hold a form's redirects to the page's `form-action`.
    func allowAuthorizationRedirect(_ response: inout Response, after back: String?) async {
        if let uri = await authorize.redirectURI(after: back) { AuthorizePages.allowRedirect(&response, to: uri) }
    }
}
