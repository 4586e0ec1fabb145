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
    let tokens: TokenService
    let issuer: String

    static let scopeWords: [String: String] = [
        "openid": "Know who you are (your account's id)",
        "profile": "See your name",
        "email": "See your e-mail address and whether it is confirmed",
        "offline_access": "Stay signed in while you are away",
        "orgs": "See your orgs and your role in each",
    ]

    /// The parameters an authorization request carries through login and consent; nothing else
    /// (a `decision` planted in the link, say) is carried.
    static let parameters: Set<String> = [
        "client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method",
        "prompt", "max_age", "login_hint", "id_token_hint", "request", "request_uri", "organization", authAfter,
    ]
    /// A sealed time: "a sign-in at or after this satisfies prompt=login / max_age". Added when
    /// this server sends the person to sign in, so coming back does not loop and cannot be faked.
    static let authAfter = "portcullis_auth_after"

    @Sendable func authorize(_ request: Request, context: AppRequestContext) async throws -> Response {
        // Form encoding (`+` is a space, as clients such as Authlib write `scope=openid+email`).
        try await proceed(request, FormPost.parse(request.uri.query ?? ""), decision: nil)
    }

    /// The consent form: the request's fields again, with the person's answer. A POST without an
    /// answer is a relying party sending its authorization request by POST (OpenID Connect Core
    /// §3.1.2.1): handled as the GET is, since it decides nothing.
    @Sendable func decide(_ request: Request, context: AppRequestContext) async throws -> Response {
        let posted = try await FormPost.read(request)
        if posted.all("decision").isEmpty { return try await proceed(request, posted, decision: nil) }
        return try await kit.action(request, form: posted) { _, form in
            let decisions = form.all("decision")
            guard decisions.count == 1 else { return kit.renderer.message("This form is not valid", ["Go back and answer once."], status: .badRequest) }
            return try await proceed(request, form, decision: decisions[0] == "allow")
        }
    }

    func proceed(_ request: Request, _ form: FormPost, decision: Bool?) async throws -> Response {
        let query = form.fields.filter { Self.parameters.contains($0.key) }
        let wanted: AuthorizationRequest
        do {
            // RFC 6749 §3.1: a parameter given twice is an error (for the client or the redirect URI, on a page).
            let repeated = Self.parameters.filter { form.all($0).count > 1 }
            if !repeated.isDisjoint(with: ["client_id", "redirect_uri"]) { throw AuthorizationError.untrusted("The request names its application or its way back twice.") }
            wanted = try await openID.check(query)
            if let name = repeated.first { throw AuthorizationError.redirect(error: "invalid_request", description: "\(name) is repeated", redirectURI: wanted.redirectURI, state: wanted.state) }
        } catch AuthorizationError.untrusted(let why) {
            return kit.renderer.message("This sign-in cannot go on", [why, "Go back to the application and try again, or tell its makers."], status: .badRequest)
        } catch AuthorizationError.redirect(let error, let description, let uri, let state) {
            return Self.back(uri, ["error": error, "error_description": description, "state": state, "iss": issuer])
        }
        // id_token_hint: an ID token this server issued to this client, naming who the client
        // expects. Someone else signed in counts as no one (prompt=none then says login_required).
        var hinted: String?
        if let hint = query["id_token_hint"] {
            guard hint.utf8.count <= 8192, let claims = try? await tokens.verifySignature(hint, as: IDTokenClaims.self),
                  claims.aud.value.contains(wanted.client.id.lowercasedString) else {
                return refuse(wanted, "invalid_request", "id_token_hint is not an ID token this server issued to this client")
            }
            hinted = claims.sub.value
        }
        var who = try await kit.signedIn(request)
        if let hinted, let signedIn = who, signedIn.user.id.lowercasedString != hinted { who = nil }
        var session: Session?
        if let who { session = try await auth.session(id: who.sessionID) }
        let authTime = session?.createdAt ?? Date.distantPast
        // Signed in since this server sent the person to sign in for this request?
        let signedInSince = query[Self.authAfter].flatMap(kit.cookies.unseal).flatMap { Self.markedTime($0, for: wanted) }
            .map { authTime.timeIntervalSince1970 >= $0 } ?? false
        let tooOld = wanted.maxAge.map { $0 == 0 || Date().timeIntervalSince(authTime) > Double($0) } ?? false
        guard let who, session != nil, signedInSince || (!wanted.prompt.contains("login") && !tooOld) else {
            if wanted.prompt.contains("none") { return refuse(wanted, "login_required", "the person is not signed in") }
            // Back here after signing in, with the sealed time of this redirect: a sign-in after it
            // satisfies prompt=login and max_age (no loop), and the request itself stays as it was.
            var again = query
            again[Self.authAfter] = kit.cookies.seal(Self.mark(Date(), for: wanted))
            var login = "/login?reauth=1&return_to=" + PageKit.queryEscape("/oauth/authorize?" + Self.encode(again))
            if let hint = wanted.loginHint { login += "&email=" + PageKit.queryEscape(hint) }
            return kit.redirect(login)
        }
        if decision == false { return refuse(wanted, "access_denied", "the person did not allow it") }
        if decision == nil, try await openID.needsConsent(userID: who.user.id, wanted) {
            if wanted.prompt.contains("none") { return refuse(wanted, "consent_required", "the person has not consented") }
            var fields = query
            fields["prompt"] = wanted.prompt.subtracting(["consent"]).sorted().joined(separator: " ")
            if fields["prompt"]?.isEmpty == true { fields["prompt"] = nil }
            var response = kit.page(request, who, "consent", title: "Allow \(wanted.client.name)?", [
                "client_name": wanted.client.name, "redirect_host": URL(string: wanted.redirectURI)?.host ?? "",
                "scopes": wanted.scopes.map { ["text": Self.scopeWords[$0] ?? $0] },
                "fields": fields.sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] },
            ])
            Self.allowRedirect(&response, to: wanted.redirectURI)
            return response
        }
        if decision == true { try await openID.consent(userID: who.user.id, wanted) }
        // After consent: before it, prompt=none would tell a client members (consent_required)
        // from others (access_denied) without the person doing anything.
        guard try await openID.mayEnterOrganization(userID: who.user.id, wanted) else {
            return refuse(wanted, "access_denied", "the person is not a member of that organization")
        }
        let code = try await openID.issueCode(wanted, userID: who.user.id, authTime: authTime)
        return Self.back(wanted.redirectURI, ["code": code, "state": wanted.state, "iss": issuer])
    }

    /// The answer to a page's form may end at the client (consent, or signing in on the way):
    /// browsers hold a form's redirects to `form-action` too, so the client's registered
    /// redirect origin is allowed on that page, and only there.
    /// Where authorization requests are answered (the discovery document's `authorization_endpoint`).
    static let authorizePath = "/oauth/authorize"

    static func allowRedirect(_ response: inout Response, to redirectURI: String) {
        guard let origin = URL(string: redirectURI).flatMap(WebOrigin.of) else { return }
        let name = HTTPField.Name("Content-Security-Policy")!
        response.headers[name] = response.headers[name]?.replacingOccurrences(of: "form-action 'self'", with: "form-action 'self' \(origin)")
    }

    /// When signing in is a step of an authorization request (`return_to` is one, for a known
    /// client and registered redirect URI), that redirect URI.
    func redirectURI(after back: String?) async -> String? {
        guard let back, back.hasPrefix(Self.authorizePath + "?") else { return nil }
        return try? await openID.check(FormPost.parse(String(back.dropFirst(Self.authorizePath.count + 1))).fields).redirectURI
    }

    /// The marker's text: the time, bound to this very request (client, redirect URI, state and
    /// nonce), so a marker from another request proves nothing here.
    static func mark(_ time: Date, for wanted: AuthorizationRequest) -> String {
        "\(time.timeIntervalSince1970)|" + binding(wanted)
    }

    static func markedTime(_ text: String, for wanted: AuthorizationRequest) -> Double? {
        let parts = text.split(separator: "|", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[1] == binding(wanted) else { return nil }
        return Double(parts[0])
    }

    static func binding(_ wanted: AuthorizationRequest) -> String {
        String(Secrets.hash([wanted.client.id.lowercasedString, wanted.redirectURI, wanted.state ?? "", wanted.nonce ?? ""].joined(separator: "\n")).prefix(32))
    }

    func refuse(_ wanted: AuthorizationRequest, _ error: String, _ description: String) -> Response {
        Self.back(wanted.redirectURI, ["error": error, "error_description": description, "state": wanted.state, "iss": issuer])
    }

    /// To the client's registered redirect URI, with the answer in its query.
    static func back(_ uri: String, _ values: [String: String?]) -> Response {
        let query = Self.encode(values.compactMapValues { $0 })
        let location = query.isEmpty ? uri : uri + (uri.contains("?") ? "&" : "?") + query
        var response = Response(status: .seeOther, headers: [.location: location])
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
