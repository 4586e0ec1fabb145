import Authority
import Foundation
import Identity
import Keys
import Policy
import Tenancy
import Wire

/// A whole instance as one JSON document: users (with their argon2id hashes, so logins keep
/// working), orgs, memberships and the audit log. Sessions, refresh tokens and signing keys are
/// left out on purpose: they are bound to the instance's master key and die with a restore.
/// No secret appears in clear, but the hashes make a backup sensitive.
public struct BackupDocument: Codable, Sendable, Equatable {
    public static let currentVersion = 1

    public var version: Int
    public var createdAt: Date
    public var users: [User]
    public var orgs: [Org]
    public var memberships: [Membership]
    public var auditEvents: [AuditEvent]
    public var bindings: [Binding]
    public var serviceAccounts: [ServiceAccount]
    /// Keys with the SHA-256 of their secret (never the secret): they keep working after a restore.
    public var apiKeys: [APIKey]
    /// Invites with the hash of their token (links already mailed keep working).
    public var invites: [Invite]
    public var platformInvites: [PlatformInvite]?
    /// OpenID clients with the SHA-256 of a confidential client's secret (absent in older backups).
    public var oauthClients: [OAuthClient]?
    /// What people allowed OpenID clients (absent in older backups): no consent screen again
    /// after a restore.
    public var oauthConsents: [OAuthConsent]?
    /// Groups, their user and service-account members, and overrides (absent in older backups).
    public var groups: [Group]?
    public var groupMembers: [GroupMember]?
    public var overrides: [Override]?
    /// Upstream sign-in providers and linked identities (absent in older backups).
    public var identityProviders: [IdentityProvider]?
    public var userIdentities: [UserIdentity]?

    // Ids are lowercase strings, as in the API (JSONEncoder would write UUIDs in upper case).
    public struct User: Codable, Sendable, Equatable {
        public var id: String
        public var email: String
        public var name: String
        public var emailVerified: Bool
        public var isRoot: Bool
        public var passwordHash: String
        public var createdAt: Date
        public var updatedAt: Date
    }

    public struct Org: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        public var description: String
        public var metadata: [String: JSONValue]
        public var createdAt: Date
        public var updatedAt: Date
        public var maxKeyTtl: Int?
    }

    public struct Membership: Codable, Sendable, Equatable {
        public var orgId: String
        public var userId: String
        public var role: Role
        public var expiresAt: Date?
        public var createdAt: Date
        public var updatedAt: Date
        public var auditEventId: String?
    }

    public struct Binding: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String
        /// `user` or `service_account`.
        public var subjectType: String
        public var subjectId: String
        /// The full object string.
        public var resource: String
        public var role: Role
        public var expiresAt: Date?
        public var createdAt: Date
        public var updatedAt: Date
        public var auditEventId: String?
    }

    public struct Invite: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String
        public var email: String
        public var role: Role
        public var state: String
        public var dormant: Bool
        public var tokenHash: String
        public var inviterId: String?
        public var platformInviteId: String?
        public var createdAt: Date
        public var expiresAt: Date
    }

    public struct PlatformInvite: Codable, Sendable, Equatable {
        public var id: String
        public var email: String
        public var state: String
        public var tokenHash: String
        public var inviterId: String?
        public var createdAt: Date
        public var expiresAt: Date
    }

    public struct ServiceAccount: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String
        public var name: String
        public var role: Role
        public var createdAt: Date
    }

    public struct APIKey: Codable, Sendable, Equatable {
        public var id: String
        public var prefix: String
        public var secretHash: String
        public var name: String
        public var userId: String?
        public var serviceAccountId: String?
        public var scopes: [String]
        public var createdAt: Date
        public var expiresAt: Date?
        public var lastUsedAt: Date?
        public var revokedAt: Date?
        /// Made while the owner's address was unproven (a password reset revokes it); absent in
        /// older backups, where it is taken from the owner's current state.
        public var beforeProof: Bool?
    }

    public struct OAuthClient: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String?
        public var name: String
        /// `confidential` or `public`.
        public var kind: String
        public var secretHash: String?
        public var redirectUris: [String]
        public var scopes: [String]
        public var firstParty: Bool
        public var createdAt: Date
        public var updatedAt: Date
        // Token settings (absent in older backups: the defaults).
        public var idTokenSignedResponseAlg: String?
        public var accessTokenLifetime: Int?
        public var refreshTokenLifetime: Int?
        public var claimTemplate: JSONValue?
        public var serviceAccountId: String?
    }

    public struct OAuthConsent: Codable, Sendable, Equatable {
        public var userId: String
        public var clientId: String
        public var scopes: [String]
        public var grantedAt: Date
    }

    public struct AuditEvent: Codable, Sendable, Equatable {
        public var id: String
        public var at: Date
        public var actorType: String
        public var actorId: String?
        public var action: String
        public var orgId: String?
        public var target: String
        public var details: [String: JSONValue]
    }

    /// Snake_case keys, lowercase UUIDs, RFC 3339 timestamps with microseconds (the stored precision).
    public static func encode(_ document: BackupDocument) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(RFC3339.string(date, fractionDigits: 6))
        }
        return try encoder.encode(document)
    }

    public static func decode(_ data: Data) throws -> BackupDocument {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            guard let date = RFC3339.date(try c.decode(String.self)) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 timestamp")
            }
            return date
        }
        do {
            return try decoder.decode(BackupDocument.self, from: data)
        } catch let error as DecodingError {
            throw BackupError.invalid("not a Portcullis backup: \(Self.describe(error))")
        } catch {
            throw BackupError.invalid("not a Portcullis backup: the document is not valid JSON")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? KeyCase.snake($0.stringValue) }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let c): return "missing \(path(c).isEmpty ? "" : path(c) + ".")\(KeyCase.snake(key.stringValue))"
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "the document is not valid JSON" : "\(path(c)) is not valid"
        @unknown default: return "the document is not valid"
        }
    }
}

/// Why a backup could not be read or restored (400 and 409 at the HTTP edge).
public enum BackupError: Error, Sendable, Equatable {
    /// The document is not a backup this server can restore, with the reason.
    case invalid(String)
    /// The instance is not empty.
    case conflict(String)
}
