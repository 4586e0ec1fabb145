import Authority
import Foundation
import Policy
import Tenancy

/// Groups and overrides on top of the dataset (issue 20), from their own seed so the base data
/// (and its parity with scripts/bench_casbin.py) stays as it was: per org 10 groups, four at the
/// top and six nested under them (two deep), five of the org's members in each, one binding per
/// group on a project, and two overrides (a deny and an allow, each on a member).
struct GroupData {
    static let seed: UInt64 = 0x6B0_2026
    static let groupsPerOrg = 10
    static let topGroups = 4
    static let membersPerGroup = 5
    static let overridesPerOrg = 2

    var groupID: [UUID] = []
    /// The parent's index in `groupID`, or -1 at the top.
    var groupParent: [Int32] = []
    /// Member k of group g is at g * membersPerGroup + k (a user index).
    var groupMember: [Int32] = []
    var bindingID: [UUID] = []
    var bindingPath: [String] = []
    var bindingRole: [Role] = []
    var overrideID: [UUID] = []
    var overrideUser: [Int32] = []
    var overridePath: [String] = []
    var overridePermission: [String] = []
    var overrideEffect: [OverrideGrant.Effect] = []

    var groupCount: Int { groupID.count }
    var memberCount: Int { groupMember.count }
    var overrideCount: Int { overrideID.count }

    init(_ d: Dataset) {
        var rng = SplitMix64(seed: Self.seed)
        for o in 0..<d.orgCount {
            let first = o * Self.groupsPerOrg
            for j in 0..<Self.groupsPerOrg {
                groupID.append(rng.uuid())
                groupParent.append(j < Self.topGroups ? -1 : Int32(first + j % Self.topGroups))
                // Distinct members of the org (never its owner, member 0).
                let start = 1 + rng.below(Dataset.membersPerOrg - Self.membersPerGroup)
                for k in 0..<Self.membersPerGroup { groupMember.append(d.memberUser[o * Dataset.membersPerOrg + start + k]) }
                bindingID.append(rng.uuid())
                bindingPath.append("/project:\(rng.below(20))")
                bindingRole.append([Role.editor, .editor, .admin][rng.below(3)])
            }
            for e in 0..<Self.overridesPerOrg {
                overrideID.append(rng.uuid())
                overrideUser.append(d.memberUser[o * Dataset.membersPerOrg + 1 + rng.below(Dataset.membersPerOrg - 1)])
                overridePath.append("/project:\(rng.below(20))")
                overridePermission.append(e == 0 ? Permission.bindingsWrite : Permission.invitesWrite)
                overrideEffect.append(e == 0 ? .deny : .allow)
            }
        }
    }

    func add(to g: inout OrgGrants, org o: Int, _ d: Dataset) {
        var names: [UUID: String] = [:], parents: [UUID: UUID] = [:], edges: [(Principal, GroupEdge)] = []
        for i in (o * Self.groupsPerOrg)..<((o + 1) * Self.groupsPerOrg) {
            names[groupID[i]] = "group \(i)"
            if groupParent[i] >= 0 { parents[groupID[i]] = groupID[Int(groupParent[i])] }
            for k in 0..<Self.membersPerGroup {
                edges.append((.user(d.users[Int(groupMember[i * Self.membersPerGroup + k])]), GroupEdge(group: groupID[i])))
            }
            g.addBinding(BindingGrant(id: bindingID[i], path: bindingPath[i], role: bindingRole[i]), for: .group(groupID[i]))
        }
        g.setGroups(names: names, parents: parents, edges: edges)
        for i in (o * Self.overridesPerOrg)..<((o + 1) * Self.overridesPerOrg) {
            g.addOverride(OverrideGrant(id: overrideID[i], path: overridePath[i], permission: overridePermission[i], effect: overrideEffect[i]),
                          for: .user(d.users[Int(overrideUser[i])]))
        }
    }
}

