import Authority
import Foundation
import Identity
import Tenancy
import Memberwise

/// An org-owned, non-human principal with one org role and its own API keys.
@PublicInit
public struct ServiceAccount: Sendable, Equatable {
    public var id: UUID
    public var orgID: UUID
    public var name: String
    public var role: Role
    public var createdAt: Date
}

/// Reads and writes of API keys and service accounts.
public protocol KeyStore: Sendable {
    func keys(owner: KeyOwner, limit: Int, offset: Int) async throws -> ([APIKey], Int)
    func key(id: UUID) async throws -> APIKey?
    func serviceAccounts(orgID: UUID, limit: Int, offset: Int) async throws -> ([ServiceAccount], Int)
    func serviceAccount(id: UUID) async throws -> ServiceAccount?
    /// The org's `settings.max_key_ttl` in seconds, if it has one.
    func maxKeyTTL(orgID: UUID) async throws -> Int?
    /// One transaction (the org locked when given) with tenancy and key statements.
    func writeKeys<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter, any KeyWriter) async throws -> T) async throws -> T
}

public protocol KeyWriter: Sendable {
    func insertKey(_ key: APIKey, secretHash: String) async throws
    func revokeKey(id: UUID, at: Date) async throws -> Bool
    func insertServiceAccount(_ account: ServiceAccount) async throws
    func serviceAccount(id: UUID) async throws -> ServiceAccount?
    func deleteServiceAccount(id: UUID) async throws
    func maxKeyTTL(orgID: UUID) async throws -> Int?
}

/// Why a key or service-account operation was refused (mapped to a problem at the HTTP edge).
public enum KeyError: Error, Sendable, Equatable {
    /// A field failed validation (400).
    case invalid(String)
    /// The caller may not do this with this key or account (403).
    case forbidden(String)
    /// No such key or service account, or not one the caller may know of (404).
    case notFound(String)
}
