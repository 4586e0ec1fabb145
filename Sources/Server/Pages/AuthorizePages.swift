import Foundation
import HTTPTypes
import Hummingbird
import Identity
import OpenID

/// `/oauth/authorize`: "Log in with Portcullis" (SPEC §14). The request is checked against its
/// client; a bad client or redirect URI is said on a page, anything else goes back to the
/// client's redirect URI as an error (RFC 6749 §4.1.2.1). The person signs in on the login page
/// (again, for `prompt=login` or an old sign-in under `max_age`), consents unless the client is
/// first-party or was given these scopes before, and is sent back with a one-minute code.
struct AuthorizePages: Sendable {
    let kit: PageKit
    let openID: OpenIDService
    let auth: AuthService
    let issuer: String

    static let scopeWords: [String: String] = [
        "openid": "Know who you are (your account's id)",
        "profile": "See your name",
        "email": "See your e-mail address and whether it is confirmed",
        "offline_access": "Stay signed in while you are away",
        "orgs": "See your orgs and your role in each",
    ]

    @Sendable func authorize(_ request: Request, context: AppRequestContext) async throws -> Response {
        // Form encoding (`+` is a space, as clients such as Authlib write `scope=openid+email`).
        try await proceed(request, FormPost.parse(request.uri.query ?? "").fields, decision: nil)
    }

    /// The consent form: the request's fields again, with the person's answer.
    @Sendable func decide(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await kit.action(request) { _, form in
            var query = form.fields
            let decision = query.removeValue(forKey: "decision")
            query["csrf"] = nil
            return try await proceed(request, query, decision: decision == "allow")
        }
    }

    func proceed(_ request: Request, _ query: [String: String], decision: Bool?) async throws -> Response {
        let wanted: AuthorizationRequest
        do {
            wanted = try await openID.check(query)
        } catch AuthorizationError.untrusted(let why) {
            return kit.renderer.message("This sign-in cannot go on", [why, "Go back to the application and try again, or tell its makers."], status: .badRequest)
        } catch AuthorizationError.redirect(let error, let description, let uri, let state) {
            return back(uri, ["error": error, "error_description": description, "state": state])
        }
        let who = try await kit.signedIn(request)
        var session: Session?
        if let who { session = try await auth.session(id: who.sessionID) }
        let authTime = session?.createdAt ?? Date.distantPast
        let tooOld = wanted.maxAge.map { $0 == 0 || Date().timeIntervalSince(authTime) > Double($0) } ?? false
        guard let who, session != nil, !wanted.prompt.contains("login"), !tooOld else {
            if wanted.prompt.contains("none") { return refuse(wanted, "login_required", "the person is not signed in") }
            // Back here after signing in, without the request to sign in again (or it would loop).
            var again = query
            again["prompt"] = wanted.prompt.subtracting(["login"]).sorted().joined(separator: " ")
            if again["prompt"]?.isEmpty == true { again["prompt"] = nil }
            if again["max_age"] == "0" { again["max_age"] = nil }
            var login = "/login?reauth=1&return_to=" + PageKit.queryEscape("/oauth/authorize?" + Self.encode(again))
            if let hint = wanted.loginHint { login += "&email=" + PageKit.queryEscape(hint) }
            return kit.redirect(login)
        }
        if decision == false { return refuse(wanted, "access_denied", "the person did not allow it") }
        if decision == nil, try await openID.needsConsent(userID: who.user.id, wanted) {
            if wanted.prompt.contains("none") { return refuse(wanted, "consent_required", "the person has not consented") }
            var fields = query
            fields["prompt"] = nil
            var response = kit.page(request, who, "consent", title: "Allow \(wanted.client.name)?", [
                "client_name": wanted.client.name, "redirect_host": URL(string: wanted.redirectURI)?.host ?? "",
                "scopes": wanted.scopes.map { ["text": Self.scopeWords[$0] ?? $0] },
                "fields": fields.sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] },
            ])
            Self.allowRedirect(&response, to: wanted.redirectURI)
            return response
        }
        if decision == true { try await openID.consent(userID: who.user.id, wanted) }
        let code = try await openID.issueCode(wanted, userID: who.user.id, authTime: authTime)
        return back(wanted.redirectURI, ["code": code, "state": wanted.state, "iss": issuer])
    }

    /// The answer to a page's form may end at the client (consent, or signing in on the way):
    /// browsers hold a form's redirects to `form-action` too, so the client's registered
    /// redirect origin is allowed on that page, and only there.
    static func allowRedirect(_ response: inout Response, to redirectURI: String) {
        guard let origin = URL(string: redirectURI).flatMap(WebOrigin.of) else { return }
        let name = HTTPField.Name("Content-Security-Policy")!
        response.headers[name] = response.headers[name]?.replacingOccurrences(of: "form-action 'self'", with: "form-action 'self' \(origin)")
    }

    /// When signing in is a step of an authorization request (`return_to` is one, for a known
    /// client and registered redirect URI), that redirect URI.
    func redirectURI(after back: String?) async -> String? {
        guard let back, back.hasPrefix("/oauth/authorize?") else { return nil }
        return try? await openID.check(FormPost.parse(String(back.dropFirst("/oauth/authorize?".count))).fields).redirectURI
    }

    func refuse(_ wanted: AuthorizationRequest, _ error: String, _ description: String) -> Response {
        back(wanted.redirectURI, ["error": error, "error_description": description, "state": wanted.state])
    }

    /// To the client's registered redirect URI, with the answer in its query.
    func back(_ uri: String, _ values: [String: String?]) -> Response {
        let query = Self.encode(values.compactMapValues { $0 })
        var response = Response(status: .seeOther, headers: [.location: uri + (uri.contains("?") ? "&" : "?") + query])
        PageRenderer.secure(&response.headers)
        return response
    }

    static func encode(_ values: [String: String]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return values.sorted { $0.key < $1.key }
            .map { "\($0.key.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
            .joined(separator: "&")
    }
}
