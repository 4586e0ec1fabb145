import Foundation
@testable import Server
import Storage
import Synchronization
import Testing
import Webhooks

/// A receiver in memory: records what each URL was sent, answers from a script, and measures
/// how many requests one URL had open at once (the per-endpoint order needs one).
final class ScriptedReceiver: WebhookTransport, Sendable {
    struct State {
        var received: [String: [Data]] = [:]
        var script: [String: [Int]] = [:]
        var open: [String: Int] = [:]
        var mostOpen: [String: Int] = [:]
    }
    let state = Mutex(State())
    let delay: Duration

    init(delay: Duration = .zero) { self.delay = delay }

    /// The next answers of `url`, in order; 204 once they are used up.
    func answer(_ url: String, with statuses: [Int]) { state.withLock { $0.script[url, default: []] += statuses } }

    func received(_ url: String) -> [[String: Any]] {
        state.withLock { $0.received[url] ?? [] }.map { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] ?? [:] }
    }
    func types(_ url: String) -> [String] { received(url).compactMap { $0["type"] as? String } }
    func mostOpen(_ url: String) -> Int { state.withLock { $0.mostOpen[url] ?? 0 } }

    func post(url: String, headers: [(name: String, value: String)], body: Data) async -> AttemptOutcome {
        state.withLock { s in
            s.open[url, default: 0] += 1
            s.mostOpen[url] = max(s.mostOpen[url] ?? 0, s.open[url]!)
        }
        if delay > .zero { try? await Task.sleep(for: delay) }
        let status = state.withLock { s -> Int in
            s.open[url, default: 1] -= 1
            let status = s.script[url]?.isEmpty == false ? s.script[url]!.removeFirst() : 204
            if (200..<300).contains(status) { s.received[url, default: []].append(body) }
            return status
        }
        return AttemptOutcome(status: status, latencyMs: 1, error: (200..<300).contains(status) ? nil : "the receiver answered \(status)")
    }
}

@Suite("Webhook capture and delivery")
struct WebhookDeliveryTests {
    static func register(_ api: APIClient, _ token: String, org: String, url: String, types: [String] = ["*"]) async throws -> [String: Any] {
        let reply = try await api.send(.post, "/v1/orgs/\(org)/webhooks", json: ["url": url, "event_types": types], token: token)
        #expect(reply.status == .created, "\(reply.text)")
        return reply.json
    }

    static func dispatcher(_ services: AppServices, _ receiver: ScriptedReceiver, node: String = "node-a") -> WebhookDispatcher {
        var d = WebhookDispatcher(queue: services.webhookQueue, transport: receiver, box: services.webhookSecrets, node: node)
        d.schedule.first = 0.05
        d.failed = { id, error in print("DISPATCH FAILED \(String(describing: id)): \(error)") }
        return d
    }

