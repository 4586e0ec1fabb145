import Authority
import Foundation
import Logging
import Policy
import Storage
import Tenancy

/// `portcullis-bench`: the authorization decision path measured in process, on one thread.
///
///     portcullis-bench [--orgs N] [--checks N] [--rounds N] [--no-sqlite] [--keep-db PATH]
///     portcullis-bench --load-sqlite PATH     (only the cold load, from a file kept with --keep-db)
///     portcullis-bench --load-postgres URL    (only the cold load, from a schema kept with BENCH_KEEP_SCHEMA=1)
/// BENCH_NO_GROUPS=1 with either: the database holds no groups (issue 18's dataset).
///
/// Environment: `PORTCULLIS_BENCH_POSTGRES_URL` adds the cold load from PostgreSQL (a throwaway
/// schema is created in that database and dropped afterwards).
/// Prints a JSON summary on stdout and human-readable lines on stderr; `scripts/bench.sh` runs it.
@main
struct PortcullisBench {
    static func main() async throws {
        let options = Options.parse(CommandLine.arguments.dropFirst())
        var report = Report()
        report.machine = Machine.current()
        if let path = options.loadSQLite {
            // Iterating on allGrants(): time only the load, from an existing file.
            let dataset = Dataset(orgs: options.orgs)
            let db = try SQLiteDatabase(path: path)
            let groups: GroupData? = ProcessInfo.processInfo.environment["BENCH_NO_GROUPS"] == nil ? GroupData(dataset) : nil
            report.coldLoadSQLite = try await ColdLoad.load(dataset: dataset, groups: groups, db: db, backend: "sqlite", insertSeconds: 0, rows: 0, size: nil)
            await db.close()
            try emit(report)
            return
        }
        if let url = options.loadPostgres {
            let dataset = Dataset(orgs: options.orgs)
            let groups: GroupData? = ProcessInfo.processInfo.environment["BENCH_NO_GROUPS"] == nil ? GroupData(dataset) : nil
            report.coldLoadPostgres = try await ColdLoad.postgres(dataset: dataset, groups: groups, existing: url)
            try emit(report)
            return
        }
        say("portcullis-bench: \(options.orgs) orgs × \(Dataset.membersPerOrg) members, \(options.orgs * Dataset.bindingsPerOrg) bindings, \(options.checks) checks, \(options.rounds) rounds")

        // The dataset, as plain arrays (not counted in the cache's memory below).
        let genStart = ContinuousClock.now
        let dataset = Dataset(orgs: options.orgs)
        report.dataset = DatasetInfo(
            orgs: dataset.orgCount, users: dataset.userCount, memberships: dataset.membershipCount,
            bindings: dataset.bindingCount, seed: String(Dataset.seed, radix: 16), checks: options.checks,
            generateSeconds: seconds(since: genStart))
        say(String(format: "dataset generated in %.2f s", report.dataset!.generateSeconds))

        // (c) Memory: the whole dataset installed in a GrantCache, then memberships alone on top.
        let cache = GrantCache(loader: NoLoader())
        let rss0 = Memory.residentBytes()
        for o in 0..<dataset.orgCount { cache.install(dataset.orgs[o], dataset.grants(org: o)) }
        let rss1 = Memory.residentBytes()
        var membersOnlyDelta = 0
        do {
            let membersOnly = GrantCache(loader: NoLoader())
            for o in 0..<dataset.orgCount { membersOnly.install(dataset.orgs[o], dataset.grants(org: o, withBindings: false)) }
            membersOnlyDelta = Memory.residentBytes() - rss1
            precondition(membersOnly.count == dataset.orgCount)
        }
        report.memory = MemoryInfo(
            rssBeforeBytes: rss0, rssAfterBytes: rss1,
            bytesPerMembership: Double(rss1 - rss0) / Double(dataset.membershipCount),
            bytesPerMembershipWithoutBindings: Double(membersOnlyDelta) / Double(dataset.membershipCount),
            target: "<= 64 B per cached membership",
            layout: Layout(
                principalStride: MemoryLayout<Principal>.stride, memberGrantStride: MemoryLayout<MemberGrant>.stride,
                bindingGrantStride: MemoryLayout<BindingGrant>.stride, orgGrantsStride: MemoryLayout<OrgGrants>.stride,
                memberSlotStride: MemberTable.slotStride,
                membersCapacityPerOrg: cache.cached(dataset.orgs[0])?.grants?.members.capacity ?? 0))
        let l = report.memory!.layout
        say("layout: Principal \(l.principalStride) B, member slot \(l.memberSlotStride) B, BindingGrant \(l.bindingGrantStride) B (strides); members table of a 100-member org holds \(l.membersCapacityPerOrg) before growing")
        say(String(format: "RSS per cached membership: %.1f B (memberships and bindings: %.0f MiB for %d memberships + %d bindings); memberships alone: %.1f B",
                   report.memory!.bytesPerMembership, Double(rss1 - rss0) / 1_048_576, dataset.membershipCount, dataset.bindingCount,
                   report.memory!.bytesPerMembershipWithoutBindings))

        // (a), (b) Decisions per second.
        report.decisions = try await InProcess.run(dataset: dataset, cache: cache, options: options)
        // The same with groups and overrides, and a check through a group against a direct one.
        let groups = GroupData(dataset)
        report.groups = try await GroupBench.run(
            dataset: dataset, groups: groups, base: try InProcess.inputs(dataset, Checks(dataset, count: options.checks)), options: options)

        // (d) Cold load.
        if options.sqlite {
            (report.coldLoadSQLite, report.coldLoadSQLiteWithGroups) = try await ColdLoad.sqlite(dataset: dataset, groups: groups, keepAt: options.keepDB)
        }
        if let url = ProcessInfo.processInfo.environment["PORTCULLIS_BENCH_POSTGRES_URL"], !url.isEmpty {
            (report.coldLoadPostgres, report.coldLoadPostgresWithGroups) = try await ColdLoad.postgres(dataset: dataset, groups: groups, url: url)
        }

        try emit(report)
    }

