/// Paces a long loop of a request: every `every` steps it stops the loop if the request was
/// cancelled (the client went away) and lets other tasks run, so one big batch neither works on
/// for nobody nor holds a core (SPEC §18, issue 21).
public struct Pacer: Sendable {
    public let every: Int
    /// Steps taken so far.
    public private(set) var steps = 0

    public static let defaultEvery = 64

    public init(every: Int = defaultEvery) {
        self.every = max(1, every)
    }

    @inline(__always)
    public mutating func step() async throws {
        steps &+= 1
        if steps % every == 0 {
            try Task.checkCancellation()
            await Task.yield()
        }
    }
}
