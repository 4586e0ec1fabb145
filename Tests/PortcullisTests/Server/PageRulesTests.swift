import Foundation
import Identity
@testable import Server
import Testing

/// The small rules under the pages: the session cookie's MAC, `return_to`, form parsing.
@Suite("Pages: session cookie, return_to, forms")
struct PageRulesTests {
    @Test("a session cookie opens only under its own key, whole and unchanged")
    func sessionCookie() throws {
        let key = Data((0..<32).map { UInt8($0) })
        let cookie = SessionCookie(masterKey: key)
        let session = UUID(), user = UUID()
        let value = cookie.value(sessionID: session, userID: user)
        let opened = try #require(cookie.open(value))
        #expect(opened.sessionID == session && opened.userID == user)
        // Another instance's key, a changed id, a cut MAC, junk: all refused.
        #expect(SessionCookie(masterKey: Data(repeating: 7, count: 32)).open(value) == nil)
        let parts = value.split(separator: ".").map(String.init)
        let otherIDs = cookie.value(sessionID: UUID(), userID: user).split(separator: ".").map(String.init)[0]
        #expect(cookie.open(otherIDs + "." + parts[1]) == nil)
        #expect(cookie.open(parts[0] + "." + parts[1].dropLast(2)) == nil)
        #expect(cookie.open(parts[0]) == nil)
        #expect(cookie.open("") == nil)
        #expect(cookie.open(String(repeating: "a", count: 500)) == nil)
    }

    @Test("form tokens are bound to the session and the key; notices open only unchanged")
    func formTokensAndNotices() {
        let cookie = SessionCookie(masterKey: Data(repeating: 1, count: 32))
        let session = UUID()
        let token = cookie.formToken(sessionID: session)
        #expect(token.count == 43 && token == cookie.formToken(sessionID: session))
        #expect(token != cookie.formToken(sessionID: UUID()))
        #expect(token != SessionCookie(masterKey: Data(repeating: 2, count: 32)).formToken(sessionID: session))
        let sealed = cookie.seal("You joined Acme as editor.")
        #expect(cookie.unseal(sealed) == "You joined Acme as editor.")
        #expect(SessionCookie(masterKey: Data(repeating: 2, count: 32)).unseal(sealed) == nil)
        let parts = sealed.split(separator: ".").map(String.init)
        #expect(cookie.unseal(Secrets.base64url(Array("Call +1-555-0100".utf8)) + "." + parts[1]) == nil)
        #expect(cookie.unseal("Call us") == nil && cookie.unseal("") == nil)
    }

    @Test("return_to keeps only paths on this origin")
    func returnTo() {
        #expect(ReturnTo.sanitize("/account") == "/account")
        #expect(ReturnTo.sanitize("/invites/accept?token=abc") == "/invites/accept?token=abc")
        for bad in ["https://elsewhere.example/", "//elsewhere.example", "/\\elsewhere.example", "\\\\elsewhere", "javascript:alert(1)",
                    "account", "", "/a\nb", "/a\tb", String(repeating: "/a", count: 2100)] {
            #expect(ReturnTo.sanitize(bad) == nil, "\(bad)")
        }
        #expect(ReturnTo.sanitize(nil) == nil)
    }

    @Test("form posts: percent and plus decoding, first value wins, repeated names kept")
    func forms() {
        let form = FormPost.parse("name=Ada+Lovelace&org=a&org=b&empty=&flag&email=ada%40example.com&name=second")
        #expect(form["name"] == "Ada Lovelace")
        #expect(form.all("org") == ["a", "b"])
        #expect(form["empty"] == "" && form["flag"] == "")
        #expect(form["email"] == "ada@example.com")
        #expect(form.all("missing").isEmpty)
    }
}
