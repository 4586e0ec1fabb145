import Foundation
import Storage
import Synchronization
import Testing

/// Closing a SQLite database while reads are still running (a follower's poll, work a deadline
/// gave up on) must not stop the process.
@Suite("SQLite close")
struct SQLiteCloseTests {
    /// A read that keeps SQLite busy for a while: counts a few million rows it makes up.
    static let slowRead = "SELECT (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT COUNT(*) FROM c) AS n"

    @Test("closing, on more tasks than the machine has cores, while each database still reads: every close returns and every read ends")
    func closeWhileReading() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portcullis-close-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        // More closes than Swift has threads for tasks: a close that blocked its thread until the
        // reads handed their connections back would leave no thread for the reads to do so.
        let count = ProcessInfo.processInfo.activeProcessorCount + 1
        let databases = try (0..<count).map { try SQLiteDatabase(path: dir.appendingPathComponent("\($0).db").path) }
        let reads = databases.map { db in Task { try await db.query(Self.slowRead, []) } }
        try await Task.sleep(for: .milliseconds(200))  // each read holds its connection now

        // Were the process stuck, no task could report it: a thread outside Swift's pool does.
        let finished = Atomic<Bool>(false)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 120)
            if !finished.load(ordering: .acquiring) {
                fatalError("SQLiteDatabase.close() left no thread for the reads it waits for: the process is stuck")
            }
        }
        await withDiscardingTaskGroup { group in
            for db in databases { group.addTask { await db.close() } }
        }
        for read in reads { _ = try? await read.value }
        finished.store(true, ordering: .releasing)
        // Closed means closed: a read now fails instead of reopening.
        await #expect(throws: (any Error).self) { try await databases[0].query("SELECT 1 AS one", []) }
    }
}
