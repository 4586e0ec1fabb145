import Foundation
import Identity

extension SQLIdentityStore {
    public func users(matching text: String?, limit: Int, offset: Int) async throws -> ([User], Int) {
        guard let text else {
            return try await db.page(select: Self.userColumns, "FROM users", orderBy: "email", [], limit: limit, offset: offset) {
                try Self.decodeUser($0).user
            }
        }
        // A substring match; LIKE's own wildcards in the text are matched literally.
        let pattern = "%" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
        let condition = "WHERE LOWER(email) LIKE $1 ESCAPE '\\' OR LOWER(name) LIKE $1 ESCAPE '\\'"
        return try await db.page(select: Self.userColumns, "FROM users \(condition)", orderBy: "email", [pattern.sqlValue], limit: limit, offset: offset) {
            try Self.decodeUser($0).user
        }
    }
}
