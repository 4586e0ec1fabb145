import Foundation
import HTTPTypes
import Hummingbird
import Authority
import Identity
import Policy
import Storage
import Tenancy

/// A person signed in through the pages: the user and the server-side session the cookie names.
struct SignedIn: Sendable {
    let user: User
    let sessionID: UUID

    /// The same caller an access token of this session would be: pages and API see one authority.
    var caller: Caller { Caller(credential: .session(sessionID), user: user) }
    var actor: Actor { caller.actor(serviceAccountRole: nil) }
}

/// A route handler (what `Router.get/post` take).
typealias PageHandler = @Sendable (Request, AppRequestContext) async throws -> Response

/// Renders a page for `who` (a signed-in person, an org visit) with extra values (an error, the
/// fields as typed, a new secret) and a status.
typealias PageRender<Who> = @Sendable (Request, Who, [String: Any], HTTPResponse.Status) async throws -> Response

/// What a page's form ends in.
enum FormOutcome {
    /// Back to the form's page, with a notice (post, redirect, get).
    case done(String)
    /// Elsewhere, with a notice.
    case goTo(String, notice: String)
    /// The page again with these values and status, without a redirect: for a secret shown once.
    case show([String: Any], HTTPResponse.Status)
}

/// What every page handler shares: rendering inside the frame (the header's navigation, the CSRF
/// token, the one-time notice), the form guard, and the browser session cookie (SPEC §13).
struct PageKit: Sendable {
    static let sessionCookieName = "portcullis_session"
    static let noticeCookieName = "portcullis_notice"

    let renderer: PageRenderer
    let guardian: FormGuard
    let cookies: SessionCookie
    let auth: AuthService
    let freshness: Freshness
    /// How long a browser session lasts: the session row's own lifetime (the refresh-token TTL).
    let sessionLifetime: Int

    // MARK: The browser session

    /// The signed-in person, when the cookie names a live session; nil otherwise (a revoked,
    /// expired or forged cookie is simply not signed in).
    func signedIn(_ request: Request) async throws -> SignedIn? {
        guard let value = request.cookies[Self.sessionCookieName]?.value, let ids = cookies.open(value) else { return nil }
        guard let user = try await auth.sessionUser(sessionID: ids.sessionID, userID: ids.userID, readThrough: freshness.isStale) else { return nil }
        return SignedIn(user: user, sessionID: ids.sessionID)
    }

    /// Sets the session cookie, and a new form token: one planted before the login (by a
    /// sibling subdomain, say) does not carry over into the session.
    func startSession(_ pair: TokenPair, on response: inout Response) {
        guardian.setCookie(Secrets.token(), on: &response)
        response.setCookie(Cookie(
            name: Self.sessionCookieName, value: cookies.value(sessionID: pair.sessionID, userID: pair.user.id),
            maxAge: sessionLifetime, path: "/", secure: guardian.secureCookies, httpOnly: true, sameSite: .lax))
    }

    func endSession(on response: inout Response) {
        response.setCookie(Cookie(name: Self.sessionCookieName, value: "", maxAge: 0, path: "/", secure: guardian.secureCookies, httpOnly: true, sameSite: .lax))
    }

    /// Runs a page for the signed-in; anyone else goes to the login page, and comes back here after.
    func signedInPage(_ request: Request, _ body: (SignedIn) async throws -> Response) async throws -> Response {
        guard let who = try await signedIn(request) else { return loginRedirect(request) }
        return try await body(who)
    }

    func loginRedirect(_ request: Request) -> Response {
        let back = request.method == .get ? request.uri.path + (request.uri.query.map { "?" + $0 } ?? "") : request.uri.path
        return redirect("/login?return_to=" + Self.queryEscape(back))
    }

    // MARK: Forms

    /// A state-changing form of a signed-in person: refused with 403 when forged (its token is
    /// not the session's: nothing done), sent to the login page when nobody is signed in.
    func action(_ request: Request, form given: FormPost? = nil, _ body: (SignedIn, FormPost) async throws -> Response) async throws -> Response {
        let form: FormPost
        if let given { form = given } else { form = try await FormPost.read(request) }
        guard let who = try await signedIn(request) else {
            return guardian.admits(request, form) ? loginRedirect(request) : forged
        }
        guard guardian.admits(request, form, sessionToken: cookies.formToken(sessionID: who.sessionID)) else { return forged }
        return try await body(who, form)
    }

