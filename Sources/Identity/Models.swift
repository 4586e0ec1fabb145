import Foundation
import Memberwise

/// A person who can sign in. `email` is always the canonical form (`Email.canonical`: trimmed, NFC, lowercased).
@PublicInit
public struct User: Sendable, Equatable, Codable {
    public var id: UUID
    public var email: String
    public var name: String
    public var emailVerified: Bool
    public var isRoot: Bool
    public var createdAt: Date
    public var updatedAt: Date
}

/// A user together with the stored password hash; never leaves the server.
@PublicInit
public struct UserCredentials: Sendable {
    public var user: User
    public var passwordHash: String
}

/// A sign-in: the thing refresh tokens belong to and access tokens die with.
public struct Session: Sendable, Equatable {
    public var id: UUID
    public var userID: UUID
    public var createdAt: Date
    public var lastUsedAt: Date
    public var expiresAt: Date
    public var revokedAt: Date?
    public var userAgent: String
    public var ip: String
    /// The OpenID client the session was opened for (nil: Portcullis's own login) and the scope
    /// it was granted: a refresh keeps both, and only that client may refresh it.
    public var clientID: String?
    public var scope: String?

    public init(
        id: UUID, userID: UUID, createdAt: Date, lastUsedAt: Date, expiresAt: Date, revokedAt: Date?, userAgent: String, ip: String,
        clientID: String? = nil, scope: String? = nil
    ) {
        self.id = id
        self.userID = userID
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.userAgent = userAgent
        self.ip = ip
        self.clientID = clientID
        self.scope = scope
    }

    public func isActive(at now: Date) -> Bool { revokedAt == nil && expiresAt > now }
}

/// What login and refresh hand out.
public struct TokenPair: Sendable {
    public var accessToken: String
    public var accessExpiresIn: Int
    public var refreshToken: String
    public var refreshExpiresIn: Int
    public var user: User
    public var sessionID: UUID
    public var revision: Int64
    /// The scope the session was granted (OpenID clients; nil for Portcullis's own login).
    public var scope: String? = nil
}

/// An OpenID client's hold on a session: which client, and the token lifetimes it registered
/// (nil: the server's). Its sessions' tokens carry its id, and only it may refresh them.
@PublicInit
public struct ClientSessionTerms: Sendable, Equatable {
    public var clientID: String
    public var accessLifetime: Duration?
    public var refreshLifetime: Duration?
}

/// Where a request comes from, recorded on the session.
public struct ClientInfo: Sendable {
    public var userAgent: String
    public var ip: String

    public init(userAgent: String, ip: String) {
        self.userAgent = String(userAgent.prefix(512))
        self.ip = String(ip.prefix(64))
    }
}

/// A change-log revision number: every acknowledged write has one.
public typealias Revision = Int64

/// Why sessions are revoked; kept on the row for operators.
public enum RevokeReason: String, Sendable {
    case logout
    case logoutAll = "logout_all"
    case deleted
    case passwordChanged = "password_changed"
    case passwordReset = "password_reset"
    case refreshReuse = "refresh_reuse"
    /// The OpenID client the session was opened for was deleted.
    case clientDeleted = "client_deleted"
}
