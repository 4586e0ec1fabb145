import Authority
import Foundation
import Policy
import Tenancy

/// Decisions per second on one thread over a pre-generated list of checks, every org cached.
enum InProcess {
    struct Inputs {
        var subjects: [Subject] = []
        var objects: [ObjectRef] = []
        var requirements: [Requirement] = []
        var objectStrings: [String] = []
        var actionStrings: [String] = []
    }

    /// Half the checks name the role, half a built-in permission with that least role
    /// (editor has none, so it stays a role name).
    static func action(for role: Role, _ i: Int) -> String {
        guard i % 2 == 1 else { return role.rawValue }
        switch role {
        case .viewer: return Permission.orgRead
        case .editor: return role.rawValue
        case .admin: return Permission.bindingsWrite
        case .owner: return Permission.orgDelete
        }
    }

    static func inputs(_ d: Dataset, _ checks: Checks) throws -> Inputs {
        var x = Inputs()
        x.subjects.reserveCapacity(checks.count)
        x.objects.reserveCapacity(checks.count)
        x.requirements.reserveCapacity(checks.count)
        x.objectStrings.reserveCapacity(checks.count)
        x.actionStrings.reserveCapacity(checks.count)
        let table = PermissionTable.builtIn
        for i in 0..<checks.count {
            let org = d.orgs[Int(checks.org[i])]
            x.subjects.append(.user(d.users[Int(checks.user[i])]))
            x.objects.append(ObjectRef(orgID: org, path: checks.path[i]))
            x.requirements.append(try table.requirement(for: checks.required[i].rawValue))
            x.objectStrings.append("org:" + org.uuidString.lowercased() + checks.path[i])
            x.actionStrings.append(action(for: checks.required[i], i))
        }
        return x
    }

    // MARK: Loops (never inlined into each other, so each measures only itself)

    @inline(never)
    static func parsedEngine(_ cache: GrantCache, _ x: Inputs, upTo n: Int) -> Int {
        let now = Date().instant
        var allowed = 0
        for i in 0..<n {
            let object = x.objects[i]
            if DecisionEngine.decide(cache.cached(object.orgID)?.grants, subject: x.subjects[i], object: object, required: x.requirements[i], now: now).allowed {
                allowed &+= 1
            }
        }
        return allowed
    }

    @inline(never)
    static func parsedPolicy(_ policy: PolicyService, _ x: Inputs) async throws -> Int {
        var allowed = 0
        for i in 0..<x.objects.count where try await policy.decide(x.subjects[i], x.objects[i], x.requirements[i]).allowed {
            allowed &+= 1
        }
        return allowed
    }

    @inline(never)
    static func stringsEngine(_ cache: GrantCache, _ x: Inputs) -> Int {
        let now = Date().instant
        let table = PermissionTable.builtIn
        var allowed = 0
        for i in 0..<x.objectStrings.count {
            do {
                let object = try ObjectRef.parse(x.objectStrings[i])
                let required = try table.requirement(for: x.actionStrings[i])
                if DecisionEngine.decide(cache.cached(object.orgID)?.grants, subject: x.subjects[i], object: object, required: required, now: now).allowed {
                    allowed &+= 1
                }
            } catch {
                fatalError("bad generated check \(i): \(error)")
            }
        }
        return allowed
    }

    @inline(never)
    static func stringsPolicy(_ policy: PolicyService, _ x: Inputs) async throws -> Int {
        var allowed = 0
        for i in 0..<x.objectStrings.count {
            let object = try ObjectRef.parse(x.objectStrings[i])
            let required = try policy.requirement(x.actionStrings[i])
            if try await policy.decide(x.subjects[i], object, required).allowed { allowed &+= 1 }
        }
        return allowed
    }

