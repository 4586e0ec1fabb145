import Authority
import Foundation
import Identity
import OpenID
import Tenancy

/// OpenID clients on either SQL backend.
public struct SQLClientStore: SQLStore, ClientStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    static let columns = """
        id, org_id, name, kind, redirect_uris, scopes, first_party, created_at, updated_at, \
        id_token_alg, access_token_lifetime, refresh_token_lifetime, claim_template, service_account_id, secret_rotated_at
        """

    static func decode(_ row: SQLRow) throws -> OAuthClient {
        guard let kind = OAuthClient.Kind(rawValue: try row.string("kind")) else { throw StorageError.other("oauth_clients.kind is unknown") }
        guard let algorithm = SigningAlgorithm(rawValue: try row.string("id_token_alg")) else { throw StorageError.other("oauth_clients.id_token_alg is unknown") }
        var client = OAuthClient(
            id: try row.uuid("id"), orgID: try row.optionalUUID("org_id"), name: try row.string("name"), kind: kind,
            redirectURIs: try row.stringList("redirect_uris"), scopes: try row.stringList("scopes"), firstParty: try row.bool("first_party"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
        client.idTokenAlgorithm = algorithm
        client.accessTokenLifetime = try row.optionalInt("access_token_lifetime").map(Int.init)
        client.refreshTokenLifetime = try row.optionalInt("refresh_token_lifetime").map(Int.init)
        // Checked when it was stored; a template that no longer parses gives no claims rather than wrong ones.
        client.claimTemplate = try row.optionalString("claim_template").flatMap { try? ClaimTemplate.parse(.object(JSONValue.object(fromJSON: $0))) }
        client.serviceAccountID = try row.optionalUUID("service_account_id")
        client.secretRotatedAt = try row.optionalDate("secret_rotated_at")
        return client
    }

    static func templateText(_ client: OAuthClient) -> String? { client.claimTemplate?.json.canonicalJSON }

    public func client(id: UUID) async throws -> (OAuthClient, secretHash: String?)? {
        guard let row = try await db.queryFirst("SELECT \(Self.columns), secret_hash FROM oauth_clients WHERE id = $1", id) else { return nil }
        return (try Self.decode(row), try row.optionalString("secret_hash"))
    }

    public func clients(orgID: UUID?, limit: Int, offset: Int) async throws -> ([OAuthClient], Int) {
        let (condition, binds) = SQLTenancyStore.orgOrPlatform(orgID)
        return try await db.page(
            select: Self.columns, "FROM oauth_clients WHERE \(condition)", orderBy: "created_at, id", binds, limit: limit, offset: offset, Self.decode)
    }

    public func writeClients<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter, any ClientWriter) async throws -> T) async throws -> T {
        try await SQLTenancyStore.write(db, observer: observer, lockingOrg: orgID) { tx in
            try await body(SQLTenancyStore.Writer(tx: tx), Writer(tx: tx))
        }
    }

    struct Writer: ClientWriter {
        let tx: any SQLExecutor

        func client(id: UUID) async throws -> OAuthClient? {
            try await tx.queryFirst("SELECT \(SQLClientStore.columns) FROM oauth_clients WHERE id = $1", id).map(SQLClientStore.decode)
        }

        func insert(_ c: OAuthClient, secretHash: String?) async throws {
            try await tx.execute(
                "INSERT INTO oauth_clients (\(SQLClientStore.columns), secret_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                c.id, c.orgID, c.name, c.kind.rawValue, StringList.json(c.redirectURIs), StringList.json(c.scopes), c.firstParty,
                c.createdAt, c.updatedAt, c.idTokenAlgorithm.rawValue, c.accessTokenLifetime, c.refreshTokenLifetime, SQLClientStore.templateText(c),
                c.serviceAccountID, c.secretRotatedAt, secretHash)
        }

        func update(_ c: OAuthClient) async throws {
            try await tx.execute(
                """
                UPDATE oauth_clients SET name = $2, redirect_uris = $3, scopes = $4, first_party = $5, updated_at = $6, id_token_alg = $7,
                    access_token_lifetime = $8, refresh_token_lifetime = $9, claim_template = $10, service_account_id = $11
                WHERE id = $1
                """,
                c.id, c.name, StringList.json(c.redirectURIs), StringList.json(c.scopes), c.firstParty, c.updatedAt, c.idTokenAlgorithm.rawValue,
                c.accessTokenLifetime, c.refreshTokenLifetime, SQLClientStore.templateText(c), c.serviceAccountID)
        }

        func serviceAccount(id: UUID) async throws -> (orgID: UUID, role: Role)? {
            guard let row = try await tx.queryFirst("SELECT org_id, role FROM service_accounts WHERE id = $1", id),
                  let role = Role(rawValue: try row.string("role")) else { return nil }
            return (try row.uuid("org_id"), role)
        }

        func setSecret(id: UUID, hash: String?, at: Date) async throws {
            try await tx.execute("UPDATE oauth_clients SET secret_hash = $2, secret_rotated_at = $3 WHERE id = $1", id, hash, at)
        }

        func delete(id: UUID, at: Date) async throws -> [UUID] {
            let ended = try await tx.query(
                """
                UPDATE sessions SET revoked_at = $2, revoke_reason = 'client_deleted'
                WHERE id IN (SELECT session_id FROM oauth_sessions WHERE client_id = $1) AND revoked_at IS NULL RETURNING id
                """, id, at).map { try $0.uuid("id") }
            try await tx.execute("DELETE FROM oauth_clients WHERE id = $1", id)
            return ended
        }
    }
}
