import Authority
import Foundation

/// A person's own profile and password (and the user cache that serves them).
extension AuthService {
    // MARK: - Profile and password

    public func updateName(userID: UUID, name: String) async throws -> (User, Revision) {
        let clean = try DisplayName.validate(name)
        guard let result = try await users.updateName(userID: userID, name: clean, now: now()) else {
            throw IdentityError.notFound
        }
        return result
    }

    /// Changes the password after checking the current one; every other session of the user dies.
    public func changePassword(userID: UUID, currentSessionID: UUID, current: String, new: String) async throws -> Revision {
        try PasswordPolicy.validate(new)
        guard let account = try await users.credentials(id: userID) else { throw IdentityError.notFound }
        // An account made through an upstream sets its first password with a mailed reset link,
        // which proves the address; a session alone does not.
        guard !account.passwordHash.isEmpty else {
            throw IdentityError.forbidden("this account has no password yet; set one with a reset link (forgot password)")
        }
        guard current.count <= PasswordPolicy.maxLength, await hasher.verify(current, against: account.passwordHash) else {
            throw IdentityError.forbidden("current password is wrong")
        }
        let hash = try await hasher.hash(new)
        return try await users.setPassword(userID: userID, hash: hash, keepSession: currentSessionID, reason: .passwordChanged, now: now()).0
    }

    /// The platform's user directory, for the root's console: by address, optionally narrowed
    /// to those whose address or name contains `text`.
    public func directory(matching text: String?, limit: Int, offset: Int) async throws -> ([User], Int) {
        let needle = text?.trimmingCharacters(in: .whitespaces).lowercased()
        return try await users.users(matching: needle?.isEmpty == false ? String(needle!.prefix(254)) : nil, limit: limit, offset: offset)
    }

    public func user(id: UUID, readThrough: Bool = false) async throws -> User? {
        if !readThrough, let hit = userCache.get(id) { return hit }
        let user = try await users.user(id: id)
        if let user { userCache.put(user) }
        return user
    }
}
