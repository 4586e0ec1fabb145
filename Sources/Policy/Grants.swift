import Authority
import Foundation
import Tenancy

/// Every grant of one org, indexed so that a check costs O(depth of the object path), never
/// O(grants of the subject): bindings are keyed by (principal, exact path), and a check looks up
/// the object's ancestors one by one (issue 21: 5,000 long-path bindings made each check a scan).
/// Groups add at most one such walk per group the principal is in (their closure is computed
/// once, when the grants load), and overrides one more walk, only for principals that hold any.
public struct OrgGrants: Sendable, Equatable {
    /// The tables themselves. They sit in one box so that a copy of `OrgGrants` (every read
    /// from the cache) costs one reference count, not one per table: each count is a write to
    /// another object's header, a cache miss apiece on a cold org (issue 18's profile).
    struct Tables: Sendable, Equatable {
        /// Role and expiry per member in one sorted flat table (issue 18: a third of a dictionary's bytes).
        var members: MemberTable
        /// One flat table for the org rather than a table per principal: most principals hold no
        /// binding or one, and a dictionary each would cost the cache more memory than the grants.
        var bindings: BindingTable
        /// The highest role among each principal's bindings (expired or not): a principal without an
        /// entry has no binding, and a current membership at or above it needs no path walk at all.
        var bindingCeiling: PrincipalMap<Role>
        /// Each group's parent (groups at the top have none) and name (for `explain`).
        var groupParent: [UUID: UUID] = [:]
        var groupNames: [UUID: String] = [:]
        /// Each user's or service account's direct group memberships.
        var groupEdges: [Principal: [GroupEdge]] = [:]
        /// The closure of `groupEdges` up the tree: every group each principal is in.
        var groupReach: [Principal: [GroupReach]] = [:]
        var overrideIndex: [BindingKey: [OverrideGrant]] = [:]
        /// Principals and groups holding at least one override: everyone else skips the override walk.
        var overrideHolders: Set<Principal> = []

        init(members: MemberTable) {
            self.members = members
            bindings = BindingTable()
            bindingCeiling = PrincipalMap()
        }

        /// Puts the lookup tables in order once a load is done: loads append rows as they come,
        /// and an unsealed table answers by a scan.
        mutating func seal() {
            members.seal()
            bindings.seal()
            bindingCeiling.seal()
        }

        /// Adds (or replaces) the binding of `principal` on `grant.path`.
        mutating func addBinding(_ grant: BindingGrant, for principal: Principal) {
            bindings.insert(grant, for: principal)
            bindingCeiling[principal] = max(bindingCeiling[principal] ?? grant.role, grant.role)
        }

        mutating func addOverride(_ grant: OverrideGrant, for principal: Principal) {
            overrideIndex[BindingKey(principal, grant.path), default: []].append(grant)
            overrideHolders.insert(principal)
        }

        /// Installs the org's group tree and memberships, and computes each principal's closure.
        /// A parent link that would loop (the store refuses them; a hand-made state might not) ends the walk.
        mutating func setGroups(names: [UUID: String], parents: [UUID: UUID], edges: [(Principal, GroupEdge)]) {
            groupNames = names
            groupParent = parents
            groupEdges = [:]
            for (principal, edge) in edges { groupEdges[principal, default: []].append(edge) }
            groupReach = [:]
            for (principal, list) in groupEdges { groupReach[principal] = Self.reach(of: list, parents: parents) }
        }

        /// Every group that `edges` lead to up the tree, each until its latest direct membership ends.
        static func reach(of edges: [GroupEdge], parents: [UUID: UUID]) -> [GroupReach] {
            var reach: [GroupReach] = []
            for edge in edges {
                var group: UUID? = edge.group
                var steps = 0
                while let g = group, steps <= GroupLimits.maxDepth {
                    if let i = reach.firstIndex(where: { $0.group == g }) {
                        reach[i].expiresAt = max(reach[i].expiresAt, edge.expiresAt)
                    } else {
                        reach.append(GroupReach(group: g, expiresAt: edge.expiresAt))
                    }
                    group = parents[g]
                    steps += 1
                }
            }
            return reach
        }

        /// Replaces what `principal` holds (its membership, bindings, group memberships and
        /// overrides) with what `fresh` says it holds; the rest of the org stays as it is.
        mutating func replace(_ principal: Principal, from fresh: Tables) {
            // The cache keeps no membership audit events (`explain` reads them from the database).
            members[principal] = fresh.members[principal].map { MemberGrant(role: $0.role, expiresAt: $0.expiresAt) }
            bindings.removeAll(of: principal)
            bindingCeiling[principal] = nil
            for b in fresh.bindings.entries where b.principal == principal { addBinding(b.grant, for: principal) }
            groupEdges[principal] = fresh.groupEdges[principal]
            groupReach[principal] = fresh.groupEdges[principal].map { Self.reach(of: $0, parents: groupParent) }
            overrideIndex = overrideIndex.filter { $0.key.principal != principal }
            overrideHolders.remove(principal)
            for (key, list) in fresh.overrideIndex where key.principal == principal {
                for o in list { addOverride(o, for: principal) }
            }
            seal()
        }
    }

