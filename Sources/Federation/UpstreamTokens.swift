import Foundation
import Identity
import JWTKit

/// The claims Portcullis reads from an upstream's ID token.
public struct UpstreamClaims: Sendable, Equatable {
    public var subject: String
    public var email: String?
    public var emailVerified: Bool
    public var name: String?
}

/// Checks an upstream's ID token (OpenID Connect Core §3.1.3.7): the signature against the
/// issuer's published keys with an asymmetric algorithm only, then the issuer, the audience (and
/// `azp` when several), the expiry, and the nonce this flow sent.
public enum IDTokenCheck {
    /// `none` and the HMAC family are refused: an HMAC "signed" with a published key proves nothing.
    static let algorithms: Set<String> = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
    static let leeway: TimeInterval = 60

    public static func validate(
        _ token: String, jwks: Data, issuer: String, clientID: String, nonce: String, now: Date
    ) async throws(FederationError) -> UpstreamClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= 16_384, parts.count == 3,
              let headerData = Secrets.base64urlDecode(String(parts[0])),
              let header = try? JSONDecoder().decode(Header.self, from: headerData) else {
            throw .upstream("the provider's ID token is not a signed JWT")
        }
        guard algorithms.contains(header.alg) else {
            throw .upstream("the provider's ID token uses the algorithm \(header.alg.prefix(20)), which is not accepted")
        }
        let payload: Payload
        do {
            let set = try JSONDecoder().decode(JWKS.self, from: jwks)
            let keys = JWTKeyCollection()
            var added = 0
            for jwk in set.keys where jwk.keyIdentifier != nil {
                // A key of a kind JWTKit does not read is skipped, not fatal: the one used may be another.
                if (try? await keys.add(jwk: jwk, isDefault: set.keys.count == 1)) != nil { added += 1 }
            }
            guard added > 0 else { throw FederationError.upstream("the provider publishes no usable signing key") }
            payload = try await keys.verify(token, as: Payload.self)
        } catch let error as FederationError {
            throw error
        } catch {
            throw .upstream("the provider's ID token signature does not verify against its published keys")
        }
        guard payload.iss == issuer else { throw .upstream("the ID token was issued by \(payload.iss.prefix(200)), not \(issuer)") }
        guard payload.aud.contains(clientID) else { throw .upstream("the ID token is for another client") }
        // `azp` must name this client when there are several audiences, and whenever it is present.
        if payload.aud.count > 1 || payload.azp != nil, payload.azp != clientID { throw .upstream("the ID token is for another client") }
        guard payload.exp.addingTimeInterval(leeway) > now else { throw .upstream("the ID token has expired") }
        if let iat = payload.iat, iat > now.addingTimeInterval(leeway) { throw .upstream("the ID token was issued in the future") }
        guard let sent = payload.nonce, Secrets.constantTimeEquals(sent, nonce) else { throw .upstream("the ID token does not carry this sign-in's nonce") }
        guard !payload.sub.isEmpty, payload.sub.utf8.count <= 255 else { throw .upstream("the ID token has no usable subject") }
        return UpstreamClaims(subject: payload.sub, email: payload.email, emailVerified: payload.emailVerified ?? false, name: payload.name)
    }

    struct Header: Decodable {
        var alg: String
    }

    struct Payload: JWTPayload {
        var iss: String
        var sub: String
        var aud: [String]
        var azp: String?
        var exp: Date
        var iat: Date?
        var nonce: String?
        var email: String?
        var emailVerified: Bool?
        var name: String?

        enum CodingKeys: String, CodingKey {
            case iss, sub, aud, azp, exp, iat, nonce, email, name
            case emailVerified = "email_verified"
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            iss = try c.decode(String.self, forKey: .iss)
            sub = try c.decode(String.self, forKey: .sub)
            if let one = try? c.decode(String.self, forKey: .aud) { aud = [one] } else { aud = try c.decode([String].self, forKey: .aud) }
            azp = try c.decodeIfPresent(String.self, forKey: .azp)
            exp = Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .exp))
            iat = try c.decodeIfPresent(Double.self, forKey: .iat).map(Date.init(timeIntervalSince1970:))
            nonce = try c.decodeIfPresent(String.self, forKey: .nonce)
            email = try c.decodeIfPresent(String.self, forKey: .email)
            // Some providers send "true" as a string.
            if let flag = try? c.decodeIfPresent(Bool.self, forKey: .emailVerified) {
                emailVerified = flag
            } else {
                emailVerified = (try? c.decodeIfPresent(String.self, forKey: .emailVerified)) == "true"
            }
            name = try c.decodeIfPresent(String.self, forKey: .name)
        }

        func encode(to encoder: any Encoder) throws {}

        /// The claims are checked by `validate`, which knows this flow's issuer, client and nonce.
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }
}
