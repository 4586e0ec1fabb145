import Foundation
import Identity
import JWTKit
import OpenID
import Tenancy
import Testing

/// Claim templates (SPEC §14): what a registration may say, and the claims they make.
@Suite("OpenID claim templates")
struct ClaimTemplateTests {
    static let orgA = "0b7e2f4e-3a51-4f2b-9a8e-5d0c2a1f7c33"
    static let orgB = "4c3b2a19-8e7d-4f6a-9b5c-1d2e3f4a5b6c"
    static let orgs = [
        IDTokenClaims.OrgClaim(id: orgA, name: "Acme", role: "admin"),
        IDTokenClaims.OrgClaim(id: orgB, name: "Beta", role: "viewer"),
    ]

    @Test("reserved claims, unknown presets and fields, deep values and oversized templates are refused", arguments: [
        #"{"constants": {"sub": "x"}}"#, #"{"constants": {"email": "x"}}"#, #"{"constants": {"org_id": "x"}}"#,
        #"{"constants": {"https://hasura.io/jwt/claims": {}}}"#, #"{"presets": ["keycloak"]}"#, #"{"presets": "hasura"}"#,
        #"{"extra": 1}"#, #"{"constants": {"": 1}}"#, #"{"constants": {"deep": [[[[[1]]]]]}}"#, #"[]"#,
        #"{"constants": {"big": "\#(String(repeating: "x", count: 4100))"}}"#,
    ])
    func refused(_ text: String) throws {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(throws: ClientError.self) { try ClaimTemplate.parse(value) }
    }

    @Test("hasura: roles of the login's one org only; without one, user")
    func hasura() throws {
        let template = try ClaimTemplate.parse(.object(["presets": .array([.string("hasura")])]))
        let scoped = template.claims(subject: "u1", orgs: [], org: Self.orgs[0])[ClaimTemplate.hasuraClaim]
        #expect(scoped == .object([
            "x-hasura-user-id": .string("u1"), "x-hasura-default-role": .string("admin"),
            "x-hasura-allowed-roles": .array([.string("user"), .string("admin")]), "x-hasura-org-id": .string(Self.orgA),
        ]))
        // Roles held in other orgs are not offered: anyone can own an org of their own.
        let unscoped = template.claims(subject: "u1", orgs: Self.orgs, org: nil)[ClaimTemplate.hasuraClaim]
        #expect(unscoped == .object([
            "x-hasura-user-id": .string("u1"), "x-hasura-default-role": .string("user"),
            "x-hasura-allowed-roles": .array([.string("user")]),
        ]))
    }

    @Test("org_roles lists org:role; constants come as given; no template, no claims")
    func orgRolesAndConstants() throws {
        let template = try ClaimTemplate.parse(.object([
            "presets": .array([.string("org_roles")]), "constants": .object(["tenant": .string("acme"), "tier": .number(2)]),
        ]))
        let claims = template.claims(subject: "u1", orgs: Self.orgs, org: nil)
        #expect(claims["org_roles"] == .array([.string("\(Self.orgA):admin"), .string("\(Self.orgB):viewer")]))
        #expect(claims["tenant"] == .string("acme"))
        #expect(claims["tier"] == .number(2))
        #expect(claims.count == 3)
        #expect(ClaimTemplate().claims(subject: "u1", orgs: Self.orgs, org: nil).isEmpty)
    }

    @Test("the person's org list leaves only under the orgs scope; the client's own org stands in for organization=")
    func orgsNeedTheScope() throws {
        let user = User(id: UUID(), email: "ada@example.com", name: "Ada", emailVerified: true, isRoot: false, createdAt: Date(), updatedAt: Date())
        let template = try ClaimTemplate.parse(.object(["presets": .array([.string("org_roles"), .string("hasura")])]))
        let withoutScope = PersonClaims(user: user, scopes: ["openid"], orgs: Self.orgs, loginOrg: nil, template: template).extra
        #expect(withoutScope["org_roles"] == .array([]))
        let ownOrg = PersonClaims(user: user, scopes: ["openid"], orgs: Self.orgs, loginOrg: nil, clientOrg: UUID(uuidString: Self.orgB), template: template).extra
        guard case .object(let hasura)? = ownOrg[ClaimTemplate.hasuraClaim] else { Issue.record("no hasura claims"); return }
        #expect(hasura["x-hasura-default-role"] == .string("viewer"))
        #expect(hasura["x-hasura-org-id"] == .string(Self.orgB))
        let withScope = PersonClaims(user: user, scopes: ["openid", "orgs"], orgs: Self.orgs, loginOrg: nil, template: template).extra
        #expect(withScope["org_roles"] == .array([.string("\(Self.orgA):admin"), .string("\(Self.orgB):viewer")]))
    }

    @Test("an ID token carries the template's claims beside the standard ones")
    func idTokenEncoding() throws {
        let user = User(
            id: UUID(), email: "ada@example.com", name: "Ada", emailVerified: true, isRoot: false, createdAt: Date(), updatedAt: Date())
        let template = try ClaimTemplate.parse(.object(["constants": .object(["tenant": .string("acme")])]))
        let claims = PersonClaims(user: user, scopes: ["openid", "email"], orgs: [], loginOrg: UUID(uuidString: Self.orgA), template: template)
        let token = claims.idToken(issuer: "https://id.example", clientID: "c1", nonce: "n", authTime: Date(), issuedAt: Date(), lifetime: 60)
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(token)) as? [String: Any])
        #expect(json["tenant"] as? String == "acme")
        #expect(json["sub"] as? String == user.id.lowercasedString)
        #expect(json["email"] as? String == "ada@example.com")
        #expect(json["org_id"] as? String == Self.orgA)
        #expect(json["name"] == nil)
        #expect(claims.userinfo["tenant"] == .string("acme"))
        #expect(claims.userinfo["org_id"] == .string(Self.orgA))
    }
}
