import Authority
import Foundation
import Tenancy
import Memberwise

/// One object where a subject holds a permission, with its effective role there.
@PublicInit
public struct LookupItem: Sendable, Equatable {
    public var object: ObjectRef
    /// The effective role there; nil where only an override allows the permission.
    public var role: Role?
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

extension Authorizer {
    /// Where the subject holds `required`: orgs (type nil or "org") or bound objects of a type,
    /// ordered by object string. Reads through the database: it answers "where?", not "may
    /// I?", and is off the hot path. About another subject, only orgs the asker administers.
    public func lookup(of ref: SubjectRef, holding required: Requirement, type: String?, by asker: Actor) async throws -> [LookupItem] {
        var asking = Asking(asker)
        guard let subject = try await resolve(ref, for: nil, &asking) else { return [] }
        let held = try await holdings.holdings(of: subject.principal)
        let now = policy.now().instant
        let memberships = held.memberships
        // A group's grants count where the principal is a current member; one binding per object
        // (the highest current one), so that an object bound twice is listed once.
        let current = Set(memberships.lazy.filter { $0.1.expiresAt > now }.map(\.0))
        var best: [String: (UUID, BindingGrant)] = [:]
        for (org, b) in held.bindings + held.groupBindings.filter({ current.contains($0.0) }) where b.expiresAt > now {
            let key = org.lowercasedString + b.path
            if let known = best[key], known.1.role >= b.role { continue }
            best[key] = (org, b)
        }
        let bindings = Array(best.values)
        let overrides = required.isPermission
            ? (held.overrides + held.groupOverrides.filter { current.contains($0.0) }).filter { $0.1.permission == required.action && $0.1.expiresAt > now }
            : []
        // One administration check per org, not per object.
        let foreign = asking.foreign(ref, subject) && !asker.isRoot
        var visible = Set<UUID>()
        if foreign {
            var pacer = Pacer()
            for org in Set(memberships.map(\.0) + bindings.map(\.0) + overrides.map(\.0)) {
                try await pacer.step()
                if try await administers(asker, org) { visible.insert(org) }
            }
        }
        let include: (UUID) -> Bool = { !foreign || visible.contains($0) }
        var pacer = Pacer()
        guard !overrides.isEmpty else {
            return try await Lookup.run(
                memberships: memberships, bindings: bindings, scopes: subject.scopes, type: type, required: required.role,
                now: now, includeOrg: include, pacer: &pacer).items
        }
        // Overrides decide per object: every object the subject holds any role on, and every object
        // an override allows, is decided by the engine over the subject's grants in its org.
        let candidates = try await Lookup.run(
            memberships: memberships, bindings: bindings, scopes: subject.scopes, type: type, required: .viewer,
            now: now, includeOrg: include, pacer: &pacer).items
        let orgsWithOverrides = Set(overrides.map(\.0))
        var flattened: [UUID: OrgGrants] = [:]
        for org in orgsWithOverrides {
            var g = OrgGrants()
            for (o, m) in memberships where o == org { g.members[subject.principal] = m }
            for (o, b) in bindings where o == org { g.addBinding(b, for: subject.principal) }
            for (o, x) in overrides where o == org { g.addOverride(x, for: subject.principal) }
            flattened[org] = g
        }
        let candidateRoles = Dictionary(candidates.map { ($0.object, $0.role) }, uniquingKeysWith: { a, _ in a })
        var objects = candidates.map(\.object)
        for (org, o) in overrides where o.effect == .allow && include(org) {
            let object = ObjectRef(orgID: org, path: o.path)
            if object.path.isEmpty ? (type == nil || type == "org") : object.type == type { objects.append(object) }
        }
        var items: [String: LookupItem] = [:]
        for object in objects {
            try await pacer.step()
            if let g = flattened[object.orgID] {
                let d = DecisionEngine.decide(g, subject: subject, object: object, required: required, now: now)
                if d.allowed { items[object.string] = LookupItem(object: object, role: d.role) }
            } else if let held = candidateRoles[object], let role = held, role >= required.role {
                // An org without overrides: the role Lookup.run found is the answer.
                items[object.string] = LookupItem(object: object, role: role)
            }
        }
        return items.sorted { $0.key < $1.key }.map(\.value)
    }
}