    static func emit(_ report: Report) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}

struct Options {
    var orgs = 10_000
    var checks = 1_000_000
    var rounds = 7
    var sqlite = true
    var keepDB: String?
    var loadSQLite: String?
    var loadPostgres: String?

    static func parse(_ args: ArraySlice<String>) -> Options {
        var o = Options()
        var it = args.makeIterator()
        func number(_ name: String) -> Int {
            guard let v = it.next(), let n = Int(v.replacingOccurrences(of: "_", with: "")), n > 0 else { usage("\(name) needs a positive number") }
            return n
        }
        while let a = it.next() {
            switch a {
            case "--orgs": o.orgs = number(a)
            case "--checks": o.checks = number(a)
            case "--rounds": o.rounds = number(a)
            case "--no-sqlite": o.sqlite = false
            case "--keep-db":
                guard let path = it.next() else { usage("--keep-db needs a path") }
                o.keepDB = path
            case "--load-sqlite":
                guard let path = it.next() else { usage("--load-sqlite needs a path") }
                o.loadSQLite = path
            case "--load-postgres":
                guard let url = it.next() else { usage("--load-postgres needs a URL") }
                o.loadPostgres = url
            case "-h", "--help": usage(nil)
            default: usage("unknown argument \(a)")
            }
        }
        return o
    }

    static func usage(_ error: String?) -> Never {
        if let error { say("portcullis-bench: \(error)") }
        say("usage: portcullis-bench [--orgs N] [--checks N] [--rounds N] [--no-sqlite] [--keep-db PATH] | --load-sqlite PATH | --load-postgres URL")
        exit(error == nil ? 0 : 2)
    }
}

/// Never asked: every org of the dataset is installed before deciding.
struct NoLoader: GrantLoader {
    func grants(orgID: UUID) async throws -> OrgGrants? { nil }
}

