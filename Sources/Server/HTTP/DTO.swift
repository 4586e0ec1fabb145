import Authority
import Foundation
import Identity
import Tenancy

/// `user` in responses.
struct UserResponse: Encodable, Sendable {
    let id: String
    let email: String
    let name: String
    let emailVerified: Bool
    let isRoot: Bool
    let createdAt: Date
    let updatedAt: Date

    init(_ u: User) {
        id = u.id.lowercasedString
        email = u.email
        name = u.name
        emailVerified = u.emailVerified
        isRoot = u.isRoot
        createdAt = u.createdAt
        updatedAt = u.updatedAt
    }
}

/// Login and refresh responses.
struct TokensResponse: Encodable, Sendable {
    let accessToken: String
    let tokenType = "Bearer"
    let expiresIn: Int
    let refreshToken: String
    let refreshExpiresIn: Int
    let user: UserResponse

    init(_ pair: TokenPair) {
        accessToken = pair.accessToken
        expiresIn = pair.accessExpiresIn
        refreshToken = pair.refreshToken
        refreshExpiresIn = pair.refreshExpiresIn
        user = UserResponse(pair.user)
    }
}

struct SessionResponse: Encodable, Sendable {
    let id: String
    let createdAt: Date
    let lastUsedAt: Date
    let userAgent: String
    let ip: String
    let current: Bool

    init(_ s: Session, current: UUID?) {
        id = s.id.lowercasedString
        createdAt = s.createdAt
        lastUsedAt = s.lastUsedAt
        userAgent = s.userAgent
        ip = s.ip
        self.current = s.id == current
    }
}

// MARK: - Requests

struct SignupBody: Decodable, Sendable {
    let email: String
    let password: String
    let name: String?
    let inviteToken: String?
}

struct LoginBody: Decodable, Sendable {
    let email: String
    let password: String
}

struct RefreshBody: Decodable, Sendable {
    let refreshToken: String
}

struct LogoutBody: Decodable, Sendable {
    let all: Bool?
}

struct UpdateMeBody: Decodable, Sendable {
    /// nil: left out (nothing to change); a name cannot be removed, so null is a 400.
    let name: String?

    enum CodingKeys: String, CodingKey { case name }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decodePresence(String.self, forKey: .name) {
        case nil: name = nil
        case .some(nil): throw Problem.badRequest("name must be a string, not null")
        case .some(let value?): name = value
        }
    }
}

struct ChangePasswordBody: Decodable, Sendable {
    let currentPassword: String
    let newPassword: String
}

