import Authority
import Foundation
import Identity
import Tenancy

/// Registering and managing OpenID clients (SPEC §14). A platform client is the root's; an org's
/// client is managed by whoever may update the org (`org.update`: admins and owners). Every write
/// is audited and logged as a change in the same transaction.
public struct ClientService: Sendable {
    public let store: any ClientStore
    public let tenancy: TenancyService
    let now: @Sendable () -> Date

    public init(store: any ClientStore, tenancy: TenancyService, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.tenancy = tenancy
        self.now = now
    }

    /// A first-party client skips the consent screen for everyone on the instance: only the root
    /// says which apps are the platform's own.
    static func mayMarkFirstParty(_ actor: Actor, _ fields: ClientFields) throws {
        if fields.firstParty == true, !actor.isRoot { throw ClientError.forbidden("only the platform administrator marks a client first-party") }
    }

    /// The token settings of a registration or a patch, checked, onto `client`.
    public static func apply(_ fields: ClientFields, to client: inout OAuthClient) throws {
        if let algorithm = fields.idTokenAlgorithm { client.idTokenAlgorithm = algorithm }
        if let lifetime = fields.accessTokenLifetime {
            client.accessTokenLifetime = try ClientRules.lifetime(lifetime, ClientRules.accessLifetimes, "access-token lifetime (access_token_lifetime)")
        }
        if let lifetime = fields.refreshTokenLifetime {
            client.refreshTokenLifetime = try ClientRules.lifetime(lifetime, ClientRules.refreshLifetimes, "refresh-token lifetime (refresh_token_lifetime)")
        }
        if let template = fields.claimTemplate { client.claimTemplate = template }
        if let account = fields.serviceAccountID { client.serviceAccountID = account }
        if client.serviceAccountID != nil {
            guard client.orgID != nil, client.kind == .confidential else {
                throw ClientError.invalid("service_account_id is for a confidential client of an org")
            }
        }
    }

    /// Binding a service account gives whoever holds the client's secret that account's
    /// authority: the same rule as minting it a key (its org's, and not above the actor's rank).
    func mayBind(_ actor: Actor, _ client: OAuthClient, in tx: any TenancyWriter, _ clients: any ClientWriter, at: Date) async throws {
        guard let id = client.serviceAccountID, let org = client.orgID else { return }
        guard let account = try await clients.serviceAccount(id: id), account.orgID == org else {
            throw ClientError.invalid("service_account_id names no service account of this client's org")
        }
        let (role, _) = try await tenancy.access(Permission.serviceAccountsWrite, actor: actor, orgID: org, in: tx, at: at)
        guard RankRules.mayManageGrant(actor: role, grant: account.role) else {
            throw ClientError.forbidden("this service account's role exceeds your own")
        }
    }

    /// Client secrets: 256 random bits behind a prefix that says what they are.
    static func mintSecret() -> String { "pcs_" + Secrets.token() }

    /// Who may manage `orgID`'s clients (or the platform's, for nil), inside a write.
    func authorize(_ actor: Actor, orgID: UUID?, in tx: any TenancyWriter, at: Date) async throws -> Bool {
        try await tenancy.managesIntegrations(actor, orgID: orgID, "clients", in: tx, at: at)
    }

    /// Outside a write: the same rule, for reads.
    func authorize(_ actor: Actor, orgID: UUID?) async throws {
        try await tenancy.managesIntegrations(actor, orgID: orgID, "clients")
    }

    public func create(actor: Actor, orgID: UUID?, fields: ClientFields) async throws -> RegisteredClient {
        let name = try OrgFields.name(fields.name ?? "")
        let kind = fields.kind ?? .confidential
        let redirectURIs = try ClientRules.redirectURIs(fields.redirectURIs ?? [])
        let scopes = try ClientRules.scopes(fields.scopes)
        let at = now()
        try Self.mayMarkFirstParty(actor, fields)
        let secret = kind == .confidential ? Self.mintSecret() : nil
        var client = OAuthClient(
            id: UUID(), orgID: orgID, name: name, kind: kind, redirectURIs: redirectURIs, scopes: scopes,
            firstParty: fields.firstParty ?? false, createdAt: at, updatedAt: at)
        try Self.apply(fields, to: &client)
        return try await store.writeClients(lockingOrg: orgID) { [client] tx, clients in
            let viaRoot = try await authorize(actor, orgID: orgID, in: tx, at: at)
            try await mayBind(actor, client, in: tx, clients, at: at)
            try await clients.insert(client, secretHash: secret.map(Secrets.hash))
            try await tx.appendAudit(Self.event(actor, at: at, AuditAction.clientCreated, client, viaRoot: viaRoot))
            let revision = try await tx.recordChange(.clientChanged(client.id), at: at)
            return RegisteredClient(client: client, secret: secret, revision: revision)
        }
    }

    public func clients(actor: Actor, orgID: UUID?, limit: Int, offset: Int) async throws -> ([OAuthClient], Int) {
        try await authorize(actor, orgID: orgID)
        return try await store.clients(orgID: orgID, limit: limit, offset: offset)
    }