    /// Ends a form: `body`'s outcome, or on failure the page again with the error in place and the
    /// fields as typed (and the status the API would answer).
    func finish<Who>(
        _ request: Request, _ context: AppRequestContext, _ who: Who, _ form: FormPost, back: String,
        redisplay: PageRender<Who>, _ body: () async throws -> FormOutcome
    ) async throws -> Response {
        let outcome: FormOutcome
        do {
            outcome = try await body()
        } catch {
            let (message, status) = Self.failure(error, context)
            do {
                return try await redisplay(request, who, ["error": message, "form": form.fields, "form_all": form.repeated], status)
            } catch {
                // The page itself is refused to this person (an editor posting an admin's form):
                // a page that says so, never a problem+json document in a browser.
                guard let problem = Problem.from(error) else { throw error }
                let title = problem.status == .forbidden ? "Not allowed" : problem.status == .notFound ? "Not found" : "That did not work"
                return renderer.message(title, [problem.sentence], status: problem.status)
            }
        }
        switch outcome {
        case .done(let notice): return redirect(back, notice: notice)
        case .goTo(let path, let notice): return redirect(path, notice: notice)
        case .show(let values, let status): return try await redisplay(request, who, values, status)
        }
    }

    /// A page for the signed-in person.
    func page(_ render: @escaping PageRender<SignedIn>) -> PageHandler {
        { request, _ in try await signedInPage(request) { who in try await showing(request, who) { try await render(request, who, [:], .ok) } } }
    }

    /// A page, or when reading it is refused (403, a bad query value) a page that says why,
    /// never a problem+json document in a browser.
    func showing(_ request: Request, _ who: SignedIn, link: (String, String)? = nil, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch {
            guard let problem = Problem.from(error) else { throw error }
            var values: [String: Any] = ["paragraphs": [problem.sentence]]
            if let link { (values["link_href"], values["link_text"]) = link }
            let title = problem.status == .forbidden ? "Not allowed" : problem.status == .notFound ? "Not found" : "That did not work"
            return page(request, who, "message", title: title, status: problem.status, values)
        }
    }

    /// A form of the signed-in person whose page is `back`.
    func act(
        back: String, redisplay: @escaping PageRender<SignedIn>,
        _ body: @escaping @Sendable (SignedIn, FormPost, AppRequestContext) async throws -> FormOutcome
    ) -> PageHandler {
        { request, context in
            try await action(request) { who, form in
                try await finish(request, context, who, form, back: back, redisplay: redisplay) { try await body(who, form, context) }
            }
        }
    }

    /// Reads a form post and refuses a forged one (nil: answer with `forged`).
    func post(_ request: Request) async throws -> FormPost? {
        let form = try await FormPost.read(request)
        if let who = try await signedIn(request), guardian.admits(request, form, sessionToken: cookies.formToken(sessionID: who.sessionID)) {
            return form
        }
        return guardian.admits(request, form) ? form : nil
    }

    var forged: Response {
        renderer.message("This form has expired", ["The page was open too long, or the request did not come from this site. Go back, reload the page and try again."], status: .forbidden)
    }

    /// What a failed action says in place: the problem's detail and status (bad input is never a
    /// 500 page; an unexpected error is logged and shown as one line).
    static func failure(_ error: any Error, _ context: AppRequestContext) -> (message: String, status: HTTPResponse.Status) {
        guard let problem = Problem.from(error) else {
            context.logger.error("page failed", metadata: ["error": "\(String(reflecting: error))"])
            return ("Something went wrong on our side; please try again.", .internalServerError)
        }
        return (problem.sentence, problem.status)
    }

    // MARK: Rendering

