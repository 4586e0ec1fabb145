import Authority
import Crypto
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
    public var sid: String
    public var clientID: String
    /// The OpenID scopes granted, for a token issued to an OpenID client.
    public var scope: String?

    enum CodingKeys: String, CodingKey {
        case iss, sub, aud, exp, iat, nbf, jti, sid, scope
        case clientID = "client_id"
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
    public var clientID: String = "portcullis"
    public var scope: String?
}

public struct TokenSettings: Sendable {
    public var issuer: String
    public var audience: String
    public var accessTokenTTL: Duration
    public var refreshTokenTTL: Duration
    /// Clock skew tolerated on `exp` and `nbf`.
    public var leeway: Duration

    public init(issuer: String, audience: String, accessTokenTTL: Duration = .seconds(900), refreshTokenTTL: Duration = .seconds(30 * 86_400), leeway: Duration = .seconds(30)) {
        self.issuer = issuer
        self.audience = audience
        self.accessTokenTTL = accessTokenTTL
        self.refreshTokenTTL = refreshTokenTTL
        self.leeway = leeway
    }
}

/// Signs and verifies access tokens with ES256 keys kept in the database.
///
/// Only keys we published verify: an unknown `kid` fails (there is no default key), `alg` must
/// be ES256, and `typ` must be `at+jwt`. A `kid` seen for the first time makes one reload from
/// the database (another node may have rotated), at most once a second.
public final class TokenService: Sendable {
    public let settings: TokenSettings
    private let store: any SigningKeyStore
    private let sealer: KeySealer
    private let state = Mutex(KeyState())

    struct KeyState: Sendable {
        var collection = JWTKeyCollection()
        var activeKid: String?
        var published: [SigningKeyRecord] = []
        var loadedAt = Date.distantPast
    }

    public init(settings: TokenSettings, store: any SigningKeyStore, sealer: KeySealer) {
        self.settings = settings
        self.store = store
        self.sealer = sealer
    }

    /// Makes sure an active key exists (creating the first one) and loads the keys.
    public func start(now: Date = Date()) async throws {
        _ = try await store.activateFirstKey(try makeKey(now: now))
        try await reload(now: now)
    }

    /// Makes a new active key; the previous ones stay published until every token they signed expired.
    @discardableResult
    public func rotate(now: Date = Date(), by actor: Principal? = nil) async throws -> (key: SigningKeyRecord, revision: Revision) {
        let key = try makeKey(now: now)
        let revision = try await store.rotateKey(to: key, retiredPublishUntil: retiredPublishUntil(now), actor: actor)
        try await reload(now: now)
        return (key, revision)
    }

    /// Automatic rotation: a new key when the active one is older than `age`. Nil when it is not.
    public func rotateIfOlder(than age: Duration, now: Date = Date()) async throws -> Revision? {
        let key = try makeKey(now: now)
        let revision = try await store.rotateKey(
            ifActiveOlderThan: now.addingTimeInterval(-age.seconds), to: key, retiredPublishUntil: retiredPublishUntil(now))
        if revision != nil { try await reload(now: now) }
        return revision
    }

    /// A retired key stays published until every token it signed has expired.
    func retiredPublishUntil(_ now: Date) -> Date {
        now.addingTimeInterval((settings.accessTokenTTL + settings.leeway).seconds)
    }

    /// Reads the keys from the database and rebuilds the key collection.
    public func reload(now: Date = Date()) async throws {
        let records = try await store.signingKeys()
        let published = records.filter { $0.publishUntil.map { $0 > now } ?? true }
        let collection = JWTKeyCollection()
        var active: SigningKeyRecord?
        for record in published {
            let raw = try sealer.open(record.sealedPrivateKey)
            let key = try ES256PrivateKey(backing: try P256.Signing.PrivateKey(rawRepresentation: raw))
            await collection.add(ecdsa: key, kid: JWKIdentifier(string: record.kid))
            if record.retiredAt == nil, active.map({ record.createdAt > $0.createdAt }) ?? true {
                active = record
            }
        }
        let activeKid = active?.kid
        state.withLock {
            $0.collection = collection
            $0.activeKid = activeKid
            $0.published = published
            $0.loadedAt = now
        }
    }

    public func issue(userID: UUID, sessionID: UUID, now: Date = Date(), clientID: String = "portcullis", scope: String? = nil) async throws -> (token: String, expiresIn: Int) {
        let (collection, kid) = state.withLock { ($0.collection, $0.activeKid) }
        guard let kid else { throw IdentityError.unauthenticated("no active signing key") }
        let issuedAt = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let ttl = Int(settings.accessTokenTTL.seconds)
        let claims = AccessClaims(
            iss: IssuerClaim(value: settings.issuer),
            sub: SubjectClaim(value: userID.uuidString.lowercased()),
            aud: AudienceClaim(value: [settings.audience]),
            exp: ExpirationClaim(value: issuedAt.addingTimeInterval(Double(ttl))),
            iat: IssuedAtClaim(value: issuedAt),
            nbf: NotBeforeClaim(value: issuedAt),
            jti: IDClaim(value: UUID().uuidString.lowercased()),
            sid: sessionID.uuidString.lowercased(),
            clientID: clientID, scope: scope)
        var header = JWTHeader()
        header.typ = "at+jwt"
        header.alg = "ES256"
        let token = try await collection.sign(claims, kid: JWKIdentifier(string: kid), header: header)
        return (token, ttl)
    }