struct GroupsInfo: Encodable {
    var groups: Int
    var groupMemberships: Int
    var groupBindings: Int
    var overrides: Int
    /// The base checks, with groups and overrides in every org.
    var parsedEngineWithGroups: Rate
    /// Checks allowed by a binding on an ancestor of the object: the subject's own, or a
    /// binding of the parent of the group the subject is in.
    var directBindingCheck: Rate
    var groupBindingCheck: Rate
    /// groupBindingCheck's nanoseconds over directBindingCheck's (target: at most 2).
    var groupOverDirect: Double
}

enum GroupBench {
    static func run(dataset d: Dataset, groups: GroupData, base: InProcess.Inputs, options: Options) async throws -> GroupsInfo {
        let cache = GrantCache(loader: NoLoader())
        for o in 0..<d.orgCount {
            var g = d.grants(org: o)
            groups.add(to: &g, org: o, d)
            cache.install(d.orgs[o], g)
        }
        let n = base.objects.count
        let allowed = InProcess.parsedEngine(cache, base, upTo: n)
        let withGroups = await InProcess.measure("with groups: parsed, cached + decide (the same checks, groups and overrides in every org)",
                                                 rounds: options.rounds, count: n, expect: allowed) {
            InProcess.parsedEngine(cache, base, upTo: n)
        }
        // Two sets of the same size whose answers come from a binding on an ancestor.
        var direct = InProcess.Inputs(), viaGroup = InProcess.Inputs()
        var rng = SplitMix64(seed: Dataset.checkSeed ^ 0x9)
        let table = PermissionTable.builtIn
        for _ in 0..<n {
            let o = rng.below(d.orgCount)
            let b = o * Dataset.bindingsPerOrg + rng.below(Dataset.bindingsPerOrg)
            direct.subjects.append(.user(d.users[Int(d.bindingUser[b])]))
            direct.objects.append(ObjectRef(orgID: d.orgs[o], path: d.bindingPath[b] + "/page:\(rng.below(10))"))
            direct.requirements.append(try table.requirement(for: d.bindingRole[b].rawValue))
            // A member of a nested group; the binding is its parent's.
            let child = o * GroupData.groupsPerOrg + GroupData.topGroups + rng.below(GroupData.groupsPerOrg - GroupData.topGroups)
            let parent = Int(groups.groupParent[child])
            viaGroup.subjects.append(.user(d.users[Int(groups.groupMember[child * GroupData.membersPerGroup + rng.below(GroupData.membersPerGroup)])]))
            viaGroup.objects.append(ObjectRef(orgID: d.orgs[o], path: groups.bindingPath[parent] + "/doc:\(rng.below(50))"))
            viaGroup.requirements.append(try table.requirement(for: groups.bindingRole[parent].rawValue))
        }
        let directAllowed = InProcess.parsedEngine(cache, direct, upTo: n)
        let groupAllowed = InProcess.parsedEngine(cache, viaGroup, upTo: n)
        precondition(directAllowed == n && groupAllowed == n, "every such check is allowed: direct \(directAllowed), via a group \(groupAllowed) of \(n)")
        let directRate = await InProcess.measure("a check allowed by the subject's own binding on an ancestor", rounds: options.rounds, count: n, expect: n) {
            InProcess.parsedEngine(cache, direct, upTo: n)
        }
        let groupRate = await InProcess.measure("a check allowed by a nested group's parent's binding on an ancestor", rounds: options.rounds, count: n, expect: n) {
            InProcess.parsedEngine(cache, viaGroup, upTo: n)
        }
        let ratio = groupRate.nanosecondsPerDecision / directRate.nanosecondsPerDecision
        say(String(format: "a check through a group costs %.2f× a direct check (target: at most 2×)", ratio))
        return GroupsInfo(
            groups: groups.groupCount, groupMemberships: groups.memberCount, groupBindings: groups.groupCount, overrides: groups.overrideCount,
            parsedEngineWithGroups: withGroups, directBindingCheck: directRate, groupBindingCheck: groupRate, groupOverDirect: ratio)
    }
}
