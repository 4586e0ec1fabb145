import Authority
import Foundation
import Identity
import Tenancy

/// A key as created: the record and the secret, shown once.
public struct CreatedKey: Sendable {
    public var key: APIKey
    public var secret: String
    public var revision: Int64
}

/// User API keys, service accounts and their keys (SPEC §3, issue "API keys").
public struct KeyService: Sendable {
    public let store: any KeyStore
    public let tenancy: TenancyService
    let now: @Sendable () -> Date

    static let maxNameLength = 200
    /// Ten years: longer than any sane automation credential.
    static let maxLifetime = 10 * 365 * 86_400

    public init(store: any KeyStore, tenancy: TenancyService, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.tenancy = tenancy
        self.now = now
    }

    /// The same rules as org names: 1 to 200 characters, no control characters.
    static func name(_ raw: String) throws -> String {
        try OrgFields.name(raw)
    }

    static func lifetime(_ seconds: Int?) throws -> Int? {
        guard let seconds else { return nil }
        guard (60...maxLifetime).contains(seconds) else { throw KeyError.invalid("expires_in must be from 60 seconds to 10 years") }
        return seconds
    }

    /// Orgs named by `org:` scopes must cap the lifetime by their `max_key_ttl`. Returns the expiry.
    /// Only orgs the owner is in count: a scope naming any other org grants nothing, and
    /// answering with its policy would tell a stranger the org exists.
    func expiry(_ lifetime: Int?, scopedOrgs: [UUID], owner: Actor, at: Date, in tx: any KeyWriter, _ tenancy: any TenancyWriter) async throws -> Date? {
        var limit: Int?
        for org in scopedOrgs {
            var member = owner.serviceAccountGrant?.orgID == org
            if !member { member = try await tenancy.membership(orgID: org, userID: owner.userID)?.isCurrent(at: at) == true }
            guard member, let ttl = try await tx.maxKeyTTL(orgID: org) else { continue }
            limit = min(limit ?? ttl, ttl)
        }
        guard let limit else { return lifetime.map { at.addingTimeInterval(Double($0)) } }
        if let lifetime, lifetime > limit {
            throw KeyError.invalid("expires_in exceeds the org's max_key_ttl of \(limit) seconds")
        }
        return at.addingTimeInterval(Double(lifetime ?? limit))
    }

    // MARK: User keys