    /// A client its manager may see; anyone else gets 404, as for an org they are not in.
    public func client(actor: Actor, id: UUID) async throws -> OAuthClient {
        guard let (client, _) = try await store.client(id: id) else { throw ClientError.notFound("no such client") }
        do {
            try await authorize(actor, orgID: client.orgID)
        } catch TenancyError.forbidden where client.orgID == nil {
            // A platform client does not exist for anyone but the root.
            throw ClientError.notFound("no such client")
        }
        return client
    }

    public func update(actor: Actor, id: UUID, fields: ClientFields) async throws -> (OAuthClient, Int64?) {
        let name = try fields.name.map(OrgFields.name)
        let redirectURIs = try fields.redirectURIs.map(ClientRules.redirectURIs)
        let scopes = try fields.scopes.map(ClientRules.scopes)
        guard fields.kind == nil else { throw ClientError.invalid("a client's type cannot change; register a new client") }
        try Self.mayMarkFirstParty(actor, fields)
        let found = try await client(actor: actor, id: id)
        let at = now()
        return try await store.writeClients(lockingOrg: found.orgID) { tx, clients in
            let viaRoot = try await authorize(actor, orgID: found.orgID, in: tx, at: at)
            guard var client = try await clients.client(id: id) else { throw ClientError.notFound("no such client") }
            let before = client
            if let name { client.name = name }
            if let redirectURIs { client.redirectURIs = redirectURIs }
            if let scopes { client.scopes = scopes }
            if let firstParty = fields.firstParty { client.firstParty = firstParty }
            try Self.apply(fields, to: &client)
            guard client != before else { return (client, nil) }
            if client.serviceAccountID != before.serviceAccountID { try await mayBind(actor, client, in: tx, clients, at: at) }
            client.updatedAt = at
            try await clients.update(client)
            try await tx.appendAudit(Self.event(actor, at: at, AuditAction.clientUpdated, client, viaRoot: viaRoot))
            return (client, try await tx.recordChange(.clientChanged(id), at: at))
        }
    }

    /// A new secret for a confidential client; the old one stops working at once.
    public func rotateSecret(actor: Actor, id: UUID) async throws -> RegisteredClient {
        let found = try await client(actor: actor, id: id)
        guard found.kind == .confidential else { throw ClientError.invalid("a public client has no secret") }
        let at = now()
        let secret = Self.mintSecret()
        return try await store.writeClients(lockingOrg: found.orgID) { tx, clients in
            let viaRoot = try await authorize(actor, orgID: found.orgID, in: tx, at: at)
            guard let client = try await clients.client(id: id) else { throw ClientError.notFound("no such client") }
            // The secret is the bound service account's authority: the same rank rule as binding it.
            try await mayBind(actor, client, in: tx, clients, at: at)
            try await clients.setSecret(id: id, hash: Secrets.hash(secret), at: at)
            try await tx.appendAudit(Self.event(actor, at: at, AuditAction.clientSecretRotated, client, viaRoot: viaRoot))
            return RegisteredClient(client: client, secret: secret, revision: try await tx.recordChange(.clientChanged(id), at: at))
        }
    }

    public func delete(actor: Actor, id: UUID) async throws -> Int64 {
        let found = try await client(actor: actor, id: id)
        let at = now()
        return try await store.writeClients(lockingOrg: found.orgID) { tx, clients in
            let viaRoot = try await authorize(actor, orgID: found.orgID, in: tx, at: at)
            guard let client = try await clients.client(id: id) else { throw ClientError.notFound("no such client") }
            // Its people's sessions with it end here and on every node (the change log).
            for session in try await clients.delete(id: id, at: at) { _ = try await tx.recordChange(.sessionRevoked(session), at: at) }
            try await tx.appendAudit(Self.event(actor, at: at, AuditAction.clientDeleted, client, viaRoot: viaRoot))
            return try await tx.recordChange(.clientChanged(id), at: at)
        }
    }

    /// Whether `secret` is the confidential client's current secret (constant time).
    public func authenticate(clientID: UUID, secret: String) async throws -> OAuthClient? {
        guard let (client, hash) = try await store.client(id: clientID), client.kind == .confidential,
              Self.secretMatches(secret, hash) else { return nil }
        return client
    }

    /// `secret` against a stored secret hash, in constant time.
    public static func secretMatches(_ secret: String, _ hash: String?) -> Bool {
        guard let hash, secret.utf8.count <= 512 else { return false }
        return Secrets.constantTimeEquals(Secrets.hash(secret), hash)
    }

    static func event(_ actor: Actor, at: Date, _ action: String, _ client: OAuthClient, viaRoot: Bool) -> AuditEvent {
        TenancyService.event(
            actor, at: at, action, org: client.orgID, target: "client:\(client.id.lowercasedString)",
            ["name": .string(client.name), "type": .string(client.kind.rawValue),
             "redirect_uris": .array(client.redirectURIs.map(JSONValue.string)), "scopes": .array(client.scopes.map(JSONValue.string)),
             "first_party": .bool(client.firstParty), "id_token_signed_response_alg": .string(client.idTokenAlgorithm.rawValue),
             "service_account_id": client.serviceAccountID.map { .string($0.lowercasedString) } ?? .null,
             "access_token_lifetime": client.accessTokenLifetime.map { .number(Double($0)) } ?? .null,
             "refresh_token_lifetime": client.refreshTokenLifetime.map { .number(Double($0)) } ?? .null,
             "claim_template": client.claimTemplate?.json ?? .null],
            viaRoot: viaRoot)
    }
}
