import Foundation
import Synchronization

/// Requests for account mail (password reset, a fresh verification link) that must not reveal
/// whether an address has an account. The HTTP request only queues the address and answers;
/// looking the account up, writing the token and queueing the mail happen here, after the
/// answer, so neither the answer's timing nor anything counted on the request path differs
/// between known and unknown addresses.
///
/// The queue lives in this node's memory and is bounded: under a flood the oldest requests are
/// dropped (the person asks again), and a crash loses what was not processed yet — the same
/// outcome as a mail that never arrived.
public final class AccountMailQueue: Sendable {
    public enum Request: Sendable, Equatable {
        case passwordReset(email: String)
        case verification(email: String)
        /// A sign-in code, mailed only when a verified account has the address.
        case signInCode(email: String, code: String)
    }

    public static let capacity = 10_000

    private let pending = Mutex<[Request]>([])
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>
    private let dropped = Atomic<Int>(0)
    /// Requests taken but not finished yet (by `run` or `drain`).
    private let inFlight = Atomic<Int>(0)
    /// While held, the background worker leaves requests queued; `drain` still works them.
    private let held = Atomic<Bool>(false)

    public init() {
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Requests dropped because the queue was full (the same for known and unknown addresses).
    public var droppedCount: Int { dropped.load(ordering: .relaxed) }

    public func enqueue(_ request: Request) {
        let full = pending.withLock { queue -> Bool in
            let full = queue.count >= Self.capacity
            if full { queue.removeFirst() }
            queue.append(request)
            return full
        }
        if full { dropped.add(1, ordering: .relaxed) }
        wake.yield()
    }

    /// Takes everything queued so far, counted in flight until `done`.
    private func take() -> [Request] {
        pending.withLock { queue in
            inFlight.add(queue.count, ordering: .sequentiallyConsistent)
            defer { queue.removeAll() }
            return queue
        }
    }

    private func work(_ batch: [Request], _ handle: (Request) async throws -> Void) async throws {
        var rest = batch[...]
        // What is left when a request fails is dropped, and counted out of flight with it.
        defer { inFlight.subtract(rest.count, ordering: .sequentiallyConsistent) }
        while let request = rest.popFirst() {
            defer { inFlight.subtract(1, ordering: .sequentiallyConsistent) }
            try await handle(request)
        }
    }

    /// Waits for requests and hands each to `handle` until the task is cancelled.
    func run(_ handle: (Request) async -> Void) async {
        for await _ in wakeups {
            if held.load(ordering: .sequentiallyConsistent) { continue }
            try? await work(take(), handle)
            if Task.isCancelled { return }
        }
    }

    /// Works what is queued now, then waits until requests another task took are finished too.
    func drain(_ handle: (Request) async throws -> Void) async throws {
        try await work(take(), handle)
        while inFlight.load(ordering: .sequentiallyConsistent) > 0 {
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Keeps the background worker off the queue until `release`, so that a test can look at
    /// what the request path did before any request is worked.
    public func hold() { held.store(true, ordering: .sequentiallyConsistent) }

    public func release() {
        held.store(false, ordering: .sequentiallyConsistent)
        wake.yield()
    }

    /// Ends `run` after the current batch.
    public func finish() { wake.finish() }
}
