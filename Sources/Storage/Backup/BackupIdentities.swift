import Authority
import Federation
import Foundation

/// Upstream sign-in providers and the identities linked through them (SPEC §15), absent in
/// older backups. A provider's client secret travels sealed with the master key: an instance
/// restored with another master key keeps the providers, and the root sets their secrets again.
extension BackupDocument {
    public struct IdentityProvider: Codable, Sendable, Equatable {
        public var id: String
        public var kind: String
        public var displayName: String
        public var clientId: String
        public var sealedSecret: String
        public var scopes: [String]
        public var issuer: String?
        public var webBaseUrl: String?
        public var apiBaseUrl: String?
        public var enabled: Bool
        public var createdAt: Date
        public var updatedAt: Date
    }

    public struct UserIdentity: Codable, Sendable, Equatable {
        public var id: String
        public var userId: String
        public var providerId: String
        public var subject: String
        public var email: String
        public var createdAt: Date
        public var lastUsedAt: Date?
    }
}

extension SQLBackup {
    struct IdentityRecords {
        var providers: [UpstreamProvider] = []
        var identities: [LinkedIdentity] = []
    }

    static func validateIdentities(_ d: BackupDocument, userIDs: Set<UUID>) throws -> IdentityRecords {
        var r = IdentityRecords()
        var providerIDs = Set<String>()
        for p in d.identityProviders ?? [] {
            guard let kind = ProviderKind(rawValue: p.kind) else { throw BackupError.invalid("identity provider \(p.id.prefix(40)): kind must be github, google or oidc") }
            guard !p.id.isEmpty, p.id.utf8.count <= 32, p.id.utf8.allSatisfy({ (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }) else {
                throw BackupError.invalid("identity provider id \(p.id.prefix(40)) is not a provider id")
            }
            guard providerIDs.insert(p.id).inserted else { throw BackupError.invalid("identity provider \(p.id) appears twice") }
            guard !p.clientId.isEmpty, !p.sealedSecret.isEmpty else { throw BackupError.invalid("identity provider \(p.id) has no client id or secret") }
            r.providers.append(UpstreamProvider(
                id: p.id, kind: kind, displayName: p.displayName, clientID: p.clientId, sealedSecret: p.sealedSecret, scopes: p.scopes,
                issuer: p.issuer, webBaseURL: p.webBaseUrl, apiBaseURL: p.apiBaseUrl, enabled: p.enabled, createdAt: p.createdAt, updatedAt: p.updatedAt))
        }
        var seen = Set<String>()
        for i in d.userIdentities ?? [] {
            guard let id = UUIDText.parse(i.id), let user = UUIDText.parse(i.userId) else { throw BackupError.invalid("user identity \(i.id.prefix(40)) has an id that is not a UUID") }
            guard userIDs.contains(user) else { throw BackupError.invalid("user identity \(i.id) refers to a user that is not in the backup") }
            guard providerIDs.contains(i.providerId) else { throw BackupError.invalid("user identity \(i.id) refers to a provider that is not in the backup") }
            guard !i.subject.isEmpty, i.subject.utf8.count <= 255, seen.insert("\(i.providerId)/\(i.subject)").inserted else {
                throw BackupError.invalid("user identity \(i.id): the subject is empty, too long, or linked twice")
            }
            r.identities.append(LinkedIdentity(
                id: id, userID: user, providerID: i.providerId, subject: i.subject, email: i.email, createdAt: i.createdAt, lastUsedAt: i.lastUsedAt))
        }
        return r
    }

    static func exportIdentities(_ tx: any SQLExecutor) async throws -> ([BackupDocument.IdentityProvider], [BackupDocument.UserIdentity]) {
        let providers = try await tx.query("SELECT \(SQLFederationStore.providerColumns) FROM identity_providers ORDER BY id").map { row in
            let p = try SQLFederationStore.decodeProvider(row)
            return BackupDocument.IdentityProvider(
                id: p.id, kind: p.kind.rawValue, displayName: p.displayName, clientId: p.clientID, sealedSecret: p.sealedSecret, scopes: p.scopes,
                issuer: p.issuer, webBaseUrl: p.webBaseURL, apiBaseUrl: p.apiBaseURL, enabled: p.enabled, createdAt: p.createdAt, updatedAt: p.updatedAt)
        }
        let identities = try await tx.query("SELECT \(SQLFederationStore.identityColumns) FROM user_identities ORDER BY created_at, id").map { row in
            let i = try SQLFederationStore.decodeIdentity(row)
            return BackupDocument.UserIdentity(
                id: i.id.lowercasedString, userId: i.userID.lowercasedString, providerId: i.providerID, subject: i.subject, email: i.email,
                createdAt: i.createdAt, lastUsedAt: i.lastUsedAt)
        }
        return (providers, identities)
    }

    static func restoreIdentities(_ r: IdentityRecords, _ tx: any SQLExecutor) async throws {
        for p in r.providers {
            try await tx.execute(
                "INSERT INTO identity_providers (\(SQLFederationStore.providerColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                p.id, p.kind.rawValue, p.displayName, p.clientID, p.sealedSecret, p.scopes.joined(separator: " "), p.issuer, p.webBaseURL,
                p.apiBaseURL, p.enabled, p.createdAt, p.updatedAt)
        }
        for i in r.identities { try await SQLFederationStore.insertIdentity(tx, i) }
    }
}
