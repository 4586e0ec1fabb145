import Foundation
import Synchronization

/// Puts a deadline on every database operation and fails fast while the database is down.
///
/// A stopped or hung PostgreSQL would otherwise hold requests for as long as the driver waits
/// (PostgresNIO waits for a connection indefinitely). Here an operation that has not finished
/// within `timeout` answers `StorageError.unavailable` (503 at the edge); the abandoned work is
/// cancelled and finishes or fails in the background. After a few such failures in a row the next
/// second's operations fail at once instead of queueing behind the dead server — a simple circuit
/// breaker, so memory stays bounded while the database is away. One slow query alone does not trip it. SQLite is local: it gets the deadline but
/// no breaker, since "busy" there means contention, not an outage.
public final class GuardedDatabase: SQLDatabase {
    public let base: any SQLDatabase

    public func dedicated() async throws -> any SQLDatabase { try await base.dedicated() }
    public let timeout: Duration
    private let breaker: Bool
    private let state = Mutex(State())
    /// How long the breaker stays open, and after how many failures in a row it opens.
    static let openFor: TimeInterval = 1
    static let tripAfter = 3

    struct State {
        var openUntil = Date.distantPast
        var inFlight = 0
        var failures = 0
        var consecutive = 0
    }

    public init(_ base: any SQLDatabase, timeout: Duration) {
        self.base = base
        self.timeout = timeout
        self.breaker = base.dialect == .postgres
    }

    public var dialect: SQLDialect { base.dialect }

    /// Operations running now, and operations that failed because the database was unreachable.
    public var stats: (inFlight: Int, failures: Int) { state.withLock { ($0.inFlight, $0.failures) } }

    public func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await guarded(timeout) { [base] in try await base.query(sql, binds) }
    }

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLExecutor) async throws -> T) async throws -> T {
        try await guarded(timeout) { [base] in try await base.transaction(body) }
    }

    public func scan<State: Sendable>(
        _ sql: String, _ binds: [SQLValue], into state: State, _ body: @escaping @Sendable (inout State, SQLRow) throws -> Void
    ) async throws -> State {
        try await guarded(timeout) { [base] in try await base.scan(sql, binds, into: state, body) }
    }

    /// Readiness answers within a second whatever the configured deadline; at once while the breaker is open.
    public func ping() async throws {
        if breaker, state.withLock({ $0.openUntil > Date() }) {
            throw StorageError.unavailable("the database failed moments ago")
        }
        try await Self.race(min(timeout, .seconds(1))) { [base] in try await base.ping() }
    }

    public func run() async { await base.run() }

    public func close() async { await base.close() }

    private func guarded<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let now = Date()
        let open = state.withLock { s -> Bool in
            if breaker, s.openUntil > now { s.failures += 1; return true }
            s.inFlight += 1
            return false
        }
        if open { throw StorageError.unavailable("the database failed moments ago; not waiting on it") }
        do {
            let result = try await Self.race(limit, work)
            state.withLock { s in
                s.inFlight -= 1
                s.consecutive = 0
            }
            return result
        } catch let error as StorageError {
            state.withLock { s in
                s.inFlight -= 1
                if case .unavailable = error {
                    s.failures += 1
                    s.consecutive += 1
                    if breaker, s.consecutive >= Self.tripAfter { s.openUntil = Date().addingTimeInterval(Self.openFor) }
                } else {
                    s.consecutive = 0
                }
            }
            throw error
        } catch {
            state.withLock { $0.inFlight -= 1 }
            throw error
        }
    }

    /// Runs `work` in its own task and returns its result, or throws `unavailable` when `limit`
    /// passes first. Unstructured on purpose: a task group would wait for a hung child.
    static func race<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let outcome = Outcome<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                outcome.set(continuation)
                let task = Task {
                    do { outcome.finish(.success(try await work())) } catch { outcome.finish(.failure(error)) }
                }
                let timer = Task {
                    try? await Task.sleep(for: limit)
                    if !Task.isCancelled, outcome.finish(.failure(StorageError.unavailable("the database did not answer within \(limit)"))) {
                        task.cancel()
                    }
                }
                outcome.onFinish { timer.cancel(); task.cancel() }
            }
        } onCancel: {
            outcome.finish(.failure(CancellationError()))
        }
    }

    /// The continuation resumed exactly once, by whichever of work, timer and cancellation comes first.
    final class Outcome<T: Sendable>: Sendable {
        private struct Slot {
            var continuation: CheckedContinuation<T, any Error>?
            var early: Result<T, any Error>?
            var cleanup: (@Sendable () -> Void)?
            var done = false
        }
        private let slot = Mutex(Slot())

        func set(_ continuation: CheckedContinuation<T, any Error>) {
            let early: Result<T, any Error>? = slot.withLock { s in
                if let e = s.early { s.early = nil; return e }
                s.continuation = continuation
                return nil
            }
            if let early { continuation.resume(with: early) }
        }

        func onFinish(_ cleanup: @escaping @Sendable () -> Void) {
            let runNow = slot.withLock { s -> Bool in
                if s.done { return true }
                s.cleanup = cleanup
                return false
            }
            if runNow { cleanup() }
        }

        /// True when this call decided the outcome.
        @discardableResult
        func finish(_ result: Result<T, any Error>) -> Bool {
            let (continuation, cleanup, won) = slot.withLock { s -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?, Bool) in
                guard !s.done else { return (nil, nil, false) }
                s.done = true
                let c = s.continuation
                if c == nil { s.early = result }
                s.continuation = nil
                let cleanup = s.cleanup
                s.cleanup = nil
                return (c, cleanup, true)
            }
            continuation?.resume(with: result)
            cleanup?()
            return won
        }
    }
}
