import Foundation
import Storage
import Synchronization

/// Fans the change log out to `/v1/watch` streams from the node's one change follower, so a
/// stream costs no database polling of its own (SPEC §18). At most `capacity` streams at once;
/// each holds at most `buffer` undelivered changes, and one that falls further behind is ended —
/// its client resumes with `Last-Event-ID` from the last event it received.
public final class WatchHub: Sendable {
    public enum Event: Sendable {
        case changes([Change])
        /// Nothing happened for a while: a comment keeps proxies from closing the stream.
        case keepAlive
    }

    public struct Full: Error {}

    public let capacity: Int
    public let buffer: Int
    static let keepAliveEvery: Duration = .seconds(15)

    private struct State {
        var streams: [UUID: AsyncStream<Event>.Continuation] = [:]
        var closed = false
        var lastKeepAlive = ContinuousClock.now
    }
    private let state = Mutex(State())
    private let overflows = Atomic<Int>(0)

    public init(capacity: Int, buffer: Int = 100) {
        self.capacity = capacity
        self.buffer = buffer
    }

    public var streamCount: Int { state.withLock { $0.streams.count } }
    /// Streams ended because their reader fell behind.
    public var overflowCount: Int { overflows.load(ordering: .relaxed) }

    /// A new stream of what the follower reads from now on, or `Full` at capacity (or closed).
    public func subscribe() throws(Full) -> AsyncStream<Event> {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingOldest(buffer))
        let id = UUID()
        let added = state.withLock { state -> Bool in
            guard !state.closed, state.streams.count < capacity else { return false }
            state.streams[id] = continuation
            return true
        }
        guard added else { throw Full() }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.streams.removeValue(forKey: id) }
        }
        return stream
    }

    /// Hands a batch the follower read to every stream; an empty one may become a keep-alive.
    public func publish(_ batch: [Change]) {
        let (targets, event): ([(UUID, AsyncStream<Event>.Continuation)], Event?) = state.withLock { state in
            let now = ContinuousClock.now
            if !batch.isEmpty { return (Array(state.streams), .changes(batch)) }
            guard now - state.lastKeepAlive >= Self.keepAliveEvery else { return ([], nil) }
            state.lastKeepAlive = now
            return (Array(state.streams), .keepAlive)
        }
        guard let event else { return }
        for (_, continuation) in targets {
            if case .dropped = continuation.yield(event) {
                // The reader is more than `buffer` batches behind: end its stream after what it has.
                overflows.add(1, ordering: .relaxed)
                continuation.finish()
            }
        }
    }

    /// Ends every stream and refuses new ones (graceful shutdown: clients reconnect elsewhere).
    public func close() {
        let all = state.withLock { state in
            state.closed = true
            return Array(state.streams.values)
        }
        for continuation in all { continuation.finish() }
    }
}
