import Foundation
import JWTKit
import Memberwise

/// An OpenID Connect ID token (Core §2): who signed in, for which client, when; the profile,
/// e-mail and org claims the granted scopes allow.
public struct IDTokenClaims: JWTPayload, Equatable {
    @PublicInit
    public struct OrgClaim: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        public var role: String
    }

    public var iss: IssuerClaim
    public var sub: SubjectClaim
    public var aud: AudienceClaim
    public var exp: ExpirationClaim
    public var iat: IssuedAtClaim
    public var authTime: Int
    public var nonce: String?
    public var azp: String?
    public var name: String?
    public var email: String?
    public var emailVerified: Bool?
    public var orgs: [OrgClaim]?
    /// The org a login was scoped to (`organization=` on the authorization request).
    public var orgID: String?

    enum CodingKeys: String, CodingKey {
        case iss, sub, aud, exp, iat, nonce, azp, name, email, orgs
        case authTime = "auth_time"
        case emailVerified = "email_verified"
        case orgID = "org_id"
    }

    /// The claims for `user` as `clientID` may see them under `scopes`.
    public init(
        issuer: String, user: User, clientID: String, scopes: [String], nonce: String?, authTime: Date, issuedAt: Date, lifetime: TimeInterval,
        orgs: [OrgClaim]?, orgID: String? = nil
    ) {
        let at = Date(timeIntervalSince1970: issuedAt.timeIntervalSince1970.rounded(.down))
        iss = IssuerClaim(value: issuer)
        sub = SubjectClaim(value: user.id.uuidString.lowercased())
        aud = AudienceClaim(value: [clientID])
        exp = ExpirationClaim(value: at.addingTimeInterval(lifetime))
        iat = IssuedAtClaim(value: at)
        self.authTime = Int(authTime.timeIntervalSince1970)
        self.nonce = nonce
        azp = clientID
        if scopes.contains("profile") { name = user.name }
        if scopes.contains("email") { (email, emailVerified) = (user.email, user.emailVerified) }
        if scopes.contains("orgs") { self.orgs = orgs ?? [] }
        self.orgID = orgID
    }

    /// Issued by this server and signed by it; nothing else to check here.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}
