import Authority
import Foundation
import Identity

extension InviteService {
    /// Signs up with an invite's token (SPEC §6): the token proves the address, so the account
    /// starts verified (no verification mail), and every dormant invite for the address wakes,
    /// in the same transaction. Works in either signup mode.
    public func signup(_ request: AuthService.SignupRequest, token: String, hasher: any PasswordHasher) async throws -> (User, Int64) {
        let (email, name) = try AuthService.validate(request)
        guard !token.isEmpty, token.utf8.count <= 256 else { throw InviteError.invalidToken("invite_token is not valid") }
        let hash = try await hasher.hash(request.password)
        let at = now()
        let user = User(id: UUID(), email: email, name: name, emailVerified: true, isRoot: false, createdAt: at, updatedAt: at)
        guard let revision = try await store.signup(
            UserCredentials(user: user, passwordHash: hash), inviteTokenHash: Secrets.hash(token), now: at, inviteLifetime: Self.lifetime)
        else {
            throw InviteError.invalidToken("invite_token is not valid for this e-mail address (or is used or expired)")
        }
        return (user, revision)
    }
}
