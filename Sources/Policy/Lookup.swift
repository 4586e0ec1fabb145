import Authority
import Foundation
import Tenancy

/// One object where a subject holds a permission, with its effective role there.
public struct LookupItem: Sendable, Equatable {
    public var object: ObjectRef
    /// The effective role there; nil where only an override allows the permission.
    public var role: Role?

    public init(object: ObjectRef, role: Role?) {
        self.object = object
        self.role = role
    }
}

/// "Where does this subject hold X?" in one pass over what the subject holds (issue 21: it
/// used to re-scan every binding for every candidate, quadratic in the bindings held).
///
/// The subject's bindings are sorted so that each object's descendants follow it directly; a
/// stack of the ancestors on the current branch carries the inherited role down, so every
/// binding is visited once and every candidate gets the role `authorize` would give it.
public enum Lookup {
    public struct Result: Sendable {
        /// Every match, ordered by object string (the caller pages).
        public var items: [LookupItem]
        /// Memberships and bindings visited: at most one visit each.
        public var touched: Int
    }

    /// - Parameters:
    ///   - type: nil or "org" for orgs; else objects of that type the subject is bound on.
    ///   - includeOrg: orgs the caller may see the answer for (others are skipped whole).
    public static func run(
        memberships: [(UUID, MemberGrant)], bindings: [(UUID, BindingGrant)], scopes: KeyScopes?,
        type: String?, required: Role, now: Instant, includeOrg: (UUID) -> Bool = { _ in true }, pacer: inout Pacer
    ) async throws -> Result {
        var touched = 0
        var memberRole: [UUID: Role] = [:]
        var orgs = Set<UUID>()
        for (org, m) in memberships {
            touched += 1
            orgs.insert(org)
            if m.expiresAt > now { memberRole[org] = max(memberRole[org] ?? m.role, m.role) }
        }
        // Each binding's sort key once: the org, then the path with "/" below every other byte,
        // so that a subtree is contiguous right after its root (`/a:1`, `/a:1/b:2`, `/a:1+x`).
        var order: [(org: UUID, key: [UInt8], index: Int)] = []
        order.reserveCapacity(bindings.count)
        for (i, (org, b)) in bindings.enumerated() {
            order.append((org, b.path.utf8.map { $0 == UInt8(ascii: "/") ? 0 : $0 }, i))
            orgs.insert(org)
        }
        order.sort { a, b in a.org == b.org ? a.key.lexicographicallyPrecedes(b.key) : Self.precedes(a.org, b.org) }

        var items: [LookupItem] = []
        func offer(_ object: ObjectRef, _ held: Role?) {
            guard let held, let role = scopes.map({ $0.narrow(held, in: object.orgID) }) ?? held, role >= required else { return }
            items.append(LookupItem(object: object, role: role))
        }
        let orgsWanted = type == nil || type == "org"
        var orgRole: [UUID: Role] = memberRole
        var stack: [(path: String, role: Role?)] = []
        var current: UUID?
        for entry in order {
            try await pacer.step()
            touched += 1
            let b = bindings[entry.index].1
            if entry.org != current {
                current = entry.org
                stack.removeAll(keepingCapacity: true)
            }
            guard includeOrg(entry.org) else { continue }
            while let top = stack.last, !ObjectRef.path(b.path, isWithin: top.path) { stack.removeLast() }
            // The top of the stack already holds the membership and every binding above this one.
            let inherited: Role? = if let top = stack.last { top.role } else { memberRole[entry.org] }
            let own: Role? = b.expiresAt > now ? b.role : nil
            let effective: Role? = switch (inherited, own) {
            case (let a?, let b?): max(a, b)
            case (let a?, nil): a
            case (nil, let b): b
            }
            stack.append((b.path, effective))
            if b.path.isEmpty {
                if let effective { orgRole[entry.org] = effective }
            } else if !orgsWanted {
                let object = ObjectRef(orgID: entry.org, path: b.path)
                if object.type == type { offer(object, effective) }
            }
        }
        if orgsWanted {
            for org in orgs where includeOrg(org) {
                try await pacer.step()
                offer(ObjectRef(orgID: org), orgRole[org])
            }
        }
        // Sorting the matches is O(k log k) in what is returned, never a rescan.
        let keyed = items.map { ($0.object.string, $0) }.sorted { $0.0 < $1.0 }
        return Result(items: keyed.map(\.1), touched: touched)
    }

    /// Any total order of org ids will do (it only groups an org's bindings); bytes need no string.
    static func precedes(_ a: UUID, _ b: UUID) -> Bool {
        withUnsafeBytes(of: a.uuid) { x in withUnsafeBytes(of: b.uuid) { y in x.lexicographicallyPrecedes(y) } }
    }
}
