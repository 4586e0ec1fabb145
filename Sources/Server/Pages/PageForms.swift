import Foundation
import HTTPTypes
import Hummingbird
import Identity

/// An HTML form post (`application/x-www-form-urlencoded`), read up to the API's body limit.
struct FormPost: Sendable {
    /// The first value of each name.
    let fields: [String: String]
    /// Every value of each name, in order (checkbox groups).
    var repeated: [String: [String]] = [:]

    subscript(_ name: String) -> String? { fields[name] }

    func all(_ name: String) -> [String] { repeated[name] ?? [] }

    static func read(_ request: Request) async throws -> FormPost {
        let type = request.headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else {
            throw Problem(.unsupportedMediaType, detail: "a form post is application/x-www-form-urlencoded")
        }
        let buffer = try await JSONBody.collect(request, limit: JSONBody.defaultLimit)
        return parse(String(buffer: buffer))
    }

    /// `a=1&b=x+y`, names and values percent-decoded; `fields` keeps the first of a repeated name.
    static func parse(_ text: String) -> FormPost {
        var fields: [String: String] = [:], repeated: [String: [String]] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            let name = decode(parts[0]), value = parts.count > 1 ? decode(parts[1]) : ""
            if fields[name] == nil { fields[name] = value }
            repeated[name, default: []].append(value)
        }
        return FormPost(fields: fields, repeated: repeated)
    }
}

/// Cross-site request forgery defence for the pages' forms. Signed in, a form carries a token
/// bound to the session (`SessionCookie.formToken`); signed out (login, signup, reset), a random
/// cookie that the form repeats (double submit). Either way, when the browser names one, the
/// Origin must be this server's own (`PORTCULLIS_PUBLIC_URL`), and the browser must not call the
/// request cross-site.
struct FormGuard: Sendable {
    static let cookieName = "portcullis_csrf"
    let origin: String
    let secureCookies: Bool

    init(publicURL: String) {
        // PORTCULLIS_PUBLIC_URL is checked to be an http(s) URL at start-up.
        let url = URL(string: publicURL)
        origin = url.flatMap(WebOrigin.of) ?? publicURL.lowercased()
        secureCookies = url?.scheme?.lowercased() == "https"
    }

    /// The token a signed-out page's form carries: the browser's cookie, or a new one to set.
    func token(for request: Request) -> (value: String, isNew: Bool) {
        if let existing = request.cookies[Self.cookieName]?.value, existing.count == 43 { return (existing, false) }
        return (Secrets.token(), true)
    }

    func setCookie(_ token: String, on response: inout Response) {
        response.setCookie(Cookie(name: Self.cookieName, value: token, path: "/", secure: secureCookies, httpOnly: true, sameSite: .lax))
    }

    /// Whether the request comes from this site's pages: its Origin (when the browser names one)
    /// is ours, and the browser does not call it cross-site. Pages send
    /// `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` even for a
    /// same-origin form; `null` proves nothing either way, so `Sec-Fetch-Site` and the token decide.
    func sameSite(_ request: Request) -> Bool {
        if let sent = request.headers[.origin]?.lowercased(), sent != "null", sent != origin { return false }
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!]?.lowercased(), site != "same-origin", site != "none" { return false }
        return true
    }

    /// A signed-out form: same site, and its token equals the (43-character) cookie.
    func admits(_ request: Request, _ form: FormPost) -> Bool {
        guard sameSite(request), let cookie = request.cookies[Self.cookieName]?.value, cookie.count == 43, let field = form["csrf"] else { return false }
        return Secrets.constantTimeEquals(Secrets.hash(cookie), Secrets.hash(field))
    }

    /// A signed-in form: same site, and its token is the session's.
    func admits(_ request: Request, _ form: FormPost, sessionToken: String) -> Bool {
        guard sameSite(request), let field = form["csrf"] else { return false }
        return Secrets.constantTimeEquals(Secrets.hash(sessionToken), Secrets.hash(field))
    }
}
