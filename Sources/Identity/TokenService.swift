import Authority
import Crypto
import CryptoExtras
import Foundation
import JWTKit
import Synchronization
import Memberwise

@PublicInit
public struct TokenSettings: Sendable {
    public var issuer: String
    public var audience: String
    public var accessTokenTTL: Duration = .seconds(900)
    public var refreshTokenTTL: Duration = .seconds(30 * 86_400)
    /// Clock skew tolerated on `exp` and `nbf`.
    public var leeway: Duration = .seconds(30)
}

/// Signs and verifies access tokens with ES256 keys kept in the database, and signs ID tokens
/// with RS256 or ES256 keys. Each algorithm has one active key; both rotate together.
///
/// Only keys we published verify: an unknown `kid` fails (there is no default key), `alg` must
/// be ES256, and `typ` must be `at+jwt`. A `kid` seen for the first time makes one reload from
/// the database (another node may have rotated), at most once a second.
public final class TokenService: Sendable {
    /// The client id of Portcullis's own logins (the API and the console).
    public static let ownClientID = "portcullis"

    public let settings: TokenSettings
    private let store: any SigningKeyStore
    private let sealer: KeySealer
    private let state = Mutex(KeyState())

    struct KeyState: Sendable {
        var collection = JWTKeyCollection()
        var activeKids: [SigningAlgorithm: String] = [:]
        var published: [SigningKeyRecord] = []
        var loadedAt = Date.distantPast
    }

    public init(settings: TokenSettings, store: any SigningKeyStore, sealer: KeySealer) {
        self.settings = settings
        self.store = store
        self.sealer = sealer
    }

    /// Makes sure each algorithm has an active key (creating the first ones) and loads the keys.
    public func start(now: Date = Date()) async throws {
        for algorithm in SigningAlgorithm.allCases {
            _ = try await store.activateFirstKey(try makeKey(algorithm, now: now))
        }
        try await reload(now: now)
    }

    /// Makes a new active key for each algorithm; the previous ones stay published until every
    /// token they signed expired. Returns the new keys, the access tokens' (ES256) first.
    @discardableResult
    public func rotate(now: Date = Date(), by actor: Principal? = nil) async throws -> (keys: [SigningKeyRecord], revision: Revision) {
        var keys: [SigningKeyRecord] = []
        var revision: Revision = 0
        for algorithm in SigningAlgorithm.allCases {
            let key = try makeKey(algorithm, now: now)
            revision = try await store.rotateKey(to: key, retiredPublishUntil: retiredPublishUntil(now), actor: actor)
            keys.append(key)
        }
        try await reload(now: now)
        return (keys, revision)
    }

    /// Automatic rotation: a new key for each algorithm whose active key is older than `age`.
    /// Nil when none is.
    public func rotateIfOlder(than age: Duration, now: Date = Date()) async throws -> Revision? {
        var last: Revision?
        let cutoff = now.addingTimeInterval(-age.seconds)
        let active = state.withLock { s in s.published.filter { $0.retiredAt == nil } }
        for algorithm in SigningAlgorithm.allCases {
            // A key (an RSA one is costly) only when this node's view says one is due; the store
            // decides under its lock, as another node may have rotated already.
            if let newest = active.filter({ $0.algorithm == algorithm.rawValue }).map(\.createdAt).max(), newest >= cutoff { continue }
            let key = try makeKey(algorithm, now: now)
            if let revision = try await store.rotateKey(ifActiveOlderThan: cutoff, to: key, retiredPublishUntil: retiredPublishUntil(now)) {
                last = revision
            }
        }
        if last != nil { try await reload(now: now) }
        return last
    }

    /// A retired key stays published until every token it signed has expired: access tokens and
    /// ID tokens live at most a day (a client's longest access-token lifetime).
    func retiredPublishUntil(_ now: Date) -> Date {
        now.addingTimeInterval(max(settings.accessTokenTTL.seconds, Self.longestClientTokenLifetime) + settings.leeway.seconds)
    }

    /// The longest access-token lifetime a client may register (seconds).
    public static let longestClientTokenLifetime: TimeInterval = 86_400

