import Authority
import Foundation
import Hummingbird
import Identity
import OpenID
import Tenancy

struct CreateClientBody: Decodable, Sendable {
    let name: String
    /// `confidential` (the default) or `public`.
    let type: String?
    let redirectUris: [String]
    let scopes: [String]?
    let firstParty: Bool?
    /// An org's client; none is a platform client (the root's).
    let orgId: String?
    let idTokenSignedResponseAlg: String?
    let accessTokenLifetime: Int?
    let refreshTokenLifetime: Int?
    let claimTemplate: JSONValue?
    let serviceAccountId: String?
}

/// The token settings of a registration or a patch, in the service's terms.
struct ClientTokenSettings {
    var algorithm: SigningAlgorithm?
    var accessTokenLifetime: Int??
    var refreshTokenLifetime: Int??
    var claimTemplate: ClaimTemplate??
    var serviceAccountID: UUID??

    init(algorithm: String?, access: Int??, refresh: Int??, template: JSONValue??, serviceAccount: String??) throws {
        if let algorithm {
            guard let known = SigningAlgorithm(rawValue: algorithm) else { throw Problem.badRequest("id_token_signed_response_alg must be RS256 or ES256") }
            self.algorithm = known
        }
        accessTokenLifetime = access
        refreshTokenLifetime = refresh
        switch template {
        case .none: claimTemplate = nil
        case .some(.none), .some(.some(.null)): claimTemplate = .some(nil)
        case .some(.some(let value)): claimTemplate = .some(try ClientRoutes.checked { try ClaimTemplate.parse(value) })
        }
        switch serviceAccount {
        case .none: serviceAccountID = nil
        case .some(.none): serviceAccountID = .some(nil)
        case .some(.some(let text)):
            guard let id = UUIDText.parse(text) else { throw Problem.badRequest("service_account_id must be a UUID") }
            serviceAccountID = .some(id)
        }
    }

    func fields(_ base: ClientFields) -> ClientFields {
        var fields = base
        fields.idTokenAlgorithm = algorithm
        fields.accessTokenLifetime = accessTokenLifetime
        fields.refreshTokenLifetime = refreshTokenLifetime
        fields.claimTemplate = claimTemplate
        fields.serviceAccountID = serviceAccountID
        return fields
    }
}

/// Fields left out stay. `null` is no value for the registration's own fields (400); for the
/// lifetimes, the claim template and the service account it clears them.
struct PatchClientBody: Decodable, Sendable {
    var name: String??
    var type: String??
    var redirectUris: [String]??
    var scopes: [String]??
    var firstParty: Bool??
    var idTokenSignedResponseAlg: String??
    var accessTokenLifetime: Int??
    var refreshTokenLifetime: Int??
    var claimTemplate: JSONValue??
    var serviceAccountId: String??

    enum CodingKeys: String, CodingKey {
        case name, type, redirectUris, scopes, firstParty, idTokenSignedResponseAlg, accessTokenLifetime, refreshTokenLifetime, claimTemplate
        case serviceAccountId
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodePresence(String.self, forKey: .name)
        type = try c.decodePresence(String.self, forKey: .type)
        redirectUris = try c.decodePresence([String].self, forKey: .redirectUris)
        scopes = try c.decodePresence([String].self, forKey: .scopes)
        firstParty = try c.decodePresence(Bool.self, forKey: .firstParty)
        idTokenSignedResponseAlg = try c.decodePresence(String.self, forKey: .idTokenSignedResponseAlg)
        accessTokenLifetime = try c.decodePresence(Int.self, forKey: .accessTokenLifetime)
        refreshTokenLifetime = try c.decodePresence(Int.self, forKey: .refreshTokenLifetime)
        // JSONValue decodes null as .null: told apart from "left out" by the key's presence.
        claimTemplate = c.contains(.claimTemplate) ? .some(try c.decode(JSONValue.self, forKey: .claimTemplate)) : nil
        serviceAccountId = try c.decodePresence(String.self, forKey: .serviceAccountId)
    }

    /// The value given, or nil when left out; a null is 400.
    static func value<T>(_ field: T??, _ name: String) throws -> T? {
        switch field {
        case .none: return nil
        case .some(.none): throw Problem.badRequest("\(name) must not be null")
        case .some(.some(let value)): return value
        }
    }
}