    /// The cache lookup and the role walk without building a `Decision`.
    @inline(never)
    static func parsedRoleOnly(_ cache: GrantCache, _ x: Inputs) -> Int {
        let now = Date().instant
        var allowed = 0
        for i in 0..<x.objects.count {
            let object = x.objects[i]
            if let snapshot = cache.cached(object.orgID), let grants = snapshot.grants,
               let role = grants.role(of: x.subjects[i].principal, on: object.path, at: now),
               role >= x.requirements[i].role {
                allowed &+= 1
            }
        }
        return allowed
    }

    @inline(never)
    static func uuidOnly(_ strings: [String]) -> Int {
        var n = 0
        for s in strings {
            if let u = UUIDText.parse(s) { n &+= Int(u.uuid.15) }
        }
        return n
    }

    @inline(never)
    static func foundationUUIDOnly(_ strings: [String]) -> Int {
        var n = 0
        for s in strings {
            if let u = UUID(uuidString: s) { n &+= Int(u.uuid.15) }
        }
        return n
    }

    @inline(never)
    static func parseOnly(_ x: Inputs) -> Int {
        var n = 0
        for s in x.objectStrings {
            if let o = try? ObjectRef.parse(s) { n &+= o.path.utf8.count }
        }
        return n
    }

    /// Runs `body` `rounds` times over `count` checks; decisions per second of each round.
    static func measure(_ name: String, rounds: Int, count: Int, expect: Int?, _ body: () async throws -> Int) async rethrows -> Rate {
        var rates: [Double] = []
        var cpuRates: [Double] = []
        for _ in 0..<rounds {
            let cpu = processCPUSeconds()
            let start = ContinuousClock.now
            let result = try await body()
            let s = seconds(since: start)
            let c = processCPUSeconds() - cpu
            if let expect, result != expect { fatalError("\(name): \(result) allowed, expected \(expect)") }
            rates.append(Double(count) / s)
            cpuRates.append(Double(count) / c)
        }
        let rate = Rate(rates, cpuRates: cpuRates)
        say(String(format: "%@: %.2f M decisions/s (p50 of %d rounds, %.0f ns each; min %.2f M, max %.2f M; %.2f M per CPU second, %.0f %% of a core)",
                   name, rate.perSecond / 1e6, rounds, rate.nanosecondsPerDecision, rate.minPerSecond / 1e6, rate.maxPerSecond / 1e6,
                   rate.cpuPerSecond / 1e6, 100 * rate.coreShare))
        return rate
    }

