import Crypto
import Federation
import Foundation
import Identity
import JWTKit
import Synchronization

/// An OpenID provider in process, reached through the `UpstreamHTTP` seam instead of a socket:
/// it serves discovery and keys, remembers what `authorize` was asked (nonce, PKCE challenge),
/// and signs real ID tokens. The black-box tests use real providers over HTTP; this one lets the
/// account rules run against both databases quickly. `tamper` makes it misbehave.
final class UpstreamPeer: UpstreamHTTP, Sendable {
    enum Tamper: Sendable { case none, otherAudience, otherKey, otherNonce, expired, otherIssuer }

    struct Person: Sendable {
        var subject: String
        var email: String
        var verified: Bool
        var name = "Upstream Person"
    }

    struct Pending: Sendable {
        var nonce: String
        var challenge: String
        var person: Person
    }

    let issuer = "https://op.example.test"
    let clientID = "portcullis-at-op"
    let clientSecret = "op-client-secret"
    let key = ES256PrivateKey()
    let strangerKey = ES256PrivateKey()
    private let codes = Mutex<[String: Pending]>([:])
    let person: Mutex<Person>
    let tamper = Mutex<Tamper>(.none)
    let tokenRequests = Atomic<Int>(0)

    init(_ person: Person) { self.person = Mutex(person) }

    var jwks: Data {
        let (x, y) = key.publicKey.parameters!
        let set = JWKS(keys: [JWK.ecdsa(.es256, identifier: "op-key", x: x, y: y, curve: .p256)])
        return try! JSONEncoder().encode(set)
    }

    func get(_ url: String, headers: [(String, String)]) async throws -> UpstreamResponse {
        switch url {
        case issuer + "/.well-known/openid-configuration":
            let document: [String: Any] = [
                "issuer": issuer, "authorization_endpoint": issuer + "/authorize", "token_endpoint": issuer + "/token",
                "jwks_uri": issuer + "/jwks", "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            ]
            return UpstreamResponse(status: 200, body: try JSONSerialization.data(withJSONObject: document))
        case issuer + "/jwks": return UpstreamResponse(status: 200, body: jwks)
        default: return UpstreamResponse(status: 404, body: Data())
        }
    }

    /// What a browser does at the provider: the person signs in, and is sent back with a code.
    /// Returns the callback's `code` and `state`.
    func authorize(_ location: String) throws -> (code: String, state: String) {
        let query = Dictionary(uniqueKeysWithValues: (URLComponents(string: location)?.queryItems ?? []).map { ($0.name, $0.value ?? "") })
        guard location.hasPrefix(issuer + "/authorize?"), query["client_id"] == clientID, query["code_challenge_method"] == "S256",
              let state = query["state"], let nonce = query["nonce"], let challenge = query["code_challenge"] else {
            throw UpstreamPeerError.badAuthorizeRequest(location)
        }
        let code = Secrets.token()
        codes.withLock { $0[code] = Pending(nonce: nonce, challenge: challenge, person: person.withLock { $0 }) }
        return (code, state)
    }

    func postForm(_ url: String, fields: [(String, String)], headers: [(String, String)]) async throws -> UpstreamResponse {
        tokenRequests.add(1, ordering: .relaxed)
        let form = Dictionary(fields, uniquingKeysWith: { a, _ in a })
        let basic = "Basic " + Data("\(clientID):\(clientSecret)".utf8).base64EncodedString()
        guard url == issuer + "/token", headers.contains(where: { $0.0 == "Authorization" && $0.1 == basic }),
              let code = form["code"], let pending = codes.withLock({ $0.removeValue(forKey: code) }),
              let verifier = form["code_verifier"], Secrets.base64url(SHA256.hash(data: Data(verifier.utf8))) == pending.challenge else {
            return UpstreamResponse(status: 400, body: Data(#"{"error":"invalid_grant"}"#.utf8))
        }
        let tamper = tamper.withLock { $0 }
        let now = Date()
        let claims = Claims(
            iss: IssuerClaim(value: tamper == .otherIssuer ? "https://elsewhere.test" : issuer), sub: SubjectClaim(value: pending.person.subject),
            aud: AudienceClaim(value: [tamper == .otherAudience ? "someone-else" : clientID]),
            exp: ExpirationClaim(value: tamper == .expired ? now.addingTimeInterval(-600) : now.addingTimeInterval(300)),
            iat: IssuedAtClaim(value: now), nonce: tamper == .otherNonce ? "a-replayed-nonce" : pending.nonce,
            email: pending.person.email, email_verified: pending.person.verified, name: pending.person.name)
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: tamper == .otherKey ? strangerKey : key, kid: "op-key")
        let token = try await keys.sign(claims, kid: "op-key")
        return UpstreamResponse(status: 200, body: try JSONSerialization.data(withJSONObject: ["access_token": "at", "token_type": "Bearer", "id_token": token]))
    }

    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var aud: AudienceClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        var nonce: String
        var email: String
        var email_verified: Bool
        var name: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }
}

enum UpstreamPeerError: Error { case badAuthorizeRequest(String) }
