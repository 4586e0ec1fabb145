import Foundation
import Identity

extension SQLIdentityStore {
    public func users(matching text: String?, limit: Int, offset: Int) async throws -> ([User], Int) {
        guard let text else {
            let rows = try await db.query("SELECT \(Self.userColumns) FROM users ORDER BY email LIMIT $1 OFFSET $2", limit, offset)
            let total = try await db.queryFirst("SELECT COUNT(*) AS n FROM users")?.int("n") ?? 0
            return (try rows.map { try Self.decodeUser($0).user }, Int(total))
        }
        // A substring match; LIKE's own wildcards in the text are matched literally.
        let pattern = "%" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
        let condition = "WHERE LOWER(email) LIKE $1 ESCAPE '\\' OR LOWER(name) LIKE $1 ESCAPE '\\'"
        let rows = try await db.query("SELECT \(Self.userColumns) FROM users \(condition) ORDER BY email LIMIT $2 OFFSET $3", pattern, limit, offset)
        let total = try await db.queryFirst("SELECT COUNT(*) AS n FROM users \(condition)", pattern)?.int("n") ?? 0
        return (try rows.map { try Self.decodeUser($0).user }, Int(total))
    }
}
