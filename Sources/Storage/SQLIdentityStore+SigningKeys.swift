import Authority
import Foundation
import Identity
import Tenancy

/// The instance's signing keys (sealed private keys, the change log entry of each rotation).
extension SQLIdentityStore {
    // MARK: Signing keys

    public func signingKeys() async throws -> [SigningKeyRecord] {
        try await db.query(
            "SELECT kid, algorithm, public_key_pem, sealed_private_key, created_at, retired_at, publish_until FROM signing_keys ORDER BY created_at"
        ).map { row in
            SigningKeyRecord(
                kid: try row.string("kid"), algorithm: try row.string("algorithm"),
                publicKeyPEM: try row.string("public_key_pem"), sealedPrivateKey: try row.string("sealed_private_key"),
                createdAt: try row.date("created_at"), retiredAt: try row.optionalDate("retired_at"),
                publishUntil: try row.optionalDate("publish_until"))
        }
    }

    static let signingKeyLock: Int64 = 0x5043_4C4B_4559 // "PCLKEY"

    public func activateFirstKey(_ key: SigningKeyRecord) async throws -> Bool {
        try await write { tx in
            try await Self.lockSigningKeys(tx)
            if try await tx.queryFirst("SELECT kid FROM signing_keys WHERE retired_at IS NULL AND algorithm = $1 LIMIT 1", key.algorithm) != nil {
                return false
            }
            _ = try await Self.activate(tx, key, retiredPublishUntil: key.createdAt)
            return true
        }
    }

    public func rotateKey(to key: SigningKeyRecord, retiredPublishUntil: Date, actor: Principal?) async throws -> Revision {
        try await write { tx in
            try await Self.lockSigningKeys(tx)
            try await Self.auditRotation(tx, key, actor: actor)
            return try await Self.activate(tx, key, retiredPublishUntil: retiredPublishUntil)
        }
    }

    public func rotateKey(ifActiveOlderThan cutoff: Date, to key: SigningKeyRecord, retiredPublishUntil: Date) async throws -> Revision? {
        try await write { tx in
            try await Self.lockSigningKeys(tx)
            let active = try await tx.queryFirst(
                "SELECT MAX(created_at) AS newest FROM signing_keys WHERE retired_at IS NULL AND algorithm = $1", key.algorithm)
            if let newest = try active?.optionalDate("newest"), newest >= cutoff { return nil }
            try await Self.auditRotation(tx, key, actor: nil)
            return try await Self.activate(tx, key, retiredPublishUntil: retiredPublishUntil)
        }
    }

    static func auditRotation(_ tx: any SQLExecutor, _ key: SigningKeyRecord, actor: Principal?) async throws {
        try await SQLTenancyStore.Writer(tx: tx).appendAudit(AuditEvent(
            at: key.createdAt, actorType: actor?.typeName ?? "system", actorID: actor?.id, action: AuditAction.signingKeyRotated,
            orgID: nil, target: "signing_key:\(key.kid)", details: ["kid": .string(key.kid)]))
    }

    /// Serializes key activation across nodes (PostgreSQL); SQLite's BEGIN IMMEDIATE already does.
    static func lockSigningKeys(_ tx: any SQLExecutor) async throws {
        try await tx.lockForTransaction(signingKeyLock)
    }

    /// Retires the active keys of `key`'s algorithm and inserts `key` as the active one, inside
    /// the caller's transaction.
    static func activate(_ tx: any SQLExecutor, _ key: SigningKeyRecord, retiredPublishUntil: Date) async throws -> Revision {
        try await tx.execute(
            "UPDATE signing_keys SET retired_at = $1, publish_until = $2 WHERE retired_at IS NULL AND algorithm = $3",
            key.createdAt, retiredPublishUntil, key.algorithm)
        try await tx.execute(
            "INSERT INTO signing_keys (kid, algorithm, public_key_pem, sealed_private_key, created_at) VALUES ($1, $2, $3, $4, $5)",
            key.kid, key.algorithm, key.publicKeyPEM, key.sealedPrivateKey, key.createdAt)
        return try await ChangeLog.append(tx, .signingKeysChanged(kid: key.kid), at: key.createdAt)
    }
}
