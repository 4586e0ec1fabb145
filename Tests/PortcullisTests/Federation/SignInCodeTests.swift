import Crypto
import Federation
import Foundation
import Identity
import JWTKit
import Server
import Storage
import Testing

/// E-mail sign-in codes (SPEC §15) on both backends, and the ID-token algorithms refused outright.
@Suite struct SignInCodeTests {
    let client = ClientInfo(userAgent: "code-tests", ip: "127.0.0.1")

    /// The six digits in the newest sign-in code mail to `email`, or nil when none was queued.
    func mailedCode(_ services: AppServices, to email: String) async throws -> String? {
        try await services.auth.drainAccountMail()
        let rows = try await services.database.query(
            "SELECT variables FROM outbox WHERE recipient = $1 AND template = 'sign_in_code' ORDER BY created_at DESC", email)
        guard let text = try rows.first?.string("variables") else { return nil }
        return (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String])?["code"]
    }

    func verified(_ services: AppServices, _ email: String) async throws -> User {
        try await services.auth.signup(.init(email: email, password: "a-long-password-1", emailVerified: true), trusted: true).0
    }

    func wrong(_ code: String) -> String { String(format: "%06d", (Int(code)! + 1) % 1_000_000) }

    @Test(arguments: Backend.allCases)
    func aCodeSignsInOnceWithItsFlow(_ backend: Backend) async throws {
        try await withServices(backend) { services in
            let ada = try await verified(services, "ada@example.com")
            let flow = try await services.auth.requestSignInCode(email: "ADA@example.com")
            #expect(flow.expiresIn == 600)
            let code = try #require(try await mailedCode(services, to: "ada@example.com"))
            #expect(code.count == 6 && code.allSatisfy(\.isNumber))
            // Another flow (another browser) cannot use it.
            let other = try await services.auth.requestSignInCode(email: "ada@example.com")
            await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "ada@example.com", code: code, flow: other.flow, client: client) }
            // Nor another address.
            await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "bob@example.com", code: code, flow: flow.flow, client: client) }
            let pair = try await services.auth.signIn(email: "Ada@Example.com", code: code, flow: flow.flow, client: client)
            #expect(pair.user.id == ada.id)
            // The session is a session: refresh works, logout ends it.
            _ = try await services.auth.refresh(pair.refreshToken)
            // Spent: the same code and flow again is refused.
            await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "ada@example.com", code: code, flow: flow.flow, client: client) }
            // Nothing stored gives the code away.
            let stored = try await services.database.query("SELECT code_hash, flow_hash FROM sign_in_codes")
            for row in stored {
                #expect(try !row.string("code_hash").contains(code))
                #expect(try row.string("flow_hash") != flow.flow)
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func fiveWrongTriesKillTheCode(_ backend: Backend) async throws {
        try await withServices(backend) { services in
            _ = try await verified(services, "ada@example.com")
            let flow = try await services.auth.requestSignInCode(email: "ada@example.com")
            let code = try #require(try await mailedCode(services, to: "ada@example.com"))
            for _ in 0..<AuthService.codeTries {
                await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "ada@example.com", code: wrong(code), flow: flow.flow, client: client) }
            }
            await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "ada@example.com", code: code, flow: flow.flow, client: client) }
            // Four wrong tries leave the fifth chance.
            let second = try await services.auth.requestSignInCode(email: "ada@example.com")
            let code2 = try #require(try await mailedCode(services, to: "ada@example.com"))
            for _ in 0..<(AuthService.codeTries - 1) {
                await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "ada@example.com", code: wrong(code2), flow: second.flow, client: client) }
            }
            _ = try await services.auth.signIn(email: "ada@example.com", code: code2, flow: second.flow, client: client)
        }
    }

    @Test(arguments: Backend.allCases)
    func unknownAndUnprovenAddressesGetTheSameAnswerAndNoMail(_ backend: Backend) async throws {
        let clock = TestClock()
        try await withServices(backend, clock: clock) { services in
            _ = try await services.auth.signup(.init(email: "squatted@example.com", password: "a-long-password-1"), trusted: true)
            let before = try await services.database.queryFirst("SELECT COUNT(*) AS n FROM outbox")?.int("n")
            // The request path answers alike and writes alike: one flow row each, no mail yet.
            for email in ["nobody@example.com", "squatted@example.com"] {
                let flow = try await services.auth.requestSignInCode(email: email)
                #expect(flow.flow.count == 43 && flow.expiresIn == 600)
            }
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM sign_in_codes")?.int("n") == 2)
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM outbox")?.int("n") == before)
            // After the answer, neither gets a mail: nobody has no account, squatted is unproven.
            #expect(try await mailedCode(services, to: "nobody@example.com") == nil)
            #expect(try await mailedCode(services, to: "squatted@example.com") == nil)
            await #expect(throws: IdentityError.invalidEmail) { _ = try await services.auth.requestSignInCode(email: "not an address") }
            // Ten minutes on, a code is dead.
            _ = try await verified(services, "ada@example.com")
            let flow = try await services.auth.requestSignInCode(email: "ada@example.com")
            let code = try #require(try await mailedCode(services, to: "ada@example.com"))
            clock.advance(by: AuthService.codeLifetime + 1)
            await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "ada@example.com", code: code, flow: flow.flow, client: client) }
        }
    }

    /// New codes do not buy new guesses without end: after `codeMissesPerDay` misses over an
    /// address's codes of the day, even the right code of a fresh flow is refused.
    @Test(arguments: Backend.allCases)
    func anAddressTakesTenMissesADay(_ backend: Backend) async throws {
        try await withServices(backend) { services in
            _ = try await verified(services, "ada@example.com")
            for _ in 0..<(AuthService.codeMissesPerDay / AuthService.codeTries) {
                let flow = try await services.auth.requestSignInCode(email: "ada@example.com")
                let code = try #require(try await mailedCode(services, to: "ada@example.com"))
                for _ in 0..<AuthService.codeTries {
                    await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "ada@example.com", code: wrong(code), flow: flow.flow, client: client) }
                }
            }
            let flow = try await services.auth.requestSignInCode(email: "ada@example.com")
            let code = try #require(try await mailedCode(services, to: "ada@example.com"))
            await #expect(throws: IdentityError.invalidCode) { _ = try await services.auth.signIn(email: "ada@example.com", code: code, flow: flow.flow, client: client) }
            // Another address is not affected.
            _ = try await verified(services, "bob@example.com")
            let other = try await services.auth.requestSignInCode(email: "bob@example.com")
            let bobs = try #require(try await mailedCode(services, to: "bob@example.com"))
            _ = try await services.auth.signIn(email: "bob@example.com", code: bobs, flow: other.flow, client: client)
        }
    }

    /// `none` and HMAC are refused before any key is looked at; a token signed with an HMAC whose
    /// key is the provider's published key would otherwise be a forgery anyone can make.
    @Test func algorithmsThatProveNothingAreRefused() async throws {
        let key = ES256PrivateKey()
        let (x, y) = key.publicKey.parameters!
        let jwks = try JSONEncoder().encode(JWKS(keys: [JWK.ecdsa(.es256, identifier: "k", x: x, y: y, curve: .p256)]))
        let now = Date()
        let claims: [String: Any] = ["iss": "https://op.test", "sub": "s", "aud": "client", "exp": now.timeIntervalSince1970 + 300, "nonce": "n", "email": "a@example.com", "email_verified": true]
        let body = Secrets.base64url(try JSONSerialization.data(withJSONObject: claims))
        func header(_ alg: String) -> String { Secrets.base64url(Data(#"{"alg":"\#(alg)","kid":"k","typ":"JWT"}"#.utf8)) }
        let none = header("none") + "." + body + "."
        let signingInput = header("HS256") + "." + body
        let mac = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: SymmetricKey(data: jwks))
        let hmac = signingInput + "." + Secrets.base64url(Array(mac))
        for token in [none, hmac, "not.a.jwt", ""] {
            await #expect(throws: FederationError.self) {
                _ = try await IDTokenCheck.validate(token, jwks: jwks, issuer: "https://op.test", clientID: "client", nonce: "n", now: now)
            }
        }
        // The same claims properly signed pass, so the refusals above are about the algorithm.
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: "k")
        let good = try await keys.sign(Signed(iss: "https://op.test", sub: "s", aud: "client", exp: now.timeIntervalSince1970 + 300, nonce: "n"), kid: "k")
        let claimsOut = try await IDTokenCheck.validate(good, jwks: jwks, issuer: "https://op.test", clientID: "client", nonce: "n", now: now)
        #expect(claimsOut.subject == "s")
        await #expect(throws: FederationError.self) {
            _ = try await IDTokenCheck.validate(good, jwks: jwks, issuer: "https://op.test", clientID: "client", nonce: "other", now: now)
        }
    }

    struct Signed: JWTPayload {
        var iss: String
        var sub: String
        var aud: String
        var exp: Double
        var nonce: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }
}