func say(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// CPU time of the whole process (its other threads idle while a loop runs).
func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

enum Memory {
    /// Resident set size from /proc/self/statm (second field, in pages).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

// MARK: - Report

struct Report: Encodable {
    var machine: Machine?
    var dataset: DatasetInfo?
    var memory: MemoryInfo?
    var decisions: DecisionsInfo?
    var groups: GroupsInfo?
    var coldLoadSQLite: ColdLoadInfo?
    var coldLoadPostgres: ColdLoadInfo?
    /// The same loads once groups, group memberships and bindings, and overrides are added.
    var coldLoadSQLiteWithGroups: ColdLoadInfo?
    var coldLoadPostgresWithGroups: ColdLoadInfo?
}

struct Machine: Encodable {
    var cpus: Int
    var cpuModel: String
    var memoryBytes: Int
    var build: String

    static func current() -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        return Machine(cpus: ProcessInfo.processInfo.activeProcessorCount, cpuModel: model,
                       memoryBytes: Int(ProcessInfo.processInfo.physicalMemory), build: build)
    }
}

struct DatasetInfo: Encodable {
    var orgs: Int
    var users: Int
    var memberships: Int
    var bindings: Int
    var seed: String
    var checks: Int
    var generateSeconds: Double
}

struct MemoryInfo: Encodable {
    var rssBeforeBytes: Int
    var rssAfterBytes: Int
    var bytesPerMembership: Double
    var bytesPerMembershipWithoutBindings: Double
    var target: String
    var layout: Layout
}

/// Why the bytes are what they are: each dictionary entry costs a key and a value stride, and a
/// Swift dictionary keeps its load at or below 3/4 with power-of-two bucket counts.
struct Layout: Encodable {
    var principalStride: Int
    var memberGrantStride: Int
    var bindingGrantStride: Int
    var orgGrantsStride: Int
    /// One member's slot in `MemberTable`.
    var memberSlotStride: Int
    /// Slots allocated for one org's 100 members.
    var membersCapacityPerOrg: Int
}

struct Rate: Encodable {
    /// Median over the rounds, and the extremes.
    var perSecond: Double
    var minPerSecond: Double
    var maxPerSecond: Double
    var nanosecondsPerDecision: Double

    /// The same per second of this process' CPU time: what one core achieves when nothing else
    /// competes for it (the machines here are shared), and how much of a core the rounds got.
    var cpuPerSecond: Double
    var coreShare: Double

    init(_ rates: [Double], cpuRates: [Double]) {
        perSecond = median(rates)
        minPerSecond = rates.min() ?? 0
        maxPerSecond = rates.max() ?? 0
        nanosecondsPerDecision = perSecond > 0 ? 1e9 / perSecond : 0
        cpuPerSecond = median(cpuRates)
        coreShare = cpuPerSecond > 0 ? perSecond / cpuPerSecond : 0
    }
}

struct DecisionsInfo: Encodable {
    var checks: Int
    var rounds: Int
    var allowedFraction: Double
    /// Allowed answers among the first 5000 checks: scripts/bench_casbin.py must count the same.
    var allowedInFirst5000: Int
    var parsedEngine: Rate
    var parsedPolicyService: Rate
    var stringsEngine: Rate
    var stringsPolicyService: Rate
    /// Diagnostics: the same lookups without building a `Decision` (its reason string), and
    /// `ObjectRef.parse` alone, Foundation's `UUID(uuidString:)` alone; and the parsed path when every check asks about one of 16 orgs.
    var parsedRoleOnly: Rate
    var parsedHot16Orgs: Rate
    var parseOnly: Rate
    var uuidParseOnly: Rate
    var foundationUUIDParseOnly: Rate
    /// Nanoseconds per dependent load over 256 MiB (`MemoryLatency`).
    var memoryLatencyNanoseconds: Double
    var targets: [String: String]
}

struct ColdLoadInfo: Encodable, Sendable {
    var backend: String
    var insertSeconds: Double
    var insertedRows: Int
    var databaseBytes: Int?
    var allGrantsSeconds: Double
    var installSeconds: Double
    var totalSeconds: Double
    var memberships: Int
    var bindings: Int
    var groupMemberships: Int
    var overrides: Int
    var rssGrowthBytes: Int
    var lazyOrgP50Seconds: Double
    var lazyOrgP99Seconds: Double
    var target: String
}