    /// Reads the keys from the database and rebuilds the key collection.
    public func reload(now: Date = Date()) async throws {
        let records = try await store.signingKeys()
        let published = records.filter { $0.publishUntil.map { $0 > now } ?? true }
        let collection = JWTKeyCollection()
        var active: [SigningAlgorithm: SigningKeyRecord] = [:]
        for record in published {
            guard let algorithm = SigningAlgorithm(rawValue: record.algorithm) else { continue }
            let raw = try sealer.open(record.sealedPrivateKey)
            switch algorithm {
            case .es256:
                let key = try ES256PrivateKey(backing: try P256.Signing.PrivateKey(rawRepresentation: raw))
                await collection.add(ecdsa: key, kid: JWKIdentifier(string: record.kid))
            case .rs256:
                let key = try Insecure.RSA.PrivateKey(backing: try _RSA.Signing.PrivateKey(derRepresentation: raw))
                await collection.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: record.kid))
            }
            if record.retiredAt == nil, active[algorithm].map({ record.createdAt > $0.createdAt }) ?? true {
                active[algorithm] = record
            }
        }
        let activeKids = active.mapValues(\.kid)
        state.withLock {
            $0.collection = collection
            $0.activeKids = activeKids
            $0.published = published
            $0.loadedAt = now
        }
    }

    /// An access token for a session (`lifetime` nil: the server's).
    public func issue(
        userID: UUID, sessionID: UUID, now: Date = Date(), clientID: String = TokenService.ownClientID, scope: String? = nil,
        lifetime: Duration? = nil
    ) async throws -> (token: String, expiresIn: Int) {
        try await issueAccess(subject: userID, sessionID: sessionID, orgID: nil, now: now, clientID: clientID, scope: scope, lifetime: lifetime)
    }

    /// An access token for an OpenID client acting as its service account (client_credentials):
    /// no session; it lives `lifetime` and is checked against the client on every use.
    public func issueServiceAccount(
        accountID: UUID, orgID: UUID, clientID: String, secretGeneration: Int64, now: Date = Date(), lifetime: Duration? = nil
    ) async throws -> (token: String, expiresIn: Int) {
        try await issueAccess(
            subject: accountID, sessionID: nil, orgID: orgID, secretGeneration: secretGeneration, now: now, clientID: clientID, scope: nil, lifetime: lifetime)
    }

    private func issueAccess(
        subject: UUID, sessionID: UUID?, orgID: UUID?, secretGeneration: Int64? = nil, now: Date, clientID: String, scope: String?, lifetime: Duration?
    ) async throws -> (token: String, expiresIn: Int) {
        let issuedAt = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let ttl = Int((lifetime ?? settings.accessTokenTTL).seconds)
        let claims = AccessClaims(
            iss: IssuerClaim(value: settings.issuer),
            sub: SubjectClaim(value: subject.uuidString.lowercased()),
            aud: AudienceClaim(value: [settings.audience]),
            exp: ExpirationClaim(value: issuedAt.addingTimeInterval(Double(ttl))),
            iat: IssuedAtClaim(value: issuedAt),
            nbf: NotBeforeClaim(value: issuedAt),
            jti: IDClaim(value: UUID().uuidString.lowercased()),
            sid: sessionID?.uuidString.lowercased(),
            clientID: clientID, scope: scope, orgID: orgID?.uuidString.lowercased(), secretGeneration: secretGeneration)
        return (try await sign(claims, typ: "at+jwt", algorithm: .es256), ttl)
    }

    /// A session's access token: signature, header and claims. Does not consult sessions: see
    /// `SessionGuard`. A service account's token is refused here.
    public func verify(_ token: String, now: Date = Date()) async throws -> VerifiedAccessToken {
        guard case .session(let verified) = try await verifyBearer(token, now: now) else {
            throw IdentityError.unauthenticated("not a session's token")
        }
        return verified
    }

    /// Any access token this server issued: a session's or a service account's.
    public func verifyBearer(_ token: String, now: Date = Date()) async throws -> VerifiedBearer {
        let header = try Self.header(of: token)
        guard header.alg == "ES256" else { throw IdentityError.unauthenticated("unsupported token algorithm") }
        guard header.typ?.lowercased() == "at+jwt" || header.typ?.lowercased() == "application/at+jwt" else {
            throw IdentityError.unauthenticated("not an access token")
        }
        guard let kid = header.kid, !kid.isEmpty else { throw IdentityError.unauthenticated("token has no key id") }
        // Access tokens are ES256 only: a kid of an RS256 (ID-token) key does not count.
        func isAccessKey(_ record: SigningKeyRecord) -> Bool { record.kid == kid && record.algorithm == SigningAlgorithm.es256.rawValue }
        var (collection, known, loadedAt) = state.withLock { s in
            (s.collection, s.published.contains(where: isAccessKey), s.loadedAt)
        }
        if !known, now.timeIntervalSince(loadedAt) > 1 {
            try? await reload(now: now)
            (collection, known) = state.withLock { s in (s.collection, s.published.contains(where: isAccessKey)) }
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
        guard let subject = UUIDText.parse(claims.sub.value) else { throw IdentityError.unauthenticated("malformed token subject") }
        if let org = claims.orgID {
            guard claims.sid == nil, claims.clientID != Self.ownClientID, let orgID = UUIDText.parse(org) else {
                throw IdentityError.unauthenticated("malformed token subject")
            }
            return .serviceAccount(VerifiedServiceAccountToken(
                accountID: subject, orgID: orgID, clientID: claims.clientID, secretGeneration: claims.secretGeneration ?? 0, expiresAt: claims.exp.value))
        }
        guard let sid = claims.sid, let sessionID = UUIDText.parse(sid) else { throw IdentityError.unauthenticated("malformed token subject") }
        return .session(VerifiedAccessToken(
            userID: subject, sessionID: sessionID, expiresAt: claims.exp.value, tokenID: claims.jti.value, clientID: claims.clientID, scope: claims.scope))
    }

    /// Signs any payload with the active key of `algorithm`, `typ` as given: ID tokens use `JWT`.
    public func sign(_ payload: some JWTPayload, typ: String, algorithm: SigningAlgorithm = .es256) async throws -> String {
        let (collection, kid) = state.withLock { ($0.collection, $0.activeKids[algorithm]) }
        guard let kid else { throw IdentityError.unauthenticated("no active \(algorithm.rawValue) signing key") }
        var header = JWTHeader()
        header.typ = typ
        header.alg = algorithm.rawValue
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
            switch SigningAlgorithm(rawValue: record.algorithm) {
            case .es256:
                guard let key = try? P256.Signing.PublicKey(pemRepresentation: record.publicKeyPEM) else { return nil }
                let raw = key.rawRepresentation
                return [
                    "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": record.kid,
                    "x": Secrets.base64url(raw.prefix(32)), "y": Secrets.base64url(raw.suffix(32)),
                ]
            case .rs256:
                guard let key = try? _RSA.Signing.PublicKey(pemRepresentation: record.publicKeyPEM),
                      let primitives = try? key.getKeyPrimitives() else { return nil }
                return [
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": record.kid,
                    "n": Secrets.base64url(Self.unsigned(primitives.modulus)), "e": Secrets.base64url(Self.unsigned(primitives.publicExponent)),
                ]
            case nil:
                return nil
            }
        }
    }

    /// JWK integers are unsigned big-endian without leading zero bytes (RFC 7518 §6.3.1).
    static func unsigned(_ bytes: Data) -> Data { Data(bytes.drop { $0 == 0 }) }

    /// The key access tokens are signed with now.
    public var activeKid: String? { state.withLock { $0.activeKids[.es256] } }

    private func makeKey(_ algorithm: SigningAlgorithm, now: Date) throws -> SigningKeyRecord {
        let publicDER: Data, publicPEM: String, privateBytes: Data
        switch algorithm {
        case .es256:
            let key = P256.Signing.PrivateKey()
            (publicDER, publicPEM, privateBytes) = (key.publicKey.derRepresentation, key.publicKey.pemRepresentation, key.rawRepresentation)
        case .rs256:
            let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
            (publicDER, publicPEM, privateBytes) = (key.publicKey.derRepresentation, key.publicKey.pemRepresentation, key.derRepresentation)
        }
        let kid = String(Secrets.base64url(SHA256.hash(data: publicDER)).prefix(16))
        return SigningKeyRecord(
            kid: kid, algorithm: algorithm.rawValue, publicKeyPEM: publicPEM,
            sealedPrivateKey: try sealer.seal(privateBytes), createdAt: now)
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
