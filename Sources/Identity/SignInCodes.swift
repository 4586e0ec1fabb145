import Foundation
import Memberwise

/// A mailed sign-in code as stored (SPEC §15): the hash covers the code and its flow's token, so
/// the table alone does not give the six digits away, and a code works only with the flow (the
/// browser, or the API client) that asked for it.
@PublicInit
public struct SignInCode: Sendable, Equatable {
    public var flowHash: String
    public var email: String
    public var codeHash: String
    public var createdAt: Date
    public var expiresAt: Date
}

/// What asking for a code hands back: the flow's token (the second half of the proof) and how
/// long the code lives.
public struct SignInCodeFlow: Sendable {
    public var flow: String
    public var expiresIn: Int
}

extension AuthService {
    public static let codeLifetime: TimeInterval = 600
    /// Wrong answers a code takes before it is dead.
    public static let codeTries = 5
    /// Wrong answers an address takes in a day, over all its codes: new codes do not buy new
    /// guesses without end (the mail budget alone would allow about 120 a day).
    public static let codeMissesPerDay = 10

    /// Starts an e-mail code sign-in. The request path does the same for every address (a row
    /// for the flow, an in-memory job); whether a mail goes out is decided after the answer, by
    /// `perform`, and only a verified account's address gets one.
    public func requestSignInCode(email raw: String) async throws -> SignInCodeFlow {
        guard let email = Email.canonical(raw) else { throw IdentityError.invalidEmail }
        let flow = Secrets.token()
        let code = Self.sixDigits()
        let at = now()
        try await users.saveSignInCode(SignInCode(
            flowHash: Secrets.hash(flow), email: email, codeHash: Self.codeHash(flow: flow, code: code),
            createdAt: at, expiresAt: at.addingTimeInterval(Self.codeLifetime)))
        accountMail.enqueue(.signInCode(email: email, code: code))
        return SignInCodeFlow(flow: flow, expiresIn: Int(Self.codeLifetime))
    }

    /// Signs in with a mailed code and the flow that asked for it. Every failure is the same
    /// `invalidCode`; a wrong code spends one of the code's tries.
    public func signIn(email raw: String, code: String, flow: String, client: ClientInfo) async throws -> TokenPair {
        guard let email = Email.canonical(raw), code.count == 6, code.allSatisfy({ $0.isASCII && $0.isNumber }),
              flow.utf8.count >= 43, flow.utf8.count <= 128 else { throw IdentityError.invalidCode }
        guard let userID = try await users.spendSignInCode(
            flowHash: Secrets.hash(flow), email: email, codeHash: Self.codeHash(flow: flow, code: code), maxTries: Self.codeTries,
            maxMissesPerDay: Self.codeMissesPerDay, now: now())
        else { throw IdentityError.invalidCode }
        return try await openSession(userID: userID, client: client)
    }

    static func codeHash(flow: String, code: String) -> String { Secrets.hash("sign-in code:" + flow + ":" + code) }

    /// Uniform over 000000...999999.
    static func sixDigits() -> String {
        var generator = SystemRandomNumberGenerator()
        let n = Int.random(in: 0..<1_000_000, using: &generator)
        let digits = String(n)
        return String(repeating: "0", count: 6 - digits.count) + digits
    }

    func signInCodeMail(email: String, code: String) -> @Sendable (User) -> OutgoingMail {
        { user in
            OutgoingMail(to: user.email, template: MailTemplate.signInCode, variables: ["name": user.name, "email": user.email, "code": code])
        }
    }
}