    final class Box: @unchecked Sendable {
        // Written only through `unique()`, when this box is the only reference: no two accesses overlap.
        @exclusivity(unchecked) var tables: Tables
        init(_ tables: Tables) { self.tables = tables }
    }

    private var box: Box

    private mutating func unique() {
        if !isKnownUniquelyReferenced(&box) { box = Box(box.tables) }
    }

    public init(members: [Principal: MemberGrant] = [:], bindings: [Principal: [BindingGrant]] = [:]) {
        box = Box(Tables(members: MemberTable(members)))
        for (principal, list) in bindings {
            for b in list { addBinding(b, for: principal) }
        }
        seal()
    }

    public static func == (a: OrgGrants, b: OrgGrants) -> Bool { a.box === b.box || a.box.tables == b.box.tables }

    /// Role and expiry per member in one sorted flat table (issue 18: a third of a dictionary's bytes).
    public var members: MemberTable {
        _read { yield box.tables.members }
        _modify { unique(); yield &box.tables.members }
    }
    /// One flat table for the org rather than a table per principal: most principals hold no
    /// binding or one, and a dictionary each would cost the cache more memory than the grants.
    public var bindings: BindingTable { _read { yield box.tables.bindings } }
    /// Every binding by holder and path (explain's and lookup's reads; checks use `bindings`).
    public var bindingIndex: [BindingKey: BindingGrant] {
        Dictionary(bindings.entries.map { (BindingKey($0.principal, $0.grant.path), $0.grant) }, uniquingKeysWith: { _, later in later })
    }
    /// The highest role among each principal's bindings (expired or not): a principal without an
    /// entry has no binding, and a current membership at or above it needs no path walk at all.
    public var bindingCeiling: PrincipalMap<Role> { _read { yield box.tables.bindingCeiling } }
    /// Each group's parent (groups at the top have none) and name (for `explain`).
    public var groupParent: [UUID: UUID] { _read { yield box.tables.groupParent } }
    public var groupNames: [UUID: String] { _read { yield box.tables.groupNames } }
    /// Each user's or service account's direct group memberships.
    public var groupEdges: [Principal: [GroupEdge]] { _read { yield box.tables.groupEdges } }
    /// The closure of `groupEdges` up the tree: every group each principal is in.
    public var groupReach: [Principal: [GroupReach]] { _read { yield box.tables.groupReach } }
    public var overrideIndex: [BindingKey: [OverrideGrant]] { _read { yield box.tables.overrideIndex } }
    /// Principals and groups holding at least one override: everyone else skips the override walk.
    public var overrideHolders: Set<Principal> { _read { yield box.tables.overrideHolders } }

    /// Puts the lookup tables in order once a load is done: loads append rows as they come,
    /// and an unsealed table answers by a scan.
    public mutating func seal() {
        unique()
        box.tables.seal()
    }

    /// Adds (or replaces) the binding of `principal` on `grant.path`.
    public mutating func addBinding(_ grant: BindingGrant, for principal: Principal) {
        unique()
        box.tables.addBinding(grant, for: principal)
    }

    public mutating func addOverride(_ grant: OverrideGrant, for principal: Principal) {
        unique()
        box.tables.addOverride(grant, for: principal)
    }

    /// Installs the org's group tree and memberships, and computes each principal's closure.
    public mutating func setGroups(names: [UUID: String], parents: [UUID: UUID], edges: [(Principal, GroupEdge)]) {
        unique()
        box.tables.setGroups(names: names, parents: parents, edges: edges)
    }

    /// Replaces what `principal` holds in the org (its membership, bindings, group memberships
    /// and overrides) with what `fresh`, a load of that principal alone (`GrantLoader.held(orgID:by:)`),
    /// says: how a change to one member reaches a cached org without reloading the whole org.
    /// The group tree and everyone else's grants are taken as they are.
    public mutating func replace(_ principal: Principal, from fresh: OrgGrants) {
        unique()
        box.tables.replace(principal, from: fresh.box.tables)
    }

    /// The chain from `group` up to the top of its tree, `group` first.
    public func ancestry(of group: UUID) -> [UUID] {
        var chain: [UUID] = []
        var next: UUID? = group
        while let g = next, chain.count <= GroupLimits.maxDepth {
            chain.append(g)
            next = groupParent[g]
        }
        return chain
    }

