import Authority
import Foundation
import Storage
import Testing

/// How the drivers hand cells to the stores (issue 18 reads them without the generic decoders):
/// whatever shortcut a driver takes, text reads back as the very text written.
@Suite("SQL cells")
struct SQLCellTests {
    @Test("text reads back byte for byte, UUID-shaped or not", arguments: Backend.allCases)
    func textRoundTrip(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await db.execute("CREATE TABLE cells (k INTEGER PRIMARY KEY, t TEXT, b \(db.dialect == .sqlite ? "BLOB" : "BYTEA"))")
            let texts = [
                "8f3b2a10-5c4d-4e6f-9a8b-7c6d5e4f3a2b",  // lowercase: SQLite's reader makes it a UUID cell
                "8F3B2A10-5C4D-4E6F-9A8B-7C6D5E4F3A2B",  // uppercase: must stay as written
                "8f3b2a10-5c4d-4e6f-9a8b-7c6d5e4f3a2",   // 35 characters
                "8f3b2a10-5c4d-4e6f-9a8b-7c6d5e4f3a2bx", // 37 characters
                "8f3b2a10x5c4d-4e6f-9a8b-7c6d5e4f3a2b",  // a hyphen missing
                "", "viewer", "ünïcødé · text",
            ]
            for (k, t) in texts.enumerated() { try await db.execute("INSERT INTO cells (k, t) VALUES ($1, $2)", k, t) }
            let rows = try await db.query("SELECT k, t FROM cells ORDER BY k")
            #expect(try rows.map { try $0.string("t") } == texts)
            #expect(try rows.map { try $0.string(at: 1) } == texts)
            // A lowercase UUID's text reads as that UUID, as a column of ids does.
            #expect(try rows[0].uuid("t") == UUIDText.parse(texts[0]))
            // A scan sees the same cells as a query.
            let scanned = try await db.scan("SELECT t FROM cells ORDER BY k", [], into: [String]()) { all, row in all.append(try row.string("t")) }
            #expect(scanned == texts)
        }
    }

    @Test("PostgreSQL arrays read as lists, NULL elements included")
    func arrays() async throws {
        try await withDatabase(.postgres) { db, _ in
            let id = UUID()
            let row = try #require(try await db.query(
                "SELECT ARRAY[$1::uuid, $1::uuid] AS ids, ARRAY['viewer', 'owner'] AS roles, ARRAY[NULL, '2026-12-03 10:00:00+00']::timestamptz[] AS times, '{}'::uuid[] AS empty",
                [.uuid(id)]).first)
            #expect(try row.list(at: 0) == [.uuid(id), .uuid(id)])
            #expect(try row.list(at: 1) == [.text("viewer"), .text("owner")])
            let times = try row.list(at: 2)
            #expect(times.count == 2)
            #expect(try SQLRow.optionalDate(times[0], "times") == nil)
            #expect(try SQLRow.optionalDate(times[1], "times") == ISO8601DateFormatter().date(from: "2026-12-03T10:00:00Z"))
            #expect(try row.list(at: 3).isEmpty)
            // Lists are only read: binding one is refused before the statement runs.
            await #expect(throws: StorageError.self) { try await db.query("SELECT $1 AS x", [.list([.int(1)])]) }
        }
    }
}
