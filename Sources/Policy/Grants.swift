import Foundation
import Tenancy

/// Times as seconds since 1970; `.infinity` for grants that never expire. A Double compares in
/// one instruction, which matters at millions of decisions a second.
public typealias Instant = Double

extension Date {
    @inline(__always) public var instant: Instant { timeIntervalSince1970 }
}

/// A membership as the decision engine sees it.
public struct MemberGrant: Sendable, Equatable {
    public var role: Role
    public var expiresAt: Instant
    public var auditEventID: UUID?

    public init(role: Role, expiresAt: Instant = .infinity, auditEventID: UUID? = nil) {
        self.role = role
        self.expiresAt = expiresAt
        self.auditEventID = auditEventID
    }
}

/// A role binding as the decision engine sees it: a role on one object (and everything below it).
public struct BindingGrant: Sendable, Equatable {
    public var id: UUID
    /// The resource's path below its org (`ObjectRef.path`); empty for the org itself.
    public var path: String
    public var role: Role
    public var expiresAt: Instant
    public var auditEventID: UUID?

    public init(id: UUID, path: String, role: Role, expiresAt: Instant = .infinity, auditEventID: UUID? = nil) {
        self.id = id
        self.path = path
        self.role = role
        self.expiresAt = expiresAt
        self.auditEventID = auditEventID
    }
}

/// Every grant of one org, indexed by principal: what a decision about the org reads.
public struct OrgGrants: Sendable, Equatable {
    public var members: [Principal: MemberGrant]
    public var bindings: [Principal: [BindingGrant]]

    public init(members: [Principal: MemberGrant] = [:], bindings: [Principal: [BindingGrant]] = [:]) {
        self.members = members
        self.bindings = bindings
    }

    /// The highest current role of `principal` on `path`: its membership, or any binding on the
    /// object or one of its ancestors.
    @inline(__always)
    public func role(of principal: Principal, on path: String, at now: Instant) -> Role? {
        var best: Role?
        if let m = members[principal], m.expiresAt > now { best = m.role }
        if let list = bindings[principal] {
            for b in list where b.expiresAt > now && (best == nil || b.role > best!) && ObjectRef.path(path, isWithin: b.path) {
                best = b.role
            }
        }
        return best
    }
}
