import Authority
import Crypto
import CryptoExtras
import Foundation
import JWTKit
import Synchronization

/// Claims of an access token (RFC 9068 profile).
public struct AccessClaims: JWTPayload, Equatable {
    public var iss: IssuerClaim
    public var sub: SubjectClaim
    public var aud: AudienceClaim
    public var exp: ExpirationClaim
    public var iat: IssuedAtClaim
    public var nbf: NotBeforeClaim
    public var jti: IDClaim
    /// The session the token belongs to; absent on a service account's client_credentials token.
    public var sid: String?
    public var clientID: String
    /// The OpenID scopes granted, for a token issued to an OpenID client.
    public var scope: String?
    /// Set on a client_credentials token: `sub` is then a service account of this org.
    public var orgID: String?
    /// On a client_credentials token: which of the client's secrets got it (a new secret voids it).
    public var secretGeneration: Int64?

    enum CodingKeys: String, CodingKey {
        case iss, sub, aud, exp, iat, nbf, jti, sid, scope
        case clientID = "client_id"
        case orgID = "org_id"
        case secretGeneration = "secret_generation"
    }

    /// Issuer, audience and time checks need configuration, so `TokenService.verify` makes them
    /// right after the signature check; nothing else may call JWTKit's verify for these tokens.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// What a verified access token says.
public struct VerifiedAccessToken: Sendable, Equatable {
    public var userID: UUID
    public var sessionID: UUID
    public var expiresAt: Date
    public var tokenID: String
    /// `portcullis` for the API's own logins, else the OpenID client's id.
    public var clientID: String = TokenService.ownClientID
    public var scope: String?
}

/// What a verified client_credentials token says: an OpenID client acting as a service account.
public struct VerifiedServiceAccountToken: Sendable, Equatable {
    public var accountID: UUID
    public var orgID: UUID
    public var clientID: String
    /// Which of the client's secrets got the token.
    public var secretGeneration: Int64
    public var expiresAt: Date
}

/// A verified bearer access token: a person's session, or a service account through its client.
public enum VerifiedBearer: Sendable, Equatable {
    case session(VerifiedAccessToken)
    case serviceAccount(VerifiedServiceAccountToken)
}

/// The algorithms this server signs with: ES256 for its access tokens and any ID token a client
/// asks to have so; RS256 for ID tokens by default (OpenID Connect requires it).
public enum SigningAlgorithm: String, Sendable, CaseIterable {
    case es256 = "ES256"
    case rs256 = "RS256"
}
