import Foundation
import Identity
import Keys
import Policy
import Tenancy

/// API keys and service accounts on either SQL backend.
public struct SQLKeyStore: SQLStore, KeyStore, APIKeyLookup {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    static let keyColumns = "id, prefix, name, user_id, service_account_id, org_id, scopes, created_at, expires_at, last_used_at, revoked_at"
    static let accountColumns = "id, org_id, name, role, created_at"

    static func decodeKey(_ row: SQLRow) throws -> APIKey {
        let owner: KeyOwner
        if let user = try row.optionalUUID("user_id") {
            owner = .user(user)
        } else {
            owner = .serviceAccount(id: try row.uuid("service_account_id"), orgID: try row.uuid("org_id"))
        }
        let scopes = try row.stringList("scopes")
        return APIKey(
            id: try row.uuid("id"), prefix: try row.string("prefix"), name: try row.string("name"), owner: owner, scopes: scopes,
            createdAt: try row.date("created_at"), expiresAt: try row.optionalDate("expires_at"),
            lastUsedAt: try row.optionalDate("last_used_at"), revokedAt: try row.optionalDate("revoked_at"))
    }

    static func decodeAccount(_ row: SQLRow) throws -> ServiceAccount {
        ServiceAccount(id: try row.uuid("id"), orgID: try row.uuid("org_id"), name: try row.string("name"),
                       role: try SQLTenancyStore.decodeRole(row), createdAt: try row.date("created_at"))
    }

    // MARK: APIKeyLookup

    public func key(prefix: String) async throws -> (APIKey, secretHash: String)? {
        guard let row = try await db.queryFirst("SELECT \(Self.keyColumns), secret_hash FROM api_keys WHERE prefix = $1", prefix) else { return nil }
        return (try Self.decodeKey(row), try row.string("secret_hash"))
    }

    public func recordUse(_ uses: [UUID: Date]) async throws {
        try await db.transaction { tx in
            for (id, at) in uses {
                try await tx.execute(
                    "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)", id, at)
            }
        }
    }

    // MARK: KeyStore

    public func keys(owner: KeyOwner, limit: Int, offset: Int) async throws -> ([APIKey], Int) {
        let (column, id): (String, UUID)
        switch owner {
        case .user(let u): (column, id) = ("user_id", u)
        case .serviceAccount(let a, _): (column, id) = ("service_account_id", a)
        }
        return try await db.page(
            select: Self.keyColumns, "FROM api_keys WHERE \(column) = $1 AND revoked_at IS NULL", orderBy: "created_at, id", [id.sqlValue],
            limit: limit, offset: offset, Self.decodeKey)
    }

    public func key(id: UUID) async throws -> APIKey? {
        try await db.queryFirst("SELECT \(Self.keyColumns) FROM api_keys WHERE id = $1", id).map(Self.decodeKey)
    }

    public func serviceAccounts(orgID: UUID, limit: Int, offset: Int) async throws -> ([ServiceAccount], Int) {
        try await db.page(
            select: Self.accountColumns, "FROM service_accounts WHERE org_id = $1", orderBy: "created_at, id", [orgID.sqlValue],
            limit: limit, offset: offset, Self.decodeAccount)
    }

    public func serviceAccount(id: UUID) async throws -> ServiceAccount? {
        try await Writer(tx: db).serviceAccount(id: id)
    }

    public func maxKeyTTL(orgID: UUID) async throws -> Int? {
        try await Writer(tx: db).maxKeyTTL(orgID: orgID)
    }

    public func writeKeys<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter, any KeyWriter) async throws -> T) async throws -> T {
        try await SQLTenancyStore.write(db, observer: observer, lockingOrg: orgID) { tx in
            try await body(SQLTenancyStore.Writer(tx: tx), Writer(tx: tx))
        }
    }

    struct Writer: KeyWriter {
        let tx: any SQLExecutor

        func insertKey(_ k: APIKey, secretHash: String) async throws {
            var user: UUID?, account: UUID?, org: UUID?
            switch k.owner {
            case .user(let u): user = u
            case .serviceAccount(let a, let o): (account, org) = (a, o)
            }
            // `before_proof` is read in the same transaction as the owner's address: a key made
            // while the address is unproven dies with the reset that proves it.
            try await tx.execute(
                """
                INSERT INTO api_keys (\(SQLKeyStore.keyColumns), secret_hash, before_proof)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                        COALESCE((SELECT email_verified = FALSE FROM users WHERE id = $4), FALSE))
                """,
                k.id, k.prefix, k.name, user, account, org, StringList.json(k.scopes), k.createdAt, k.expiresAt, k.lastUsedAt, k.revokedAt, secretHash)
        }

        func revokeKey(id: UUID, at: Date) async throws -> Bool {
            !(try await tx.query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id", id, at)).isEmpty
        }

        func insertServiceAccount(_ a: ServiceAccount) async throws {
            try await tx.execute(
                "INSERT INTO service_accounts (\(SQLKeyStore.accountColumns)) VALUES ($1, $2, $3, $4, $5)", a.id, a.orgID, a.name, a.role.rawValue, a.createdAt)
        }

        func serviceAccount(id: UUID) async throws -> ServiceAccount? {
            try await tx.queryFirst("SELECT \(SQLKeyStore.accountColumns) FROM service_accounts WHERE id = $1", id).map(SQLKeyStore.decodeAccount)
        }

        func deleteServiceAccount(id: UUID) async throws {
            // Bindings name their subject without a foreign key; they go with the account.
            try await tx.execute("DELETE FROM bindings WHERE subject_type = 'service_account' AND subject_id = $1", id)
            try await tx.execute("DELETE FROM overrides WHERE subject_type = 'service_account' AND subject_id = $1", id)
            try await tx.execute("DELETE FROM group_members WHERE member_type = 'service_account' AND member_id = $1", id)
            try await tx.execute("DELETE FROM service_accounts WHERE id = $1", id)
        }

        func maxKeyTTL(orgID: UUID) async throws -> Int? {
            try await tx.queryFirst("SELECT max_key_ttl FROM orgs WHERE id = $1", orgID)?.optionalInt("max_key_ttl").map(Int.init)
        }
    }
}
