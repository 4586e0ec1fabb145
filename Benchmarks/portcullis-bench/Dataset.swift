import Authority
import Foundation
import Policy
import Tenancy

/// SplitMix64: tiny, fast and trivially reimplemented in Python (`scripts/bench_casbin.py`),
/// so both sides generate the very same dataset and the very same checks from the same seeds.
struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    @inline(__always)
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 0..<n (modulo bias is irrelevant here; what matters is that Python computes the same).
    @inline(__always)
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// A version-4 UUID from two draws (big-endian bytes of the first, then the second).
    mutating func uuid() -> UUID {
        let a = next(), b = next()
        func at(_ x: UInt64, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: x >> (56 - 8 * i)) }
        return UUID(uuid: (
            at(a, 0), at(a, 1), at(a, 2), at(a, 3), at(a, 4), at(a, 5), (at(a, 6) & 0x0F) | 0x40, at(a, 7),
            (at(b, 0) & 0x3F) | 0x80, at(b, 1), at(b, 2), at(b, 3), at(b, 4), at(b, 5), at(b, 6), at(b, 7)))
    }
}

/// The benchmark's tenants: 10k orgs × 100 members (1M memberships) and 10 bindings per org
/// (100k) on `/project:<p>` or `/project:<p>/doc:<d>`, drawn from a fixed seed.
/// Keep in step with `generate_dataset` in scripts/bench_casbin.py.
struct Dataset {
    static let seed: UInt64 = 0x5EED_2026
    static let checkSeed: UInt64 = 0xC0FFEE

    let userCount: Int
    let orgCount: Int
    static let membersPerOrg = 100
    static let bindingsPerOrg = 10

    var users: [UUID] = []
    var orgs: [UUID] = []
    /// Member k of org o is at o * membersPerOrg + k; member 0 is the org's owner.
    var memberUser: [Int32] = []
    var memberRole: [Role] = []
    /// Binding j of org o is at o * bindingsPerOrg + j.
    var bindingID: [UUID] = []
    var bindingUser: [Int32] = []
    var bindingPath: [String] = []
    var bindingIsDoc: [Bool] = []
    var bindingRole: [Role] = []

    var membershipCount: Int { memberUser.count }
    var bindingCount: Int { bindingUser.count }

    static func memberRole(_ r: Int) -> Role {
        r < 60 ? .viewer : r < 85 ? .editor : r < 95 ? .admin : .owner
    }

    static func bindingRole(_ r: Int) -> Role {
        r < 50 ? .viewer : r < 80 ? .editor : r < 95 ? .admin : .owner
    }

    init(orgs orgCount: Int = 10_000, users userCount: Int = 100_000) {
        precondition(userCount > 998 * Self.membersPerOrg / 1, "the stride trick needs users > 99,800")
        self.userCount = userCount
        self.orgCount = orgCount
        var rng = SplitMix64(seed: Self.seed)
        users.reserveCapacity(userCount)
        for _ in 0..<userCount { users.append(rng.uuid()) }
        orgs.reserveCapacity(orgCount)
        memberUser.reserveCapacity(orgCount * Self.membersPerOrg)
        memberRole.reserveCapacity(orgCount * Self.membersPerOrg)
        for _ in 0..<orgCount {
            orgs.append(rng.uuid())
            // 100 distinct users: start + k * step (mod users) with step * 99 < users.
            let start = rng.below(userCount)
            let step = 1 + rng.below(997)
            let first = memberUser.count
            for k in 0..<Self.membersPerOrg {
                memberUser.append(Int32((start + k * step) % userCount))
                memberRole.append(k == 0 ? .owner : Self.memberRole(rng.below(100)))
            }
            var seen = Set<String>()
            var made = 0
            while made < Self.bindingsPerOrg {
                let user: Int
                if rng.below(2) == 0 {
                    user = Int(memberUser[first + rng.below(Self.membersPerOrg)])
                } else {
                    user = rng.below(userCount)
                }
                let project = rng.below(20)
                let isDoc = rng.below(10) >= 3
                var path = "/project:\(project)"
                if isDoc { path += "/doc:\(rng.below(50))" }
                let role = Self.bindingRole(rng.below(100))
                // (org, subject, resource) is unique in the schema: draw again on a repeat.
                guard seen.insert("\(user)\(path)").inserted else { continue }
                bindingID.append(rng.uuid())
                bindingUser.append(Int32(user))
                bindingPath.append(path)
                bindingIsDoc.append(isDoc)
                bindingRole.append(role)
                made += 1
            }
        }
    }

    /// One org's grants as the decision engine holds them.
    func grants(org o: Int, withBindings: Bool = true) -> OrgGrants {
        var g = OrgGrants()
        g.members.reserveCapacity(Self.membersPerOrg)
        for i in (o * Self.membersPerOrg)..<((o + 1) * Self.membersPerOrg) {
            g.members[.user(users[Int(memberUser[i])])] = MemberGrant(role: memberRole[i])
        }
        if withBindings {
            for i in (o * Self.bindingsPerOrg)..<((o + 1) * Self.bindingsPerOrg) {
                g.addBinding(BindingGrant(id: bindingID[i], path: bindingPath[i], role: bindingRole[i]), for: .user(users[Int(bindingUser[i])]))
            }
        }
        return g
    }
}

/// Random decision questions: 55 % about a member of the org (any role asked, so both answers),
/// 25 % about a binding's subject on the bound object or below it (ancestor hits), 20 % about a
/// random user (almost always denied). Objects: the org (20 %), a project (30 %), a doc (50 %).
struct Checks {
    var user: [Int32] = []
    var org: [Int32] = []
    var path: [String] = []
    var required: [Role] = []

    var count: Int { user.count }

    /// `orgLimit` confines the checks to the first orgs (a working set that fits in the CPU caches);
    /// the default asks about all of them.
    init(_ d: Dataset, count: Int, orgLimit: Int? = nil) {
        var rng = SplitMix64(seed: Dataset.checkSeed)
        let orgRange = orgLimit.map { min($0, d.orgCount) } ?? d.orgCount
        user.reserveCapacity(count); org.reserveCapacity(count); path.reserveCapacity(count); required.reserveCapacity(count)
        func randomPath(_ rng: inout SplitMix64) -> String {
            let r = rng.below(10)
            if r < 2 { return "" }
            let p = rng.below(20)
            if r < 5 { return "/project:\(p)" }
            return "/project:\(p)/doc:\(rng.below(50))"
        }
        for _ in 0..<count {
            let o = rng.below(orgRange)
            let kind = rng.below(100)
            let u: Int
            var p: String
            if kind < 55 {
                u = Int(d.memberUser[o * Dataset.membersPerOrg + rng.below(Dataset.membersPerOrg)])
                p = randomPath(&rng)
            } else if kind < 80 {
                let b = o * Dataset.bindingsPerOrg + rng.below(Dataset.bindingsPerOrg)
                u = Int(d.bindingUser[b])
                p = d.bindingPath[b]
                if d.bindingIsDoc[b] {
                    if rng.below(2) == 0 { p += "/page:\(rng.below(10))" }
                } else {
                    if rng.below(2) == 0 { p += "/doc:\(rng.below(50))" }
                }
            } else {
                u = rng.below(d.userCount)
                p = randomPath(&rng)
            }
            user.append(Int32(u))
            org.append(Int32(o))
            path.append(p)
            required.append(Role.ranked[rng.below(4)])
        }
    }
}
