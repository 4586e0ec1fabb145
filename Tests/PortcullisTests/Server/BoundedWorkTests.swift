import Foundation
import HTTPTypes
import Server
import Storage
import Testing

/// SPEC §18: quotas, and listings that cost one page.
@Suite("Bounded work")
struct BoundedWorkTests {
    @Test("a user may own at most PORTCULLIS_MAX_ORGS_PER_USER orgs; the next one is 409 and writes nothing", arguments: Backend.allCases)
    func orgQuota(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.maxOrgsPerUser = 3; rootSetup(&$0) }) { api, services in
            let user = try await api.signupAndLogin("owner@example.com")
            for i in 0..<3 { _ = try await api.createOrg(user.access, name: "Org \(i)") }
            let before = try await services.changeFeed.latestRevision()
            let refused = try await api.send(.post, "/v1/orgs", json: ["name": "One too many"], token: user.access)
            #expect(refused.status == .conflict && refused.code == "quota_exceeded", "\(refused.text)")
            #expect(try await services.changeFeed.latestRevision() == before)
            #expect(try await api.send(.get, "/v1/orgs", token: user.access).json["total"] as? Int == 3)
            // The root administers the platform and is not counted.
            let root = try await api.login("root@example.com", password: testRootPassword)
            for i in 0..<4 { _ = try await api.createOrg(root.access, name: "Root \(i)") }
        }
    }

    @Test("writes per user per minute: the next write is 429, reads and decisions go on", arguments: Backend.allCases)
    func writeBudget(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.limits.writesPerUserPerMinute = 4 }) { api, _ in
            let user = try await api.signupAndLogin("writer@example.com")
            let start = ContinuousClock.now
            let org = try await api.createOrg(user.access)
            var accepted = 1
            var last: String?
            var refused: APIClient.Reply?
            for i in 0..<12 {
                let reply = try await api.send(.patch, "/v1/orgs/\(org)", json: ["description": "v\(i)"], token: user.access)
                guard reply.status == .ok else { refused = reply; break }
                accepted += 1
                last = "v\(i)"
            }
            // The budget holds four writes and earns one back every 15 s: a slow machine may
            // have earned some while the test ran, and no more than that.
            let earned = Int((ContinuousClock.now - start) / .seconds(15))
            #expect((4...4 + earned).contains(accepted), "\(accepted) writes accepted, \(earned) earned back")
            let reply = try #require(refused)
            #expect(reply.status == .tooManyRequests && reply.code == "rate_limited" && reply.headers[.retryAfter] != nil)
            #expect(try await api.send(.get, "/v1/orgs/\(org)", token: user.access).json["description"] as? String == last)
            let decision = try await api.send(.post, "/v1/authorize", json: ["object": "org:\(org)", "action": "viewer"], token: user.access)
            #expect(decision.json["allowed"] as? Bool == true)
            #expect(try await api.send(.post, "/v1/auth/logout", token: user.access).status == .noContent)
            // Another user has a budget of their own.
            let other = try await api.signupAndLogin("other@example.com")
            _ = try await api.createOrg(other.access)
        }
    }

    @Test("a scoped key lists its orgs a page at a time, with the exact total", arguments: Backend.allCases)
    func scopedListing(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let user = try await api.signupAndLogin("many@example.com")
            var orgs: [String] = []
            for i in 0..<12 { orgs.append(try await api.createOrg(user.access, name: "Org \(i)")) }
            let scoped = try await api.createKey(user.access, name: "three", scopes: [orgs[2], orgs[5], orgs[9]].map { "org:\($0)" } + ["role:viewer"]).key
            let first = try await api.send(.get, "/v1/orgs?limit=2", token: scoped)
            #expect(first.json["total"] as? Int == 3)
            let firstItems = try #require(first.json["items"] as? [[String: Any]])
            #expect(firstItems.map { $0["id"] as? String } == [orgs[2], orgs[5]])
            #expect(firstItems.allSatisfy { $0["role"] as? String == "viewer" })
            let second = try await api.send(.get, "/v1/orgs?limit=2&offset=2", token: scoped)
            #expect((second.json["items"] as? [[String: Any]])?.map { $0["id"] as? String } == [orgs[9]])
            let named = try await api.send(.get, "/v1/orgs?name=org%201", token: scoped)
            #expect(named.json["total"] as? Int == 0)
            #expect(try await api.send(.get, "/v1/orgs?limit=1", token: user.access).json["total"] as? Int == 12)
        }
    }
}

@Suite("Watch streams share the follower")
struct WatchHubTests {
    static func change(_ n: Int64) -> Change { Change(revision: n, at: Date(), kind: "org.updated", subject: "x") }

    @Test("a stream gets what the follower publishes; one that falls behind its buffer is ended; capacity and close")
    func hub() async throws {
        let hub = WatchHub(capacity: 2, buffer: 2)
        let reader = try hub.subscribe()
        let laggard = try hub.subscribe()
        #expect(throws: WatchHub.Full.self) { try hub.subscribe() }
        // The reader keeps up; the laggard reads nothing.
        var iterator = reader.makeAsyncIterator()
        var seen: [Int64] = []
        for n in Int64(1)...3 {
            hub.publish([Self.change(n)])
            if case .changes(let batch)? = await iterator.next() { seen += batch.map(\.revision) }
        }
        #expect(seen == [1, 2, 3])
        #expect(hub.overflowCount == 1)
        // The laggard gets what fit in its buffer, then its stream ends (it resumes by id).
        var got: [Int64] = []
        for await event in laggard { if case .changes(let batch) = event { got += batch.map(\.revision) } }
        #expect(got == [1, 2])
        // Its place is free again; an empty batch is not an event.
        let third = try hub.subscribe()
        hub.publish([])
        hub.close()
        var events = 0
        for await _ in third { events += 1 }
        #expect(events == 0)
        #expect(throws: WatchHub.Full.self) { try hub.subscribe() }
    }

    @Test("past PORTCULLIS_WATCH_MAX_STREAMS a watch request is 503 with Retry-After", arguments: [Backend.sqlite])
    func streamCap(_ backend: Backend) async throws {
        try await withApp(backend, configure: { rootSetup(&$0); $0.watchMaxStreams = 0 }) { api, _ in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let refused = try await api.send(.get, "/v1/watch?since=0", token: root.access)
            #expect(refused.status == .serviceUnavailable && refused.code == "unavailable" && refused.headers[.retryAfter] != nil)
        }
    }
}
