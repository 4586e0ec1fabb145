/// Org roles, ordered by rank: viewer < editor < admin < owner.
public enum Role: String, Sendable, Codable, CaseIterable, Comparable {
    case viewer
    case editor
    case admin
    case owner

    public var rank: Int {
        switch self {
        case .viewer: return 1
        case .editor: return 2
        case .admin: return 3
        case .owner: return 4
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }

    /// Lowest to highest, as listed by `GET /v1/permissions`.
    public static let ranked: [Role] = [.viewer, .editor, .admin, .owner]
}
