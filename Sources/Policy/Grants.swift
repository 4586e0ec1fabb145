import Authority
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

/// Where a binding sits in the index: whose it is and on which exact path.
public struct BindingKey: Sendable, Hashable {
    public var principal: Principal
    public var path: String

    public init(_ principal: Principal, _ path: String) {
        self.principal = principal
        self.path = path
    }
}

/// Every grant of one org, indexed so that a check costs O(depth of the object path), never
/// O(grants of the subject): bindings are keyed by (principal, exact path), and a check looks up
/// the object's ancestors one by one (issue 21: 5,000 long-path bindings made each check a scan).
public struct OrgGrants: Sendable, Equatable {
    public var members: [Principal: MemberGrant]
    /// One flat table for the org rather than a table per principal: most principals hold no
    /// binding or one, and a dictionary each would cost the cache more memory than the grants.
    public private(set) var bindingIndex: [BindingKey: BindingGrant]
    /// The highest role among each principal's bindings (expired or not): a principal without an
    /// entry has no binding, and a current membership at or above it needs no path walk at all.
    public private(set) var bindingCeiling: [Principal: Role]

    public init(members: [Principal: MemberGrant] = [:], bindings: [Principal: [BindingGrant]] = [:]) {
        self.members = members
        bindingIndex = [:]
        bindingCeiling = [:]
        for (principal, list) in bindings {
            for b in list { addBinding(b, for: principal) }
        }
    }

    /// Adds (or replaces) the binding of `principal` on `grant.path`.
    public mutating func addBinding(_ grant: BindingGrant, for principal: Principal) {
        bindingIndex[BindingKey(principal, grant.path)] = grant
        bindingCeiling[principal] = max(bindingCeiling[principal] ?? grant.role, grant.role)
    }

    /// The bindings of `principal` on the object at `path` and on each of its ancestors, the
    /// org first: one index probe per level. `probes` counts them (tests bound the work with it).
    @inline(__always)
    public func forEachBinding(of principal: Principal, onPathTo path: String, probes: inout Int, _ body: (BindingGrant) -> Void) {
        guard bindingCeiling[principal] != nil else { return }
        var key = BindingKey(principal, "")
        probes &+= 1
        if let b = bindingIndex[key] { body(b) }
        guard !path.isEmpty else { return }
        // Each ancestor ends just before a "/" (ids never hold one); the object itself ends the path.
        let utf8 = path.utf8
        var i = utf8.index(after: utf8.startIndex)
        while true {
            let end = utf8[i...].firstIndex(of: UInt8(ascii: "/")) ?? utf8.endIndex
            key.path = String(path[..<end])
            probes &+= 1
            if let b = bindingIndex[key] { body(b) }
            guard end < utf8.endIndex else { return }
            i = utf8.index(after: end)
        }
    }

    /// The highest current role of `principal` on `path`: its membership, or any binding on the
    /// object or one of its ancestors.
    @inline(__always)
    public func role(of principal: Principal, on path: String, at now: Instant) -> Role? {
        var probes = 0
        return role(of: principal, on: path, at: now, probes: &probes)
    }

    @inline(__always)
    public func role(of principal: Principal, on path: String, at now: Instant, probes: inout Int) -> Role? {
        var best: Role?
        if let m = members[principal], m.expiresAt > now { best = m.role }
        // Nothing bound, or nothing bound above the membership: the walk cannot raise the role.
        guard let ceiling = bindingCeiling[principal], best == nil || ceiling > best! else { return best }
        forEachBinding(of: principal, onPathTo: path, probes: &probes) { b in
            if b.expiresAt > now, best == nil || b.role > best! { best = b.role }
        }
        return best
    }

    /// Whether `principal` holds anything in the org (current or not): a membership or a binding.
    @inline(__always)
    public func holdsAnything(_ principal: Principal) -> Bool {
        members[principal] != nil || bindingCeiling[principal] != nil
    }
}
