import Foundation
import Identity
import Tenancy
import Memberwise

/// Extra claims a client has put in its ID tokens and userinfo answers (SPEC §14): presets
/// computed from the person's orgs, and constants. Claims this server defines are reserved, and
/// a template is capped in size so tokens stay small enough for headers.
@PublicInit
public struct ClaimTemplate: Sendable, Equatable {
    public enum Preset: String, Sendable, CaseIterable {
        /// Hasura's `https://hasura.io/jwt/claims` object.
        case hasura
        /// A flat `org_roles` list of `<org_id>:<role>`.
        case orgRoles = "org_roles"
    }

    public var presets: [Preset] = []
    public var constants: [String: JSONValue] = [:]

    public static let hasuraClaim = "https://hasura.io/jwt/claims"
    /// The largest template, as canonical JSON.
    public static let maxBytes = 4096

    /// Claims a template may not set: JWT's registered claims, OpenID Connect's standard ones,
    /// and the ones this server computes.
    public static let reserved: Set<String> = [
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash", "sid",
        "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile", "picture", "website",
        "email", "email_verified", "gender", "birthdate", "zoneinfo", "locale", "phone_number", "phone_number_verified", "address",
        "updated_at", "orgs", "org_id", "org_roles", "client_id", "scope", "typ", "cnf", "act", hasuraClaim,
    ]

    /// The template as given in a client registration: `{"presets": [...], "constants": {...}}`.
    public static func parse(_ value: JSONValue) throws -> ClaimTemplate {
        guard case .object(let fields) = value else { throw ClientError.invalid("claim_template must be an object") }
        if let other = fields.keys.first(where: { $0 != "presets" && $0 != "constants" }) {
            throw ClientError.invalid("claim_template has an unknown field \(other.prefix(50)); it has presets and constants")
        }
        var presets: [Preset] = []
        switch fields["presets"] {
        case nil, .null?: break
        case .array(let list)?:
            for item in list {
                guard case .string(let name) = item, let preset = Preset(rawValue: name) else {
                    throw ClientError.invalid("claim_template.presets are \(Preset.allCases.map(\.rawValue).joined(separator: " and "))")
                }
                if !presets.contains(preset) { presets.append(preset) }
            }
        default: throw ClientError.invalid("claim_template.presets must be a list")
        }
        var constants: [String: JSONValue] = [:]
        switch fields["constants"] {
        case nil, .null?: break
        case .object(let given)?:
            for (name, value) in given {
                guard (1...64).contains(name.utf8.count) else { throw ClientError.invalid("a claim name has 1 to 64 characters") }
                guard !reserved.contains(name) else { throw ClientError.invalid("the claim \(name) is reserved; a template cannot set it") }
                guard value.depth <= 4 else { throw ClientError.invalid("claim \(name.prefix(50)) nests too deeply") }
                constants[name] = value
            }
        default: throw ClientError.invalid("claim_template.constants must be an object")
        }
        let template = ClaimTemplate(presets: presets, constants: constants)
        guard template.json.canonicalJSON.utf8.count <= maxBytes else {
            throw ClientError.invalid("claim_template is larger than \(maxBytes) bytes")
        }
        return template
    }

    public var json: JSONValue {
        .object(["presets": .array(presets.map { .string($0.rawValue) }), "constants": .object(constants)])
    }

    /// The claims for a person: `orgs` are their orgs (the first 100) when the client may see
    /// them, `org` the one org this login is for, with their role there. Hasura's roles come from
    /// that org only: roles held elsewhere mean nothing to this client (and anyone can own an org).
    public func claims(subject: String, orgs: [IDTokenClaims.OrgClaim], org: IDTokenClaims.OrgClaim?) -> [String: JSONValue] {
        var claims = constants
        for preset in presets {
            switch preset {
            case .orgRoles:
                claims["org_roles"] = .array(orgs.map { .string("\($0.id):\($0.role)") })
            case .hasura:
                var allowed = ["user"]
                if let role = org?.role, role != "user" { allowed.append(role) }
                var hasura: [String: JSONValue] = [
                    "x-hasura-user-id": .string(subject),
                    "x-hasura-default-role": .string(org?.role ?? "user"),
                    "x-hasura-allowed-roles": .array(allowed.map(JSONValue.string)),
                ]
                if let org { hasura["x-hasura-org-id"] = .string(org.id) }
                claims[Self.hasuraClaim] = .object(hasura)
            }
        }
        return claims
    }
}