    /// Creates a key for the user. Scopes are validated by the caller (they are a policy matter).
    public func createUserKey(actor: Actor, name: String, expiresIn: Int?, scopes: [String], scopedOrgs: [UUID]) async throws -> CreatedKey {
        let name = try Self.name(name)
        let lifetime = try Self.lifetime(expiresIn)
        let at = now()
        let minted = APIKeyFormat.mint()
        return try await store.writeKeys(lockingOrg: nil) { tx, keys in
            let key = APIKey(
                id: UUID(), prefix: minted.prefix, name: name, owner: .user(actor.userID), scopes: scopes, createdAt: at,
                expiresAt: try await expiry(lifetime, scopedOrgs: scopedOrgs, owner: actor, at: at, in: keys, tx))
            try await keys.insertKey(key, secretHash: minted.secretHash)
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.keyCreated, org: nil, target: "key:\(key.id.lowercasedString)",
                ["name": .string(name), "prefix": .string(key.prefix), "scopes": .array(scopes.map(JSONValue.string))]))
            let revision = try await tx.recordChange(.keyCreated(key.id), at: at)
            return CreatedKey(key: key, secret: minted.key, revision: revision)
        }
    }

    public func userKeys(actor: Actor, limit: Int, offset: Int) async throws -> ([APIKey], Int) {
        try await store.keys(owner: .user(actor.userID), limit: limit, offset: offset)
    }

    public func userKey(actor: Actor, id: UUID) async throws -> APIKey {
        guard let key = try await store.key(id: id), key.owner == .user(actor.userID), key.revokedAt == nil else {
            throw KeyError.notFound("no such key")
        }
        return key
    }

    public func revokeUserKey(actor: Actor, id: UUID) async throws -> Int64 {
        let key = try await userKey(actor: actor, id: id)
        return try await revoke(key, actor: actor, org: nil)
    }

    func revoke(_ key: APIKey, actor: Actor, org: UUID?) async throws -> Int64 {
        let at = now()
        return try await store.writeKeys(lockingOrg: org) { tx, keys in
            guard try await keys.revokeKey(id: key.id, at: at) else { throw KeyError.notFound("no such key") }
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.keyRevoked, org: org, target: "key:\(key.id.lowercasedString)",
                ["name": .string(key.name), "prefix": .string(key.prefix)]))
            return try await tx.recordChange(.keyRevoked(key.id), at: at)
        }
    }

    // MARK: Service accounts

    public func serviceAccounts(actor: Actor, orgID: UUID, limit: Int, offset: Int) async throws -> ([ServiceAccount], Int) {
        _ = try await tenancy.access(Permission.serviceAccountsWrite, actor: actor, orgID: orgID)
        return try await store.serviceAccounts(orgID: orgID, limit: limit, offset: offset)
    }

    public func createServiceAccount(actor: Actor, orgID: UUID, name: String, role: Role) async throws -> (ServiceAccount, Int64) {
        let name = try Self.name(name)
        let at = now()
        return try await store.writeKeys(lockingOrg: orgID) { tx, keys in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.serviceAccountsWrite, actor: actor, orgID: orgID, in: tx, at: at)
            guard RankRules.mayGrant(actor: actorRole, role: role) else { throw KeyError.forbidden("a service account's role may not exceed your own") }
            let account = ServiceAccount(id: UUID(), orgID: orgID, name: name, role: role, createdAt: at)
            try await keys.insertServiceAccount(account)
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.serviceAccountCreated, org: orgID, target: "service_account:\(account.id.lowercasedString)",
                ["name": .string(name), "role": .string(role.rawValue)], viaRoot: viaRoot))
            let revision = try await tx.recordChange(.serviceAccountChanged(org: orgID, account: account.id), at: at)
            return (account, revision)
        }
    }

    /// Deletes the account; its keys and bindings go with it.
    public func deleteServiceAccount(actor: Actor, orgID: UUID, id: UUID) async throws -> Int64 {
        let at = now()
        return try await store.writeKeys(lockingOrg: orgID) { tx, keys in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.serviceAccountsWrite, actor: actor, orgID: orgID, in: tx, at: at)
            guard let account = try await keys.serviceAccount(id: id), account.orgID == orgID else { throw KeyError.notFound("no such service account") }
            guard RankRules.mayManageGrant(actor: actorRole, grant: account.role) else { throw KeyError.forbidden("this service account's role exceeds your own") }
            try await keys.deleteServiceAccount(id: id)
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.serviceAccountDeleted, org: orgID, target: "service_account:\(id.lowercasedString)",
                ["name": .string(account.name), "role": .string(account.role.rawValue)], viaRoot: viaRoot))
            return try await tx.recordChange(.serviceAccountChanged(org: orgID, account: id), at: at)
        }
    }

    func account(actor: Actor, orgID: UUID, id: UUID) async throws -> ServiceAccount {
        let actorRole = try await tenancy.access(Permission.serviceAccountsWrite, actor: actor, orgID: orgID)
        guard let account = try await store.serviceAccount(id: id), account.orgID == orgID else { throw KeyError.notFound("no such service account") }
        guard RankRules.mayManageGrant(actor: actorRole, grant: account.role) else { throw KeyError.forbidden("this service account's role exceeds your own") }
        return account
    }

    public func createServiceAccountKey(actor: Actor, orgID: UUID, accountID: UUID, name: String, expiresIn: Int?, scopes: [String], scopedOrgs: [UUID]) async throws -> CreatedKey {
        let name = try Self.name(name)
        let lifetime = try Self.lifetime(expiresIn)
        let at = now()
        let minted = APIKeyFormat.mint()
        return try await store.writeKeys(lockingOrg: orgID) { tx, keys in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.serviceAccountsWrite, actor: actor, orgID: orgID, in: tx, at: at)
            guard let account = try await keys.serviceAccount(id: accountID), account.orgID == orgID else { throw KeyError.notFound("no such service account") }
            guard RankRules.mayManageGrant(actor: actorRole, grant: account.role) else { throw KeyError.forbidden("this service account's role exceeds your own") }
            let key = APIKey(
                id: UUID(), prefix: minted.prefix, name: name, owner: .serviceAccount(id: accountID, orgID: orgID), scopes: scopes, createdAt: at,
                expiresAt: try await expiry(lifetime, scopedOrgs: [orgID], owner: .serviceAccount(accountID, scopes: nil, grant: .init(orgID: orgID, role: account.role)), at: at, in: keys, tx))
            try await keys.insertKey(key, secretHash: minted.secretHash)
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.keyCreated, org: orgID, target: "key:\(key.id.lowercasedString)",
                ["name": .string(name), "prefix": .string(key.prefix), "service_account_id": .string(accountID.lowercasedString)], viaRoot: viaRoot))
            let revision = try await tx.recordChange(.keyCreated(key.id), at: at)
            return CreatedKey(key: key, secret: minted.key, revision: revision)
        }
    }

    public func serviceAccountKeys(actor: Actor, orgID: UUID, accountID: UUID, limit: Int, offset: Int) async throws -> ([APIKey], Int) {
        _ = try await account(actor: actor, orgID: orgID, id: accountID)
        return try await store.keys(owner: .serviceAccount(id: accountID, orgID: orgID), limit: limit, offset: offset)
    }

    public func revokeServiceAccountKey(actor: Actor, orgID: UUID, accountID: UUID, keyID: UUID) async throws -> Int64 {
        let account = try await account(actor: actor, orgID: orgID, id: accountID)
        guard let key = try await store.key(id: keyID), key.owner == .serviceAccount(id: account.id, orgID: orgID), key.revokedAt == nil else {
            throw KeyError.notFound("no such key")
        }
        return try await revoke(key, actor: actor, org: orgID)
    }
}
