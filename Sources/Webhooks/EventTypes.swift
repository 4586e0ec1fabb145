import Foundation

/// Which events an endpoint wants: exact types (`member.added`) or a family with a wildcard
/// (`member.*`), or everything (`*`).
public struct EventFilter: Sendable, Equatable {
    public let patterns: [String]

    /// The families of events the change log produces.
    public static let families = ["org", "member", "invite", "binding", "group", "override", "key", "service_account", "user", "client", "signing_key", "platform_invite", "backup", "webhook", "identity", "identity_provider"]
    public static let maxPatterns = 50

    /// Checks each pattern: `*`, `<family>.*`, or `<family>.<action>` with a known family.
    public init(_ patterns: [String]) throws {
        guard !patterns.isEmpty else { throw WebhookError.invalid("event_types must name at least one type, or \"*\"") }
        guard patterns.count <= Self.maxPatterns else { throw WebhookError.invalid("at most \(Self.maxPatterns) event_types") }
        var kept: [String] = []
        for pattern in patterns {
            guard Self.isWellFormed(pattern) else {
                throw WebhookError.invalid("event type \(pattern.prefix(60)) is not *, <family>.* or <family>.<action>; the families are \(Self.families.joined(separator: ", "))")
            }
            if !kept.contains(pattern) { kept.append(pattern) }
        }
        self.patterns = kept
    }

    /// Patterns read back from storage, checked when they were stored.
    public init(trusted patterns: [String]) {
        self.patterns = patterns
    }

    static func isWellFormed(_ pattern: String) -> Bool {
        if pattern == "*" { return true }
        let parts = pattern.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, families.contains(String(parts[0])), !parts[1].isEmpty, parts[1].utf8.count <= 60 else { return false }
        return parts[1] == "*" || parts[1].allSatisfy { $0.isLetter || $0 == "_" || $0 == "." }
    }

    public func matches(_ type: String) -> Bool {
        patterns.contains { pattern in
            if pattern == "*" || pattern == type { return true }
            guard pattern.hasSuffix(".*") else { return false }
            return type.hasPrefix(pattern.dropLast())
        }
    }
}

/// Why a webhook operation was refused.
public enum WebhookError: Error, Sendable, Equatable {
    case invalid(String)
    case forbidden(String)
    case notFound(String)
    case quotaExceeded(String)
    /// The endpoint's state does not allow it (409).
    case conflict(String)
}
