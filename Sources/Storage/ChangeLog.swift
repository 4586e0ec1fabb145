import Authority
import Foundation
import Policy
import Synchronization
import Tenancy
import Memberwise

/// The change log: one row per acknowledged write, numbered by a monotonic revision.
/// Other nodes follow it (`ChangeFeed`) to keep their in-memory state exact, and clients use
/// revisions for read-your-writes.
@PublicInit
public struct Change: Sendable, Equatable {
    public var revision: Int64
    public var at: Date
    public var kind: String
    public var subject: String

    public init(revision: Int64, at: Date, _ event: ChangeEvent) {
        self.init(revision: revision, at: at, kind: event.kind, subject: event.subject)
    }

    /// What the row records, typed.
    public var event: ChangeEvent { ChangeEvent(kind: kind, subject: subject) }
}

/// A transaction's executor that remembers the changes `ChangeLog.append` records through it.
struct RecordingExecutor: SQLExecutor {
    let base: any SQLExecutor
    let collector: ChangeCollector
    var dialect: SQLDialect { base.dialect }

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await base.query(sql, binds)
    }

    /// Runs `body` in one transaction of `db` and hands what it recorded to `observer` after the commit.
    static func transaction<T: Sendable>(
        _ db: any SQLDatabase, observer: ChangeObserver?, _ body: @escaping @Sendable (any SQLExecutor) async throws -> T
    ) async throws -> T {
        let collector = ChangeCollector()
        let result = try await db.transaction { tx in
            collector.reset() // a retried transaction starts over
            let result = try await body(RecordingExecutor(base: tx, collector: collector))
            // Last, so each event carries its object as this transaction leaves it.
            try await WebhookCapture.record(collector.audits, changes: collector.changes, in: tx)
            return result
        }
        if let observer { await observer(collector.changes) }
        return result
    }
}

/// An observer connected after the stores that report to it are made: the identity store
/// exists before the services that apply changes do.
public final class ChangeRelay: Sendable {
    private let target = Mutex<ChangeObserver?>(nil)

    public init() {}

    public func connect(_ observer: @escaping ChangeObserver) { target.withLock { $0 = observer } }

    public var observer: ChangeObserver {
        { [self] changes in await self.target.withLock({ $0 })?(changes) }
    }
}

/// Collects the changes one transaction records, for the store's `ChangeObserver`.
/// Also collects its audit records, which become webhook events at its end.
final class ChangeCollector: Sendable {
    private let recorded = Mutex<(changes: [Change], audits: [AuditEvent])>(([], []))

    func add(_ change: Change) { recorded.withLock { $0.changes.append(change) } }
    func add(_ audit: AuditEvent) { recorded.withLock { $0.audits.append(audit) } }
    func reset() { recorded.withLock { $0 = ([], []) } }
    var changes: [Change] { recorded.withLock { $0.changes } }
    var audits: [AuditEvent] { recorded.withLock { $0.audits } }
}

/// Receives the changes a store committed, right after the commit: how a node applies its own
/// writes to its in-memory state at once instead of waiting for the change feed.
public typealias ChangeObserver = @Sendable ([Change]) async -> Void

enum ChangeLog {
    static let orderLockKey: Int64 = 0x5043_4C43_4847 // "PCLCHG"

    /// The PostgreSQL channel each change-log insert notifies, with its revision as the payload.
    static let channel = "portcullis_changes"