    /// Calls `body` with the path of the org ("") and of each ancestor of `path`, then `path` itself.
    @inline(__always)
    public static func forEachLevel(of path: String, _ body: (String) -> Void) {
        body("")
        guard !path.isEmpty else { return }
        // Each ancestor ends just before a "/" (ids never hold one); the object itself ends the path.
        let utf8 = path.utf8
        var i = utf8.index(after: utf8.startIndex)
        while true {
            let end = utf8[i...].firstIndex(of: UInt8(ascii: "/")) ?? utf8.endIndex
            body(String(path[..<end]))
            guard end < utf8.endIndex else { return }
            i = utf8.index(after: end)
        }
    }

    /// The bindings of `principal` on the object at `path` and on each of its ancestors, the
    /// org first: one index probe per level. `probes` counts them (tests bound the work with it).
    @inline(__always)
    public func forEachBinding(of principal: Principal, onPathTo path: String, probes: inout Int, _ body: (BindingGrant) -> Void) {
        guard bindingCeiling[principal] != nil else { return }
        let (high, low) = principal.id.words
        let kind = HashMix.kind(of: principal)
        let principalHash = HashMix.principal(high, low, kind)
        var count = 0
        PathHash.forEachLevel(of: path) { pathHash, level in
            count &+= 1
            if let b = bindings.find(high, low, kind, principalHash: principalHash, pathHash: pathHash, path: level) { body(b) }
        }
        probes &+= count
    }

    /// The binding of `principal` on exactly `path`, if any.
    public func binding(of principal: Principal, on path: String) -> BindingGrant? {
        let (high, low) = principal.id.words
        let kind = HashMix.kind(of: principal)
        var path = path
        let hash = PathHash.of(path)
        return path.withUTF8 { bytes in
            bindings.find(high, low, kind, principalHash: HashMix.principal(high, low, kind), pathHash: hash, path: bytes)
        }
    }

    /// The highest current role of `principal` on `path`: its membership, or any binding on the
    /// object or one of its ancestors, its own or a group's it is in.
    @inline(__always)
    public func role(of principal: Principal, on path: String, at now: Instant) -> Role? {
        var probes = 0
        return role(of: principal, on: path, at: now, probes: &probes)
    }

    @inline(__always)
    public func role(of principal: Principal, on path: String, at now: Instant, probes: inout Int) -> Role? {
        var best: Role?
        let member = members.current(principal, at: now)
        if let member { best = member }
        // Nothing bound, or nothing bound above what is held: the walk cannot raise the role.
        if let ceiling = bindingCeiling[principal], best == nil || ceiling > best! {
            forEachBinding(of: principal, onPathTo: path, probes: &probes) { b in
                if b.expiresAt > now, best == nil || b.role > best! { best = b.role }
            }
        }
        // A group counts only while its member is one of the org's (a lapsed membership lapses its groups).
        // An org without groups pays one count check, not a hash probe.
        guard member != nil, !groupReach.isEmpty, let reach = groupReach[principal] else { return best }
        for r in reach where r.expiresAt > now {
            guard let ceiling = bindingCeiling[.group(r.group)], best == nil || ceiling > best! else { continue }
            forEachBinding(of: .group(r.group), onPathTo: path, probes: &probes) { b in
                if b.expiresAt > now, best == nil || b.role > best! { best = b.role }
            }
        }
        return best
    }

    /// The groups whose grants reach `principal` now: none unless it is a current member of the org.
    public func currentGroups(of principal: Principal, at now: Instant) -> [UUID] {
        guard members.current(principal, at: now) != nil, let reach = groupReach[principal] else { return [] }
        return reach.lazy.filter { $0.expiresAt > now }.map(\.group)
    }

    /// Every current override of `principal` (its own and its groups') on `path` or above it.
    /// Empty at the cost of one set probe for principals and groups that hold none.
    public func overrides(of principal: Principal, on path: String, at now: Instant) -> [(holder: Principal, grant: OverrideGrant)] {
        guard !overrideHolders.isEmpty else { return [] }
        var holders: [Principal] = overrideHolders.contains(principal) ? [principal] : []
        for g in currentGroups(of: principal, at: now) where overrideHolders.contains(.group(g)) { holders.append(.group(g)) }
        guard !holders.isEmpty else { return [] }
        var found: [(holder: Principal, grant: OverrideGrant)] = []
        Self.forEachLevel(of: path) { level in
            for holder in holders {
                for o in overrideIndex[BindingKey(holder, level)] ?? [] where o.expiresAt > now { found.append((holder, o)) }
            }
        }
        return found
    }

    /// Whether `principal` holds anything in the org (current or not): a membership or a binding.
    @inline(__always)
    public func holdsAnything(_ principal: Principal) -> Bool {
        members.contains(principal) || bindingCeiling[principal] != nil
    }
}