    /// Rounds until nothing is due or the deadline passes.
    static func drain(_ dispatchers: [WebhookDispatcher], for limit: Duration = .seconds(10), until done: () -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline, !done() {
            let made = try await withThrowingTaskGroup(of: Int.self) { group in
                for d in dispatchers { group.addTask { try await d.round() } }
                return try await group.reduce(0, +)
            }
            if made == 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test("each audited change is an event in its own transaction, with the object as it left it; none is kept that nobody wants", arguments: Backend.allCases)
    func capture(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.webhookAllowPrivate = true }) { api, services in
            let (alice, bob, org) = try await api.aliceAndBob()
            // No endpoint yet: the change is made, no event is kept.
            #expect(try await api.send(.patch, "/v1/orgs/\(org)", json: ["description": "before"], token: alice.access).status == .ok)
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM webhook_events")?.int("n") == 0)

            _ = try await Self.register(api, alice.access, org: org, url: "http://127.0.0.1:9/members", types: ["member.*"])
            #expect(try await api.addMember(alice.access, org: org, email: "bob@example.com", role: "editor").status == .created)
            let change = try await api.send(.patch, "/v1/orgs/\(org)/members/\(bob.userID)", json: ["role": "viewer"], token: alice.access)
            #expect(change.status == .ok, "\(change.text)")
            #expect(try await api.send(.patch, "/v1/orgs/\(org)", json: ["description": "after"], token: alice.access).status == .ok)

            let rows = try await services.database.query("SELECT e.type, e.payload FROM webhook_events e ORDER BY e.seq", [])
            // org.updated went to no endpoint (member.* only); webhook.created neither.
            #expect(try rows.map { try $0.string("type") } == ["member.added", "member.role_changed"])
            let events = try rows.map { try JSONSerialization.jsonObject(with: Data($0.string("payload").utf8)) as! [String: Any] }
            let added = try #require(events.first?["data"] as? [String: Any])
            #expect(added["email"] as? String == "bob@example.com" && added["role"] as? String == "editor" && added["user_id"] as? String == bob.userID)
            // The second event carries the object as its own transaction left it, not as it is now.
            #expect((events[1]["data"] as? [String: Any])?["role"] as? String == "viewer")
            #expect((events[1]["actor"] as? [String: Any])?["id"] as? String == alice.userID)
            let revisions = events.compactMap { $0["revision"] as? Int }
            #expect(revisions.count == 2 && revisions[0] < revisions[1])
            #expect(try await services.database.queryFirst("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE state = 'pending'")?.int("n") == 2)
        }
    }