    /// Appends a change inside the caller's transaction and returns its revision.
    ///
    /// On PostgreSQL an identity value is taken at insert but becomes visible at commit, so two
    /// concurrent writers could commit revisions out of order and a follower reading
    /// `revision > cursor` would skip the late one for ever. A transaction-scoped advisory lock
    /// taken before the insert makes revision order and commit order the same. (SQLite
    /// transactions are serialized already.)
    ///
    /// On PostgreSQL the same statement queues a `NOTIFY` on `channel`: it is delivered at the
    /// commit (never for a rollback), and wakes the other nodes' followers at once.
    static func append(_ tx: any SQLExecutor, _ event: ChangeEvent, at: Date) async throws -> Int64 {
        let (kind, subject) = (event.kind, event.subject)
        let insert = "INSERT INTO changes (at, kind, subject) VALUES ($1, $2, $3) RETURNING revision"
        let row: SQLRow?
        if tx.dialect == .postgres {
            try await tx.lockForTransaction(orderLockKey)
            // One round trip: the notification rides on the insert (pg_notify's void result is
            // joined away, so only the revision comes back).
            row = try await tx.queryFirst("""
                WITH c AS (\(insert)), n AS (SELECT pg_notify($4, revision::text) FROM c)
                SELECT revision FROM c, n
                """, at, kind, subject, channel)
        } else {
            row = try await tx.queryFirst(insert, at, kind, subject)
        }
        guard let row else { throw StorageError.other("change log insert returned nothing") }
        let revision = try row.int("revision")
        // Inside `RecordingExecutor.transaction` the change also reaches the store's observer.
        (tx as? RecordingExecutor)?.collector.add(Change(revision: revision, at: at, event))
        return revision
    }

    static func since(_ db: any SQLExecutor, revision: Int64, limit: Int) async throws -> [Change] {
        try await db.query(
            "SELECT revision, at, kind, subject FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2",
            revision, limit
        ).map { row in
            Change(revision: try row.int("revision"), at: try row.date("at"), kind: try row.string("kind"), subject: try row.string("subject"))
        }
    }

    static func latest(_ db: any SQLExecutor) async throws -> Int64 {
        try await db.queryFirst("SELECT COALESCE(MAX(revision), 0) AS revision FROM changes")?.int("revision") ?? 0
    }
}

/// Reads the change log, and says when to: by polling every `interval` (SQLite, several
/// processes on one file) and, on PostgreSQL, also whenever a commit notifies (`notifications`).
/// Give it a database of its own (`SQLDatabase.dedicated()`): it must never wait behind request
/// traffic or an open breaker, since the node's freshness is measured by it.
public struct ChangeFeed: Sendable {
    public let database: any SQLDatabase
    public let interval: Duration
    /// Commits announced as they happen, where the database can (PostgreSQL).
    public let notifications: (any SQLNotifications)?
    /// How long to wait before listening again after the listening connection failed; the
    /// poll covers the gap.
    static let relisten: Duration = .seconds(1)

    /// `listen: false` leaves only the poll (tests of a node whose follower has fallen behind).
    public init(database: any SQLDatabase, interval: Duration = .milliseconds(50), listen: Bool = true) {
        self.database = database
        self.interval = interval
        notifications = listen ? database as? any SQLNotifications : nil
    }

    public func latestRevision() async throws -> Int64 {
        try await ChangeLog.latest(database)
    }

    /// Reads changes after `revision` (at most `limit`).
    public func changes(after revision: Int64, limit: Int = 1000) async throws -> [Change] {
        try await ChangeLog.since(database, revision: revision, limit: limit)
    }
}

/// Applies the change log to this node's in-memory state, in order, exactly once per change.
///
/// `run` reads when a commit is announced and polls on the feed's interval; `reach(n)` reads
/// through at once when a request asks for revision n (`at_least`), so read-your-writes never
/// waits for either.
public final class ChangeApplier: Sendable {
    public let feed: ChangeFeed
    let handle: @Sendable ([Change]) async -> Void
    /// Sees every batch read, this node's own changes included, in log order (the watch streams).
    let tap: @Sendable ([Change]) -> Void
    let local: LocalChanges
    private let cursor: Mutex<Int64>
    private let lock = AsyncLock()
    /// When a catch-up last read the log to its head: the memory was current then.
    private let currentAt: Mutex<ContinuousClock.Instant>

    public init(
        feed: ChangeFeed, from start: Int64, local: LocalChanges = LocalChanges(),
        tap: @escaping @Sendable ([Change]) -> Void = { _ in }, handle: @escaping @Sendable ([Change]) async -> Void
    ) {
        self.feed = feed
        self.handle = handle
        self.tap = tap
        self.local = local
        cursor = Mutex(start)
        // `start` was read from the log's head just now.
        currentAt = Mutex(.now)
    }

