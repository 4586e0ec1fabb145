import Foundation
import HTTPTypes
import Server
import Storage
import Testing
import Wire

@Suite("Timestamps are RFC 3339 with a four-digit year")
struct TimestampTests {
    /// Inputs that are, or round to, a moment after 9999-12-31T23:59:59.999999Z or before
    /// 0000-01-01T00:00:00Z: none of them has a four-digit RFC 3339 form.
    static let outOfRange = [
        "9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.99999999999Z",
        "9999-12-31T23:00:00-01:00", "10000-01-01T00:00:00Z", "0000-01-01T00:00:00+00:01",
    ]

    @Test("the parser refuses moments outside years 0000-9999", arguments: outOfRange)
    func parser(_ text: String) {
        #expect(RFC3339.date(text) == nil)
    }

    @Test("the last moments of 9999 parse and print back in four digits", arguments: [
        "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999Z", "9999-12-31T22:59:59.999-01:00",
    ])
    func lastMoments(_ text: String) throws {
        let date = try #require(RFC3339.date(text))
        #expect(RFC3339.string(date).hasPrefix("9999-12-31T23:59:59"))
        #expect(RFC3339.string(date, fractionDigits: 6).hasPrefix("9999-12-31T23:59:59"))
    }

    @Test("expires_at past 9999 is 400 on members and bindings, and changes nothing", arguments: Backend.allCases)
    func api(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let (alice, bob, org) = try await api.aliceAndBob()
            let carol = try await api.signup("carol@example.com")
            try await api.addMember(alice.access, org: org, email: "bob@example.com", role: "viewer")
            let before = try await services.changeFeed.latestRevision()
            for text in Self.outOfRange {
                let cases: [(HTTPRequest.Method, String, [String: Any])] = [
                    (.post, "/v1/orgs/\(org)/members", ["user_id": carol, "role": "viewer", "expires_at": text]),
                    (.patch, "/v1/orgs/\(org)/members/\(bob.userID)", ["expires_at": text]),
                    (.put, "/v1/orgs/\(org)/bindings", ["subject": ["user_id": bob.userID], "resource": "org:\(org)/project:p1", "role": "editor", "expires_at": text]),
                ]
                for (method, path, body) in cases {
                    let reply = try await api.send(method, path, json: body, token: alice.access)
                    #expect(reply.status == .badRequest, "\(method) \(path) \(text): \(reply.text)")
                    #expect(reply.code == "invalid_request")
                }
            }
            #expect(try await services.changeFeed.latestRevision() == before)
            let members = try await api.items("/v1/orgs/\(org)/members", token: alice.access)
            #expect(members.count == 2 && members.allSatisfy { $0["expires_at"] is NSNull })
            #expect(try await api.items("/v1/orgs/\(org)/bindings", token: alice.access).isEmpty)

            // The last millisecond of 9999 is accepted, and shown with a four-digit year.
            let last = "9999-12-31T23:59:59.999Z"
            let patched = try await api.send(.patch, "/v1/orgs/\(org)/members/\(bob.userID)", json: ["expires_at": last], token: alice.access)
            #expect(patched.status == .ok, "\(patched.text)")
            #expect((patched.json["expires_at"] as? String)?.hasPrefix("9999-12-31T23:59:59.") == true, "\(patched.text)")
            let bound = try await api.send(.put, "/v1/orgs/\(org)/bindings", json: [
                "subject": ["user_id": bob.userID], "resource": "org:\(org)/project:p1", "role": "editor", "expires_at": last,
            ], token: alice.access)
            #expect(bound.status == .created, "\(bound.text)")
            #expect((bound.json["expires_at"] as? String)?.hasPrefix("9999-12-31T23:59:59.") == true, "\(bound.text)")
        }
    }

    @Test("a stored timestamp reads back to the same microsecond on both backends", arguments: Backend.allCases)
    func storedPrecision(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await db.execute("CREATE TABLE stamps (n INTEGER NOT NULL, at \(backend == .postgres ? "TIMESTAMPTZ" : "INTEGER") NOT NULL)")
            var texts = ["1970-01-01T00:00:00.000001Z", "1969-12-31T23:59:59.999999Z", "0001-01-01T00:00:00.000001Z",
                         "2999-12-31T23:59:59.123457Z", "9999-12-31T23:59:59.999968Z", "9999-12-31T23:59:59.999Z"]
            // A spread of microseconds today: each must survive writing and reading unchanged.
            for i in 0..<200 { texts.append(String(format: "2026-12-02T05:41:33.%06dZ", (i * 4_999_991) % 1_000_000)) }
            for (n, text) in texts.enumerated() {
                try await db.execute("INSERT INTO stamps (n, at) VALUES ($1, $2)", n, try #require(RFC3339.date(text)))
            }
            let rows = try await db.query("SELECT n, at FROM stamps ORDER BY n")
            for row in rows {
                let text = texts[Int(try row.int("n"))]
                let expected = RFC3339.string(try #require(RFC3339.date(text)), fractionDigits: 6)
                #expect(RFC3339.string(try row.date("at"), fractionDigits: 6) == expected, "\(text)")
                // Within ±272 years of 1970 a Double (seconds) holds every microsecond: the text
                // itself comes back. Further out it holds fewer (every 30 µs near 9999); there the
                // reading must still equal what was written.
                if text.hasPrefix("19") || text.hasPrefix("20") { #expect(expected == text) }
            }
        }
    }
}
