import Authority
import Foundation
import Hummingbird
import Identity
import Keys
import Policy
import Tenancy

struct CreateKeyBody: Decodable, Sendable {
    let name: String
    let expiresIn: Int?
    let scopes: [String]?
}

struct KeyResponse: Encodable, Sendable {
    let id: String
    let name: String
    let prefix: String
    let scopes: [String]
    let createdAt: Date
    let expiresAt: OrNull<Date>
    let lastUsedAt: OrNull<Date>
    let serviceAccountId: String?
    /// The whole key: only in the creation response.
    let key: String?

    init(_ k: APIKey, lastUsed: Date? = nil, secret: String? = nil) {
        id = k.id.lowercasedString
        name = k.name
        prefix = k.prefix
        scopes = k.scopes
        createdAt = k.createdAt
        expiresAt = OrNull(k.expiresAt)
        // A use this node saw but has not written yet is newer than the stored value.
        lastUsedAt = OrNull([k.lastUsedAt, lastUsed].compactMap { $0 }.max())
        if case .serviceAccount(let account, _) = k.owner { serviceAccountId = account.lowercasedString } else { serviceAccountId = nil }
        key = secret
    }
}

struct CreateServiceAccountBody: Decodable, Sendable {
    let name: String
    let role: String
}

struct ServiceAccountResponse: Encodable, Sendable {
    let id: String
    let orgId: String
    let name: String
    let role: String
    let createdAt: Date

    init(_ a: ServiceAccount) {
        id = a.id.lowercasedString
        orgId = a.orgID.lowercasedString
        name = a.name
        role = a.role.rawValue
        createdAt = a.createdAt
    }
}

/// User API keys and org service accounts with their keys.
struct KeyRoutes {
    let keys: KeyService
    let verifier: APIKeyVerifier

    /// Scopes as given, checked; and the orgs they name (for the org key-lifetime policy).
    static func scopes(_ given: [String]?) throws -> ([String], [UUID]) {
        let list = given ?? []
        guard list.count <= 50 else { throw Problem.badRequest("at most 50 scopes") }
        let parsed: KeyScopes
        do { parsed = try KeyScopes.parse(list) } catch { throw Problem.badRequest(error.message) }
        // Stored in canonical form: lowercase org ids, no repeats, sorted.
        let canonical = Array(Set(list.map { $0.hasPrefix("org:") ? $0.lowercased() : $0 })).sorted()
        return (canonical, Array(parsed.orgs ?? []))
    }

    func response(_ key: APIKey, secret: String? = nil) -> KeyResponse {
        KeyResponse(key, lastUsed: verifier.pendingUse(key.id), secret: secret)
    }

    // MARK: User keys

    @Sendable func createKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(CreateKeyBody.self, from: request)
        let caller = try await context.caller()
        let body = try unchecked.fields()
        let (scopes, orgs) = try Self.scopes(body.scopes)
        _ = try caller.requireSession()
        let created = try await keys.createUserKey(
            actor: try await context.actor(), name: body.name, expiresIn: body.expiresIn, scopes: scopes, scopedOrgs: orgs)
        return try JSONBody.response(response(created.key, secret: created.secret), status: .created, revision: created.revision)
    }

    @Sendable func listKeys(_ request: Request, context: AppRequestContext) async throws -> Response {
        let caller = try await context.caller()
        let page = try Page(from: request)
        _ = try caller.requireUser()
        let (items, total) = try await keys.userKeys(actor: try await context.actor(), limit: page.limit, offset: page.offset)
        return try JSONBody.response(ListResponse(items: items.map { response($0) }, total: total, page: page))
    }

    @Sendable func getKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        let caller = try await context.caller()
        _ = try caller.requireUser()
        let key = try await keys.userKey(actor: try await context.actor(), id: try TenancyRoutes.pathID(context, "key_id", "key"))
        return try JSONBody.response(response(key))
    }

    @Sendable func revokeKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        let caller = try await context.caller()
        // A key must not be able to revoke its owner's other (perhaps stronger) keys.
        _ = try caller.requireSession()
        let revision = try await keys.revokeUserKey(actor: try await context.actor(), id: try TenancyRoutes.pathID(context, "key_id", "key"))
        return JSONBody.noContent(revision: revision)
    }

    // MARK: Service accounts

    @Sendable func listAccounts(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await ListResponse.orgPage(request, context, ServiceAccountResponse.init) {
            try await keys.serviceAccounts(actor: $0, orgID: $1, limit: $2.limit, offset: $2.offset)
        }
    }

    @Sendable func createAccount(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(CreateServiceAccountBody.self, from: request)
        _ = try await context.caller()
        let body = try unchecked.fields()
        let role = try parseRole(body.role)
        let (account, revision) = try await keys.createServiceAccount(
            actor: try await context.actor(), orgID: try TenancyRoutes.pathID(context, "org_id", "org"), name: body.name, role: role)
        return try JSONBody.response(ServiceAccountResponse(account), status: .created, revision: revision)
    }

    @Sendable func deleteAccount(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await keys.deleteServiceAccount(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), id: try TenancyRoutes.pathID(context, "account_id", "service account"))
        return JSONBody.noContent(revision: revision)
    }

    @Sendable func listAccountKeys(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await ListResponse.orgPage(request, context, { response($0) }) { actor, org, page in
            try await keys.serviceAccountKeys(
                actor: actor, orgID: org, accountID: try TenancyRoutes.pathID(context, "account_id", "service account"), limit: page.limit, offset: page.offset)
        }
    }

    @Sendable func createAccountKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(CreateKeyBody.self, from: request)
        let caller = try await context.caller()
        let body = try unchecked.fields()
        let (scopes, orgs) = try Self.scopes(body.scopes)
        _ = try caller.requireSession()
        let created = try await keys.createServiceAccountKey(
            actor: try await context.actor(), orgID: try TenancyRoutes.pathID(context, "org_id", "org"),
            accountID: try TenancyRoutes.pathID(context, "account_id", "service account"),
            name: body.name, expiresIn: body.expiresIn, scopes: scopes, scopedOrgs: orgs)
        return try JSONBody.response(response(created.key, secret: created.secret), status: .created, revision: created.revision)
    }

    @Sendable func revokeAccountKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await keys.revokeServiceAccountKey(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"),
            accountID: try TenancyRoutes.pathID(context, "account_id", "service account"), keyID: try TenancyRoutes.pathID(context, "key_id", "key"))
        return JSONBody.noContent(revision: revision)
    }
}
