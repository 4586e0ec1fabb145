import Authority
import Foundation
import Tenancy
import Memberwise

/// Times as seconds since 1970; `.infinity` for grants that never expire. A Double compares in
/// one instruction, which matters at millions of decisions a second.
public typealias Instant = Double

extension Date {
    @inline(__always) public var instant: Instant { timeIntervalSince1970 }
}

/// A membership as the decision engine sees it.
@PublicInit
public struct MemberGrant: Sendable, Equatable {
    public var role: Role
    public var expiresAt: Instant = .infinity
    public var auditEventID: UUID?
}

/// A role binding as the decision engine sees it: a role on one object (and everything below it).
@PublicInit
public struct BindingGrant: Sendable, Equatable {
    public var id: UUID
    /// The resource's path below its org (`ObjectRef.path`); empty for the org itself.
    public var path: String
    public var role: Role
    public var expiresAt: Instant = .infinity
    public var auditEventID: UUID?
}

/// Where a binding sits in the index: whose it is and on which exact path.
public struct BindingKey: Sendable, Hashable {
    public var principal: Principal
    public var path: String

    public init(_ principal: Principal, _ path: String) {
        self.principal = principal
        self.path = path
    }
}

/// A principal's membership in one group, as the engine sees it.
@PublicInit
public struct GroupEdge: Sendable, Equatable {
    public var group: UUID
    public var expiresAt: Instant = .infinity
    public var auditEventID: UUID?
}

/// A group a principal belongs to, directly or through nesting, and until when (its direct
/// membership's expiry; nesting itself never expires).
public struct GroupReach: Sendable, Equatable {
    public var group: UUID
    public var expiresAt: Instant
}

/// An explicit allow or deny of one permission on an object and everything below it (SPEC §17).
@PublicInit
public struct OverrideGrant: Sendable, Equatable {
    public enum Effect: String, Sendable, Equatable { case allow, deny }

    public var id: UUID
    /// The resource's path below its org; empty for the org itself.
    public var path: String
    public var permission: String
    public var effect: Effect
    public var expiresAt: Instant = .infinity
    /// Why it exists, as its author wrote (shown by `explain`).
    public var reason: String = ""
    public var auditEventID: UUID?
}

/// The shape limits of group trees (SPEC §17).
public enum GroupLimits {
    /// Groups nest at most this deep: a top-level group is at depth 1.
    public static let maxDepth = 8
}