    static func run(dataset d: Dataset, cache: GrantCache, options: Options) async throws -> DecisionsInfo {
        let checks = Checks(d, count: options.checks)
        let x = try inputs(d, checks)
        let policy = PolicyService(cache: cache, permissions: .builtIn)
        let n = x.objects.count

        let allowed = parsedEngine(cache, x, upTo: n)
        let first5000 = parsedEngine(cache, x, upTo: min(5000, n))
        say(String(format: "checks: %d, %.1f %% allowed; allowed among the first 5000: %d", n, 100 * Double(allowed) / Double(n), first5000))

        // One warm-up pass each, then the measured rounds; every pass must give the same answers.
        _ = parsedEngine(cache, x, upTo: n)
        let parsedEngineRate = await measure("parsed, GrantCache.cached + DecisionEngine.decide", rounds: options.rounds, count: n, expect: allowed) {
            parsedEngine(cache, x, upTo: n)
        }
        _ = try await parsedPolicy(policy, x)
        let parsedPolicyRate = try await measure("parsed, PolicyService.decide", rounds: options.rounds, count: n, expect: allowed) {
            try await parsedPolicy(policy, x)
        }
        _ = stringsEngine(cache, x)
        let stringsEngineRate = await measure("strings, parse + requirement + cached + decide", rounds: options.rounds, count: n, expect: allowed) {
            stringsEngine(cache, x)
        }
        _ = try await stringsPolicy(policy, x)
        let stringsPolicyRate = try await measure("strings, parse + PolicyService.requirement + PolicyService.decide", rounds: options.rounds, count: n, expect: allowed) {
            try await stringsPolicy(policy, x)
        }
        _ = parsedRoleOnly(cache, x)
        let roleOnlyRate = await measure("diagnostic: parsed, cached + OrgGrants.role (no Decision)", rounds: options.rounds, count: n, expect: allowed) {
            parsedRoleOnly(cache, x)
        }
        let hot = try inputs(d, Checks(d, count: n, orgLimit: 16))
        let hotAllowed = parsedEngine(cache, hot, upTo: n)
        let hotRate = await measure("diagnostic: parsed, cached + decide, checks confined to 16 orgs (cache-resident)", rounds: options.rounds, count: n, expect: hotAllowed) {
            parsedEngine(cache, hot, upTo: n)
        }
        _ = parseOnly(x)
        let parseRate = await measure("diagnostic: ObjectRef.parse alone", rounds: options.rounds, count: n, expect: nil) {
            parseOnly(x)
        }
        let uuidStrings = x.objects.map { $0.orgID.uuidString.lowercased() }
        _ = uuidOnly(uuidStrings)
        let uuidRate = await measure("diagnostic: UUIDText.parse alone", rounds: options.rounds, count: n, expect: nil) {
            uuidOnly(uuidStrings)
        }
        _ = foundationUUIDOnly(uuidStrings)
        let foundationRate = await measure("diagnostic: Foundation UUID(uuidString:) alone", rounds: options.rounds, count: n, expect: nil) {
            foundationUUIDOnly(uuidStrings)
        }
        let latency = MemoryLatency.measure()
        say(String(format: "diagnostic: one dependent load from memory (a pointer chase over %d MiB): %.0f ns; a parsed decision across 10,000 orgs costs %.1f of them, one across 16 orgs %.1f",
                   MemoryLatency.bytes >> 20, latency, parsedEngineRate.nanosecondsPerDecision / latency, hotRate.nanosecondsPerDecision / latency))
        return DecisionsInfo(
            checks: n, rounds: options.rounds, allowedFraction: Double(allowed) / Double(n), allowedInFirst5000: first5000,
            parsedEngine: parsedEngineRate, parsedPolicyService: parsedPolicyRate,
            stringsEngine: stringsEngineRate, stringsPolicyService: stringsPolicyRate,
            parsedRoleOnly: roleOnlyRate, parsedHot16Orgs: hotRate, parseOnly: parseRate, uuidParseOnly: uuidRate, foundationUUIDParseOnly: foundationRate,
            memoryLatencyNanoseconds: latency,
            targets: ["parsed": ">= 5M decisions/s", "strings": ">= 2M decisions/s"])
    }
}

/// The machine's memory latency: how long one load takes when its address comes from the load
/// before, over a table far larger than the CPU's caches. A decision across many orgs is such a
/// chain of loads (issue 18), so its cost divided by this is about how many of them it makes.
enum MemoryLatency {
    static let bytes = 256 << 20

    static func measure() -> Double {
        let n = bytes / MemoryLayout<UInt32>.stride
        // One cycle through every slot in a random order (Sattolo's algorithm): no prefetcher can guess the next.
        var next = [UInt32](unsafeUninitializedCapacity: n) { buffer, count in
            for i in 0..<n { buffer[i] = UInt32(i) }
            count = n
        }
        var rng = SystemRandomNumberGenerator()
        var i = n - 1
        while i > 0 {
            let j = Int.random(in: 0..<i, using: &rng)
            next.swapAt(i, j)
            i -= 1
        }
        return next.withUnsafeBufferPointer { table in
            var at: UInt32 = 0
            for _ in 0..<1_000_000 { at = table[Int(at)] }  // warm-up
            let steps = 10_000_000
            let start = ContinuousClock.now
            for _ in 0..<steps { at = table[Int(at)] }
            let s = seconds(since: start)
            precondition(at < UInt32(n))
            return s * 1e9 / Double(steps)
        }
    }
}
