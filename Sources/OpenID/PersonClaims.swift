import Foundation
import Identity
import JWTKit
import Tenancy
import Memberwise

/// What a client learns about a person: one set of claims for the ID token and userinfo, from
/// the granted scopes, the login's org and the client's claim template (SPEC §14).
@PublicInit
public struct PersonClaims: Sendable {
    public var user: User
    public var scopes: [String]
    /// The person's orgs and roles (first 100), when the scopes or the template need them.
    public var orgs: [IDTokenClaims.OrgClaim]
    public var loginOrg: UUID?
    /// The org that owns the client, if any: the template's org when the login names none.
    public var clientOrg: UUID?
    public var template: ClaimTemplate?

    /// Whether the orgs must be read to make these claims.
    public static func needsOrgs(scopes: [String], template: ClaimTemplate?) -> Bool {
        scopes.contains("orgs") || !(template?.presets.isEmpty ?? true)
    }

    /// The template's claims: presets and constants. The list of the person's orgs goes out only
    /// under the `orgs` scope; otherwise only the one org of this login (`organization=`, else the
    /// client's own org if the person is in it).
    public var extra: [String: JSONValue] {
        guard let template else { return [:] }
        let org = (loginOrg ?? clientOrg).flatMap { id in orgs.first { $0.id == id.lowercasedString } }
        return template.claims(subject: user.id.lowercasedString, orgs: scopes.contains("orgs") ? orgs : [], org: org)
    }

    /// The ID token for `clientID`.
    public func idToken(issuer: String, clientID: String, nonce: String?, authTime: Date, issuedAt: Date, lifetime: TimeInterval) -> IDToken {
        IDToken(
            standard: IDTokenClaims(
                issuer: issuer, user: user, clientID: clientID, scopes: scopes, nonce: nonce, authTime: authTime, issuedAt: issuedAt,
                lifetime: lifetime, orgs: orgs, orgID: loginOrg?.lowercasedString),
            extra: extra)
    }

    /// The userinfo answer (OpenID Connect Core §5.3).
    public var userinfo: [String: JSONValue] {
        var claims = extra
        claims["sub"] = .string(user.id.lowercasedString)
        if scopes.contains("profile") { claims["name"] = .string(user.name) }
        if scopes.contains("email") { (claims["email"], claims["email_verified"]) = (.string(user.email), .bool(user.emailVerified)) }
        if scopes.contains("orgs") {
            claims["orgs"] = .array(orgs.map { .object(["id": .string($0.id), "name": .string($0.name), "role": .string($0.role)]) })
        }
        if let loginOrg { claims["org_id"] = .string(loginOrg.lowercasedString) }
        return claims
    }
}

/// An ID token: the standard claims and a client's template claims beside them.
@PublicInit
public struct IDToken: JWTPayload {
    public var standard: IDTokenClaims
    public var extra: [String: JSONValue]

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        standard = try IDTokenClaims(from: decoder)
        extra = [:]
    }

    /// Template claims first; the standard ones are written after, so none can be overridden
    /// (the template's rules refuse reserved names already).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in extra { try container.encode(value, forKey: Key(stringValue: name)) }
        try standard.encode(to: encoder)
    }

    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}