struct ClientResponse: Encodable, Sendable {
    let clientId: String
    let orgId: OrNull<String>
    let name: String
    let type: String
    let redirectUris: [String]
    let scopes: [String]
    let firstParty: Bool
    let idTokenSignedResponseAlg: String
    let accessTokenLifetime: OrNull<Int>
    let refreshTokenLifetime: OrNull<Int>
    let claimTemplate: OrNull<JSONValue>
    let serviceAccountId: OrNull<String>
    let createdAt: Date
    let updatedAt: Date
    /// The secret: only when it is made (registration, rotation).
    let clientSecret: String?

    init(_ c: OAuthClient, secret: String? = nil) {
        clientId = c.id.lowercasedString
        orgId = OrNull(c.orgID?.lowercasedString)
        name = c.name
        type = c.kind.rawValue
        redirectUris = c.redirectURIs
        scopes = c.scopes
        firstParty = c.firstParty
        idTokenSignedResponseAlg = c.idTokenAlgorithm.rawValue
        accessTokenLifetime = OrNull(c.accessTokenLifetime)
        refreshTokenLifetime = OrNull(c.refreshTokenLifetime)
        claimTemplate = OrNull(c.claimTemplate?.json)
        serviceAccountId = OrNull(c.serviceAccountID?.lowercasedString)
        createdAt = c.createdAt
        updatedAt = c.updatedAt
        clientSecret = secret
    }
}

/// `/v1/clients`: OpenID clients. Handlers parse and authenticate; every rule is `ClientService`'s.
struct ClientRoutes {
    let clients: ClientService

    /// A client rule's refusal as a problem, where it is met outside the service.
    static func checked<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch ClientError.invalid(let why) { throw Problem.badRequest(why) }
    }

    static func kind(_ text: String?) throws -> OAuthClient.Kind? {
        guard let text else { return nil }
        guard let kind = OAuthClient.Kind(rawValue: text) else { throw Problem.badRequest("type must be confidential or public") }
        return kind
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(CreateClientBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let org = try body.orgId.map { text -> UUID in
            guard let id = UUIDText.parse(text) else { throw Problem.badRequest("org_id must be a UUID") }
            return id
        }
        let settings = try ClientTokenSettings(
            algorithm: body.idTokenSignedResponseAlg, access: .some(body.accessTokenLifetime), refresh: .some(body.refreshTokenLifetime),
            template: .some(body.claimTemplate), serviceAccount: .some(body.serviceAccountId))
        let registered = try await clients.create(actor: actor, orgID: org, fields: settings.fields(ClientFields(
            name: body.name, kind: try Self.kind(body.type) ?? .confidential, redirectURIs: body.redirectUris, scopes: body.scopes,
            firstParty: body.firstParty)))
        return try JSONBody.response(ClientResponse(registered.client, secret: registered.secret), status: .created, revision: registered.revision)
    }

    /// `?org_id=` lists an org's clients; without it, the platform's (root only).
    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let org = try request.singleQuery("org_id").map { text -> UUID in
            guard let id = UUIDText.parse(text) else { throw Problem.badRequest("org_id must be a UUID") }
            return id
        }
        return try await ListResponse.page(request, { ClientResponse($0) }) {
            try await clients.clients(actor: actor, orgID: org, limit: $0.limit, offset: $0.offset)
        }
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        return try JSONBody.response(ClientResponse(try await clients.client(actor: actor, id: try TenancyRoutes.pathID(context, "client_id", "client"))))
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(PatchClientBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let settings = try ClientTokenSettings(
            algorithm: try PatchClientBody.value(body.idTokenSignedResponseAlg, "id_token_signed_response_alg"),
            access: body.accessTokenLifetime, refresh: body.refreshTokenLifetime, template: body.claimTemplate, serviceAccount: body.serviceAccountId)
        let (client, revision) = try await clients.update(
            actor: actor, id: try TenancyRoutes.pathID(context, "client_id", "client"),
            fields: settings.fields(ClientFields(
                name: try PatchClientBody.value(body.name, "name"), kind: try Self.kind(try PatchClientBody.value(body.type, "type")),
                redirectURIs: try PatchClientBody.value(body.redirectUris, "redirect_uris"), scopes: try PatchClientBody.value(body.scopes, "scopes"),
                firstParty: try PatchClientBody.value(body.firstParty, "first_party"))))
        return try JSONBody.response(ClientResponse(client), revision: revision)
    }

    @Sendable func rotateSecret(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let registered = try await clients.rotateSecret(actor: actor, id: try TenancyRoutes.pathID(context, "client_id", "client"))
        return try JSONBody.response(ClientResponse(registered.client, secret: registered.secret), revision: registered.revision)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await clients.delete(actor: actor, id: try TenancyRoutes.pathID(context, "client_id", "client"))
        return JSONBody.noContent(revision: revision)
    }
}