    /// A page inside the frame: the CSRF token (and its cookie when the browser has none), the
    /// signed-in person's navigation, and the notice a redirect left (shown once).
    func page(
        _ request: Request, _ who: SignedIn?, _ template: String, title: String, status: HTTPResponse.Status = .ok,
        _ values: [String: Any] = [:]
    ) -> Response {
        let (token, isNew) = guardian.token(for: request)
        var context = values
        context["csrf"] = who.map { cookies.formToken(sessionID: $0.sessionID) } ?? token
        if let who {
            context["signed_in"] = ["name": who.user.name.isEmpty ? who.user.email : who.user.name, "email": who.user.email, "is_root": who.user.isRoot] as [String: Any]
        }
        let sealed = request.cookies[Self.noticeCookieName]?.value
        if let notice = sealed.flatMap(cookies.unseal), !notice.isEmpty, context["notice"] == nil { context["notice"] = notice }
        var response = renderer.page(template, title: title, status: status, PageFormat.droppingNils(context))
        if isNew { guardian.setCookie(token, on: &response) }
        if sealed != nil { response.setCookie(Cookie(name: Self.noticeCookieName, value: "", maxAge: 0, path: "/", secure: guardian.secureCookies, httpOnly: true, sameSite: .lax)) }
        return response
    }

    /// `303 See Other` after a form (post, redirect, get), with a notice for the next page.
    func redirect(_ location: String, notice: String? = nil) -> Response {
        var response = Response(status: .seeOther, headers: [.location: location])
        PageRenderer.secure(&response.headers)
        if let notice {
            response.setCookie(Cookie(name: Self.noticeCookieName, value: cookies.seal(notice), maxAge: 60, path: "/", secure: guardian.secureCookies, httpOnly: true, sameSite: .lax))
        }
        return response
    }

    static func queryEscape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

extension Problem {
    /// The detail as a sentence, for a page.
    var sentence: String { detail.prefix(1).uppercased() + detail.dropFirst() + "." }
}

/// `?return_to=`: only a path on this origin (SPEC §13). Anything else (another origin, a
/// scheme, `//host`, a backslash that browsers read as a slash, control characters) is dropped.
enum ReturnTo {
    static func sanitize(_ raw: String?) -> String? {
        guard let raw, raw.utf8.count <= 4096, raw.hasPrefix("/"), !raw.hasPrefix("//"),
              !raw.contains("\\"), !raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return nil }
        return raw
    }
}

/// How pages write dates and optional values.
enum PageFormat {
    /// The context without absent values: Mustache would print an `Optional.none` inside `Any`
    /// as "nil" and treat it as true, where a missing key is false and prints nothing.
    static func droppingNils(_ values: [String: Any]) -> [String: Any] {
        values.compactMapValues(droppingNils)
    }

    static func droppingNils(_ value: Any) -> Any? {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return nil }
            return droppingNils(wrapped)
        }
        if let dictionary = value as? [String: Any] { return droppingNils(dictionary) }
        if let array = value as? [[String: Any]] { return array.map(droppingNils) as [[String: Any]] }
        return value
    }

    static func date(_ date: Date?) -> String {
        guard let date else { return "—" }
        let parts = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d UTC", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0, parts.hour ?? 0, parts.minute ?? 0)
    }

    /// What the person typed into a field of a form that failed (to fill it in again).
    static func typed(_ extra: [String: Any], _ field: String) -> String? {
        (extra["form"] as? [String: String])?[field]
    }

    /// The `<option>`s of a role picker: only `allowed`, with `selected` marked.
    static func roleOptions(_ allowed: [Role], selected: Role? = nil) -> [[String: Any]] {
        allowed.map { ["value": $0.rawValue, "selected": $0 == selected] }
    }

    /// Pagination links for a list page: previous/next with the other query values kept.
    /// Nil for an empty list (which shows its empty state instead).
    static func pager(path: String, page: Page, total: Int, query: [String: String] = [:]) -> [String: Any]? {
        guard total > 0 else { return nil }
        // Past the end (a stale link, a hand-made offset): a way back to the last page.
        if page.offset >= total { return ["past_end": true, "total": total, "previous": link((total - 1) / page.limit * page.limit)] }
        func link(_ offset: Int) -> String {
            var items = query.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map { "\($0.key)=\(PageKit.queryEscape($0.value))" }
            if offset > 0 { items.append("offset=\(offset)") }
            return items.isEmpty ? path : path + "?" + items.joined(separator: "&")
        }
        var pager: [String: Any] = [
            "from": page.offset + 1, "to": min(page.offset + page.limit, total), "total": total,
        ]
        if page.offset > 0 { pager["previous"] = link(max(0, page.offset - page.limit)) }
        if page.offset + page.limit < total { pager["next"] = link(page.offset + page.limit) }
        return pager
    }
}
