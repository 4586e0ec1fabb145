/// Failures of org and membership operations, mapped to problem responses at the HTTP edge.
public enum TenancyError: Error, Sendable, Equatable {
    /// A field failed validation (400).
    case invalid(String)
    /// The org, member or user does not exist, or the caller may not know that it does (404).
    case notFound(String)
    /// The caller can see the org but lacks the permission (403).
    case forbidden(String)
    /// The change would leave the org without a permanent owner (409 `last_owner`).
    case lastOwner
    /// The user is already a current member (409 `already_member`).
    case alreadyMember
    /// Adding by e-mail found no account whose address is proven: invite the address instead
    /// (an unverified account may be a squatter's; SPEC §12).
    case addressNotProven
    /// The instance is not empty, or the document is inconsistent (409 / 400).
    case conflict(String)
    /// A configured quota is full (409 `quota_exceeded`): the write would pass it. A 409 rather
    /// than a 429 because waiting does not help; removing something does.
    case quotaExceeded(String)
}