    /// Every change up to this revision has been applied here.
    public var applied: Int64 { cursor.withLock { $0 } }

    /// How long ago this node last showed it had applied the whole log.
    public var staleness: Duration { ContinuousClock.now - currentAt.withLock { $0 } }

    /// Reads and applies whatever the database has beyond the cursor.
    public func catchUp() async throws {
        try await lock.withLock { [self] in
            while true {
                let from = applied
                let asked = ContinuousClock.now
                let batch = try await feed.changes(after: from)
                // A short batch is the log's head as of `asked`: what the memory holds after
                // applying it was current then.
                defer { if batch.count < 1000 { currentAt.withLock { $0 = max($0, asked) } } }
                guard let last = batch.last else { return }
                // This node's own writes were applied right after their commit; applying them
                // again would only drop freshly loaded cache entries.
                let foreign = batch.filter { !local.take($0.revision) }
                if !foreign.isEmpty { await handle(foreign) }
                cursor.withLock { $0 = last.revision }
                tap(batch)
                if batch.count < 1000 { return }
            }
        }
    }

    /// True once revision `n` is applied here (catching up first when it is not yet).
    /// False when the database itself has no such revision yet.
    public func reach(_ revision: Int64) async throws -> Bool {
        if applied >= revision { return true }
        try await catchUp()
        return applied >= revision
    }

    /// Reads the log whenever woken, until the task is cancelled: by each interval's tick and by
    /// each announced commit. A wake-up carries nothing but "read now" (the read goes by revision
    /// as always), so a lost one costs at most an interval. Transient database errors are retried.
    public func run() async {
        // Wake-ups coalesce: however many arrive during a read, one more read follows it.
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withDiscardingTaskGroup { group in
            group.addTask { [feed] in
                while !Task.isCancelled {
                    wake.yield()
                    try? await Task.sleep(for: feed.interval)
                }
            }
            if let notifications = feed.notifications {
                group.addTask { await self.listen(notifications, wake: wake) }
            }
            for await _ in wakes { try? await catchUp() }
            group.cancelAll()
        }
    }

    /// Keeps a listen for announced commits in place, again after every loss.
    private func listen(_ notifications: any SQLNotifications, wake: AsyncStream<Void>.Continuation) async {
        while !Task.isCancelled {
            try? await notifications.listen(
                on: ChangeLog.channel, listening: { wake.yield() },
                heard: { [self] payload in if unread(payload) { wake.yield() } })
            try? await Task.sleep(for: ChangeFeed.relisten)
        }
    }

    /// False for a revision already applied here, or written here (applied at its commit): no
    /// read needed. The channel is shared by every schema in the database, so a payload may
    /// be another deployment's number; it then costs one needless read at most.
    private func unread(_ payload: String) -> Bool {
        guard let revision = Int64(payload) else { return true }
        return revision > applied && !local.contains(revision)
    }
}

/// This node's memory against the staleness bound (SPEC §18): past it, answers read through
/// the database and credentials are checked against it.
@PublicInit
public struct Freshness: RevisionGate {
    public let changes: ChangeApplier
    public let bound: Duration

    public var isStale: Bool { changes.staleness > bound }

    public func reach(_ revision: Int64) async throws -> Bool { try await changes.reach(revision) }
}

/// Revisions this node wrote and already applied (through a store's `ChangeObserver`), so the
/// applier can skip them when it meets them in the log. Bounded: if it ever fills (revisions
/// far ahead of the cursor), it is cleared, which only costs a redundant invalidation.
public final class LocalChanges: Sendable {
    private let revisions = Mutex(Set<Int64>())

    public init() {}

    public func note(_ changes: [Change]) {
        revisions.withLock { set in
            if set.count > 100_000 { set.removeAll() }
            for c in changes { set.insert(c.revision) }
        }
    }

    func contains(_ revision: Int64) -> Bool {
        revisions.withLock { $0.contains(revision) }
    }

    func take(_ revision: Int64) -> Bool {
        revisions.withLock { $0.remove(revision) != nil }
    }
}
