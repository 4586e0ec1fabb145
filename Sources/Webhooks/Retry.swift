import Foundation

/// When a failed delivery is tried again: exponential backoff from 5 seconds, capped at 6 hours
/// a wait, each wait drawn between half and all of it (jitter, so endpoints that failed together
/// are not retried together). 24 attempts span about three days; then the delivery has failed.
public struct RetrySchedule: Sendable, Equatable {
    public var first: TimeInterval = 5
    public var cap: TimeInterval = 6 * 3600
    public var attempts: Int = 24

    public init() {}

    /// The wait after attempt `n` (1-based) failed, or nil when it was the last; `unit` in
    /// [0, 1) chooses where in the jitter band it falls.
    public func wait(after n: Int, unit: Double) -> TimeInterval? {
        guard n >= 1, n < attempts else { return nil }
        let full = min(cap, first * pow(2, Double(n - 1)))
        return full * (0.5 + 0.5 * min(max(unit, 0), 0.999_999))
    }

    /// The longest a delivery can be retried for (every wait at its full length).
    public var longestSpan: TimeInterval {
        (1..<attempts).reduce(0) { $0 + min(cap, first * pow(2, Double($1 - 1))) }
    }
}