    /// Checks signature, header and claims. Does not consult sessions: see `SessionGuard`.
    public func verify(_ token: String, now: Date = Date()) async throws -> VerifiedAccessToken {
        let header = try Self.header(of: token)
        guard header.alg == "ES256" else { throw IdentityError.unauthenticated("unsupported token algorithm") }
        guard header.typ?.lowercased() == "at+jwt" || header.typ?.lowercased() == "application/at+jwt" else {
            throw IdentityError.unauthenticated("not an access token")
        }
        guard let kid = header.kid, !kid.isEmpty else { throw IdentityError.unauthenticated("token has no key id") }
        var (collection, known, loadedAt) = state.withLock { s in
            (s.collection, s.published.contains { $0.kid == kid }, s.loadedAt)
        }
        if !known, now.timeIntervalSince(loadedAt) > 1 {
            try? await reload(now: now)
            (collection, known) = state.withLock { s in (s.collection, s.published.contains { $0.kid == kid }) }
        }
        guard known else { throw IdentityError.unauthenticated("unknown signing key") }
        let claims: AccessClaims
        do {
            claims = try await collection.verify(token, as: AccessClaims.self)
        } catch {
            throw IdentityError.unauthenticated("invalid token")
        }
        let leeway = settings.leeway.seconds
        guard claims.iss.value == settings.issuer else { throw IdentityError.unauthenticated("wrong issuer") }
        guard claims.aud.value.contains(settings.audience) else { throw IdentityError.unauthenticated("wrong audience") }
        guard claims.exp.value.timeIntervalSince(now) > -leeway else { throw IdentityError.unauthenticated("token expired") }
        guard claims.nbf.value.timeIntervalSince(now) <= leeway else { throw IdentityError.unauthenticated("token not yet valid") }
        guard let userID = UUID(uuidString: claims.sub.value), let sessionID = UUID(uuidString: claims.sid) else {
            throw IdentityError.unauthenticated("malformed token subject")
        }
        return VerifiedAccessToken(
            userID: userID, sessionID: sessionID, expiresAt: claims.exp.value, tokenID: claims.jti.value, clientID: claims.clientID, scope: claims.scope)
    }

    /// Signs any payload with the active key (ES256), `typ` as given: ID tokens use `JWT`.
    public func sign(_ payload: some JWTPayload, typ: String) async throws -> String {
        let (collection, kid) = state.withLock { ($0.collection, $0.activeKid) }
        guard let kid else { throw IdentityError.unauthenticated("no active signing key") }
        var header = JWTHeader()
        header.typ = typ
        header.alg = "ES256"
        return try await collection.sign(payload, kid: JWKIdentifier(string: kid), header: header)
    }

    /// A token this server signed (any payload), checked for its signature by a published key
    /// only: for hints such as an ID token presented back at logout, where expiry does not matter.
    public func verifySignature<P: JWTPayload>(_ token: String, as type: P.Type) async throws -> P {
        let collection = state.withLock { $0.collection }
        do { return try await collection.verify(token, as: P.self) } catch { throw IdentityError.unauthenticated("invalid token") }
    }

    /// The published public keys as a JWK Set.
    public func jwks() -> [[String: String]] {
        let published = state.withLock { $0.published }
        return published.compactMap { record in
            guard let key = try? P256.Signing.PublicKey(pemRepresentation: record.publicKeyPEM) else { return nil }
            let raw = key.rawRepresentation
            return [
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": record.kid,
                "x": Secrets.base64url(raw.prefix(32)), "y": Secrets.base64url(raw.suffix(32)),
            ]
        }
    }

    public var activeKid: String? { state.withLock { $0.activeKid } }

    private func makeKey(now: Date) throws -> SigningKeyRecord {
        let key = P256.Signing.PrivateKey()
        let publicRaw = key.publicKey.rawRepresentation
        let kid = String(Secrets.base64url(SHA256.hash(data: publicRaw)).prefix(16))
        return SigningKeyRecord(
            kid: kid, algorithm: "ES256", publicKeyPEM: key.publicKey.pemRepresentation,
            sealedPrivateKey: try sealer.seal(key.rawRepresentation), createdAt: now)
    }

    struct Header: Decodable {
        var alg: String?
        var typ: String?
        var kid: String?
    }

    static func header(of token: String) throws -> Header {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = Secrets.base64urlDecode(String(parts[0])),
              let header = try? JSONDecoder().decode(Header.self, from: data)
        else { throw IdentityError.unauthenticated("malformed token") }
        return header
    }
}

extension Duration {
    /// Whole and fractional seconds as a `TimeInterval`.
    public var seconds: TimeInterval {
        let (s, attos) = components
        return TimeInterval(s) + TimeInterval(attos) / 1e18
    }
}
