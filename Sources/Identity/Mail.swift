import Foundation
import Memberwise

/// A mail to send, as written to the outbox: a template name and its variables. Rendering and
/// delivery happen later, in the sender, so the cause and its mail commit together.
@PublicInit
public struct OutgoingMail: Sendable, Equatable {
    public var to: String
    public var template: String
    public var variables: [String: String]
}

/// The mail templates (SPEC §6).
public enum MailTemplate {
    public static let invite = "invite"
    public static let platformInvite = "platform_invite"
    public static let passwordReset = "password_reset"
    public static let verifyEmail = "verify_email"
    public static let signInCode = "sign_in_code"
    public static let all = [invite, platformInvite, passwordReset, verifyEmail, signInCode]
}

/// A single-use token about to be stored (as its hash) with the mail that carries it.
@PublicInit
public struct PendingToken: Sendable {
    public var hash: String
    public var expiresAt: Date
    public var mail: OutgoingMail
}

/// Links in mails (SPEC §6), under the public URL.
public struct MailLinks: Sendable {
    public var publicURL: String

    public init(publicURL: String) { self.publicURL = publicURL }

    func link(_ path: String, _ name: String, _ token: String) -> String {
        "\(publicURL)\(path)?\(name)=\(token)"
    }
    public func acceptInvite(_ token: String) -> String { link("/invites/accept", "token", token) }
    public func signup(_ token: String) -> String { link("/signup", "invite_token", token) }
    public func resetPassword(_ token: String) -> String { link("/reset-password", "token", token) }
    public func verifyEmail(_ token: String) -> String { link("/verify-email", "token", token) }
}