    @Test("each endpoint's queue goes in order; a failure is retried after its backoff; a failing endpoint holds up no other", arguments: Backend.allCases)
    func order(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.webhookAllowPrivate = true }) { api, services in
            let (alice, _, org) = try await api.aliceAndBob()
            let failing = "http://127.0.0.1:9/failing", healthy = "http://127.0.0.1:9/healthy"
            _ = try await Self.register(api, alice.access, org: org, url: failing, types: ["org.updated"])
            _ = try await Self.register(api, alice.access, org: org, url: healthy, types: ["org.updated"])
            let receiver = ScriptedReceiver()
            receiver.answer(failing, with: [500, 503, 500])
            for n in 1...5 {
                #expect(try await api.send(.patch, "/v1/orgs/\(org)", json: ["description": "v\(n)"], token: alice.access).status == .ok)
            }
            let dispatcher = Self.dispatcher(services, receiver)
            // One round: the healthy endpoint gets all five, the failing one nothing yet.
            _ = try await dispatcher.round()
            #expect(receiver.received(healthy).count == 5)
            #expect(receiver.received(failing).isEmpty)
            try await Self.drain([dispatcher]) { receiver.received(failing).count == 5 }
            let descriptions = { (url: String) in receiver.received(url).compactMap { ($0["data"] as? [String: Any])?["description"] as? String } }
            #expect(descriptions(failing) == ["v1", "v2", "v3", "v4", "v5"])
            #expect(descriptions(healthy) == ["v1", "v2", "v3", "v4", "v5"])

            // The delivery log: the first one took four attempts and ended delivered.
            let hooks = try await api.send(.get, "/v1/orgs/\(org)/webhooks", token: alice.access).json["items"] as? [[String: Any]] ?? []
            let failingID = try #require(hooks.first { $0["url"] as? String == failing }?["id"] as? String)
            let log = try await api.send(.get, "/v1/orgs/\(org)/webhooks/\(failingID)/deliveries", token: alice.access)
            let items = try #require(log.json["items"] as? [[String: Any]])
            #expect(items.count == 5 && items.allSatisfy { $0["state"] as? String == "delivered" })
            #expect(items.last?["attempts"] as? Int == 4 && items.last?["last_status"] as? Int == 204, "\(items)")
        }
    }

    @Test("two nodes' dispatchers never send one endpoint's deliveries side by side, and send each once", arguments: Backend.allCases)
    func twoNodes(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.webhookAllowPrivate = true }) { api, services in
            let (alice, _, org) = try await api.aliceAndBob()
            let urls = (1...3).map { "http://127.0.0.1:9/hook\($0)" }
            for url in urls { _ = try await Self.register(api, alice.access, org: org, url: url, types: ["org.updated"]) }
            for n in 1...8 {
                #expect(try await api.send(.patch, "/v1/orgs/\(org)", json: ["description": "v\(n)"], token: alice.access).status == .ok)
            }
            let receiver = ScriptedReceiver(delay: .milliseconds(15))
            let nodes = [Self.dispatcher(services, receiver, node: "node-a"), Self.dispatcher(services, receiver, node: "node-b")]
            try await Self.drain(nodes, for: .seconds(20)) { urls.allSatisfy { receiver.received($0).count >= 8 } }
            for url in urls {
                let ids = receiver.received(url).compactMap { $0["id"] as? String }
                #expect(ids.count == 8 && Set(ids).count == 8, "\(url) got \(ids.count)")
                #expect(receiver.mostOpen(url) == 1)
            }
        }
    }

    @Test("410 Gone turns the endpoint off at once and keeps the delivery; turned on, it is sent", arguments: Backend.allCases)
    func gone(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.webhookAllowPrivate = true }) { api, services in
            let (alice, _, org) = try await api.aliceAndBob()
            let url = "http://127.0.0.1:9/gone"
            let hook = try await Self.register(api, alice.access, org: org, url: url, types: ["org.updated"])
            let id = try #require(hook["id"] as? String)
            let receiver = ScriptedReceiver()
            receiver.answer(url, with: [410])
            #expect(try await api.send(.patch, "/v1/orgs/\(org)", json: ["description": "x"], token: alice.access).status == .ok)
            let dispatcher = Self.dispatcher(services, receiver)
            _ = try await dispatcher.round()
            let off = try await api.send(.get, "/v1/orgs/\(org)/webhooks/\(id)", token: alice.access).json
            #expect(off["enabled"] as? Bool == false)
            #expect((off["disabled_reason"] as? String)?.contains("410") == true)
            try await Task.sleep(for: .milliseconds(150))
            #expect(try await dispatcher.round() == 0, "a turned-off endpoint is not sent to")
            #expect(try await api.send(.patch, "/v1/orgs/\(org)/webhooks/\(id)", json: ["enabled": true], token: alice.access).status == .ok)
            try await Self.drain([dispatcher]) { receiver.received(url).count == 1 }
            #expect(receiver.types(url) == ["org.updated"])
        }
    }

    @Test("after the last retry a delivery has failed and the endpoint is turned off")
    func gaveUp() {
        var schedule = RetrySchedule()
        schedule.attempts = 3
        let at = Date(timeIntervalSince1970: 1_000_000)
        let failed = AttemptOutcome(status: 500, latencyMs: 3)
        let first = WebhookDispatcher.verdict(failed, attempt: 1, schedule: schedule, at: at, unit: 0.999)
        #expect(first.state == .pending && first.disableReason == nil)
        #expect(abs(first.nextAttemptAt.timeIntervalSince(at) - 5) < 0.01)
        let last = WebhookDispatcher.verdict(failed, attempt: 3, schedule: schedule, at: at, unit: 0.5)
        #expect(last.state == .failed && last.disableReason != nil)
        #expect(WebhookDispatcher.verdict(AttemptOutcome(status: 200, latencyMs: 1), attempt: 3, schedule: schedule, at: at, unit: 0).state == .delivered)
        // What a receiver answers is kept printable: no NUL reaches the database.
        let odd = AttemptOutcome(status: 500, latencyMs: 1, response: "a\u{0}b\u{7}c\nd", error: "x\u{0}")
        #expect(odd.response == "a b c\nd" && odd.error == "x ")
        // A redirect is not followed and not a delivery.
        #expect(WebhookDispatcher.verdict(AttemptOutcome(status: 302, latencyMs: 1), attempt: 1, schedule: schedule, at: at, unit: 0).state == .pending)
    }

    @Test("without PORTCULLIS_WEBHOOK_ALLOW_PRIVATE a name resolving to loopback or to 10.x is refused at send time, and nothing is sent")
    func resolvesPrivate() async throws {
        let client = HTTPWebhookTransport.shared()
        let transport = HTTPWebhookTransport(client: client, allowPrivate: false)
        let outcome = await transport.post(url: "https://localhost:9/hook", headers: [], body: Data("{}".utf8))
        #expect(outcome.status == nil)
        #expect(outcome.error?.hasPrefix("refused:") == true, "\(outcome.error ?? "")")
        let literal = await transport.post(url: "https://169.254.169.254/latest", headers: [], body: Data())
        #expect(literal.status == nil && literal.error?.hasPrefix("refused:") == true)
        // A name whose DNS answers an inside address, among public ones, is refused as a whole.
        var rebound = transport
        rebound.resolve = { host in
            #expect(host == "hooks.example.com")
            return [(IPAddress("93.184.215.14")!, "93.184.215.14"), (IPAddress("10.1.2.3")!, "10.1.2.3")]
        }
        let inside = await rebound.post(url: "https://hooks.example.com/in", headers: [], body: Data("{}".utf8))
        #expect(inside.status == nil && inside.error == "refused: hooks.example.com resolves to 10.1.2.3, not a public address", "\(inside.error ?? "")")
        try await client.shutdown()
    }

    @Test("webhook admin rules: admins manage their org's, the root the platform's; the secret is shown once", arguments: Backend.allCases)
    func who(_ backend: Backend) async throws {
        try await withApp(backend, configure: { rootSetup(&$0); $0.webhookAllowPrivate = false }) { api, services in
            let root = try await api.login("root@example.com", password: testRootPassword)
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "editor")
            let body: [String: Any] = ["url": "https://hooks.example.com/in", "event_types": ["member.*"]]
            #expect(try await api.send(.post, "/v1/orgs/\(org)/webhooks", json: body, token: bob.access).status == .forbidden)
            #expect(try await api.send(.post, "/v1/webhooks", json: body, token: alice.access).status == .forbidden)
            let made = try await api.send(.post, "/v1/orgs/\(org)/webhooks", json: body, token: alice.access)
            #expect(made.status == .created)
            let secret = try #require(made.json["secret"] as? String)
            #expect(secret.hasPrefix("whsec_"))
            let id = try #require(made.json["id"] as? String)
            let read = try await api.send(.get, "/v1/orgs/\(org)/webhooks/\(id)", token: alice.access)
            #expect(read.status == .ok && read.json["secret"] == nil && !read.text.contains(secret))
            // Sealed at rest, not the secret itself.
            let stored = try #require(try await services.database.queryFirst("SELECT sealed_secret FROM webhook_endpoints"))
            #expect(!(try stored.string("sealed_secret")).contains(String(secret.dropFirst(6))))
            // Another org's id in the path finds nothing.
            let other = try await api.createOrg(bob.access, name: "Other")
            #expect(try await api.send(.get, "/v1/orgs/\(other)/webhooks/\(id)", token: root.access).status == .notFound)
            #expect(try await api.send(.post, "/v1/webhooks", json: body, token: root.access).status == .created)
            // Bad input changes nothing.
            for bad: [String: Any] in [
                ["url": "http://hooks.example.com/in"], ["url": "https://127.0.0.1/in"], ["url": "https://[::1]/in"],
                ["url": "https://169.254.169.254/latest"], ["url": "https://10.0.0.8/x"], ["url": "not a url"],
                ["url": "https://hooks.example.com/in", "event_types": ["nonsense.*"]], ["url": "https://hooks.example.com/in", "event_types": []],
            ] {
                let reply = try await api.send(.post, "/v1/orgs/\(org)/webhooks", json: bad, token: alice.access)
                #expect(reply.status == .badRequest, "\(bad): \(reply.text)")
            }
            #expect(try await api.send(.get, "/v1/orgs/\(org)/webhooks", token: alice.access).json["total"] as? Int == 1)
        }
    }
}
