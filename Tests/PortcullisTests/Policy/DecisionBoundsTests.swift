import Authority
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Policy
import Server
import Storage
import Synchronization
import Tenancy
import Testing

/// SPEC §18: no request does work that grows faster than what it returns (issue 21).
@Suite("Bounded decisions: indexed checks, paginated lookup, cancellation, binding quotas")
struct DecisionBoundsTests {
    @Test("lookup pages like every list: items, total, limit, offset", arguments: Backend.allCases)
    func lookupPages(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let (alice, bob, org) = try await api.aliceAndBob()
            for i in 0..<25 {
                let put = try await api.send(.put, "/v1/orgs/\(org)/bindings",
                                             json: ["subject": ["user_id": bob.userID], "resource": "org:\(org)/doc:d\(i)", "role": "viewer"], token: alice.access)
                #expect(put.status == .created || put.status == .ok, "bind: \(put.text)")
            }
            // A viewer binding under one of the docs does not make it a second item of the doc type.
            _ = try await api.send(.put, "/v1/orgs/\(org)/bindings",
                                   json: ["subject": ["user_id": bob.userID], "resource": "org:\(org)/doc:d3/page:p1", "role": "editor"], token: alice.access)
            let first = try await api.send(.post, "/v1/lookup", json: ["permission": "viewer", "type": "doc"], token: bob.access)
            #expect(first.status == .ok, "\(first.text)")
            let items = try #require(first.json["items"] as? [[String: Any]])
            #expect(items.count == 20)
            #expect(first.json["total"] as? Int == 25)
            #expect(first.json["limit"] as? Int == 20)
            #expect(first.json["offset"] as? Int == 0)
            let rest = try await api.send(.post, "/v1/lookup", json: ["permission": "viewer", "type": "doc", "limit": 10, "offset": 20], token: bob.access)
            let restItems = try #require(rest.json["items"] as? [[String: Any]])
            #expect(restItems.count == 5)
            #expect(rest.json["total"] as? Int == 25)
            let all = (items + restItems).compactMap { $0["object"] as? String }
            #expect(Set(all).count == 25)
            #expect(all == all.sorted())
            // The page below inherits nothing it does not hold: editor on page:p1 only.
            let pages = try await api.send(.post, "/v1/lookup", json: ["permission": "editor", "type": "page"], token: bob.access)
            #expect((pages.json["items"] as? [[String: Any]])?.compactMap { $0["object"] as? String } == ["org:\(org)/doc:d3/page:p1"])
            #expect(try await api.send(.post, "/v1/lookup", json: ["permission": "viewer", "limit": 101], token: bob.access).status == .badRequest)
            #expect(try await api.send(.post, "/v1/lookup", json: ["permission": "viewer", "offset": -1], token: bob.access).status == .badRequest)
        }
    }

    @Test("bindings per org and per principal are quotas: the write past one is 409 quota_exceeded and changes nothing", arguments: Backend.allCases)
    func bindingQuotas(_ backend: Backend) async throws {
        try await withApp(backend, configure: { $0.bindingQuotas = BindingQuotas(perOrg: 3, perPrincipal: 2) }) { api, _ in
            let alice = try await api.signupAndLogin("alice@example.com")
            let bob = try await api.signupAndLogin("bob@example.com")
            let carol = try await api.signupAndLogin("carol@example.com")
            let org = try await api.createOrg(alice.access)
            func bind(_ user: String, _ resource: String, _ role: String = "viewer") async throws -> APIClient.Reply {
                try await api.send(.put, "/v1/orgs/\(org)/bindings",
                                   json: ["subject": ["user_id": user], "resource": "org:\(org)/\(resource)", "role": role], token: alice.access)
            }
            func total() async throws -> Int? {
                try await api.send(.get, "/v1/orgs/\(org)/bindings", token: alice.access).json["total"] as? Int
            }
            #expect(try await bind(bob.userID, "doc:1").status == .created)
            #expect(try await bind(bob.userID, "doc:2").status == .created)
            let perPrincipal = try await bind(bob.userID, "doc:3")
            #expect(perPrincipal.status == .conflict)
            #expect(perPrincipal.code == "quota_exceeded")
            #expect(try await total() == 2)
            // Replacing a binding adds nothing, so a full quota does not stop it.
            #expect(try await bind(bob.userID, "doc:2", "editor").status == .ok)
            #expect(try await bind(carol.userID, "doc:1").status == .created)
            let perOrg = try await bind(carol.userID, "doc:2")
            #expect(perOrg.status == .conflict)
            #expect(perOrg.code == "quota_exceeded")
            #expect(try await total() == 3)
            #expect(try await api.allowed(carol.access, "org:\(org)/doc:2", "viewer") == false)
        }
    }

    // MARK: The engine, counted

    static func deepPath(_ i: Int, depth: Int = 6) -> String {
        // Long ids, as the attack used: 200 characters a segment.
        (0..<depth).map { level in "/t\(level):" + String(repeating: "x", count: 190) + "-\(i)-\(level)" }.joined()
    }

    @Test("a check probes at most depth+1 index entries, however many bindings the subject holds")
    func checkIsDepthBound() throws {
        let user = Principal.user(UUID())
        for count in [1, 5_000] {
            var grants = OrgGrants()
            for i in 0..<count { grants.addBinding(BindingGrant(id: UUID(), path: Self.deepPath(i), role: .viewer), for: user) }
            grants.addBinding(BindingGrant(id: UUID(), path: Self.deepPath(0, depth: 2), role: .editor), for: user)
            let object = Self.deepPath(0, depth: 6)
            var probes = 0
            let role = grants.role(of: user, on: object, at: Date().instant, probes: &probes)
            #expect(role == .editor)
            #expect(probes <= 7, "\(count) bindings: \(probes) probes")
            // A subject with no binding probes nothing.
            var none = 0
            #expect(grants.role(of: .user(UUID()), on: object, at: Date().instant, probes: &none) == nil)
            #expect(none == 0)
        }
    }

    @Test("lookup over 5,000 bindings visits each once and agrees with authorize on every candidate")
    func lookupIsOnePass() async throws {
        let user = Principal.user(UUID())
        let orgs = [UUID(), UUID(), UUID()]
        var bindings: [(UUID, BindingGrant)] = []
        var all: [UUID: OrgGrants] = [:]
        let roles: [Role] = [.viewer, .editor, .admin]
        for i in 0..<5_000 {
            let org = orgs[i % 3]
            // Nested and sibling paths, including ids that sort between a parent and its children.
            let path = i % 7 == 0 ? "/doc:d\(i % 50)" : i % 7 == 1 ? "/doc:d\(i % 50)+x/doc:e\(i)" : "/doc:d\(i % 50)/doc:p\(i)" + (i % 3 == 0 ? "/page:q\(i)" : "")
            let b = BindingGrant(id: UUID(), path: path, role: roles[i % 3], expiresAt: i % 11 == 0 ? 1 : .infinity)
            if all[org]?.binding(of: user, on: path) != nil { continue }
            bindings.append((org, b))
            all[org, default: OrgGrants()].addBinding(b, for: user)
        }
        let memberships = [(orgs[1], MemberGrant(role: .editor))]
        all[orgs[1], default: OrgGrants()].members[user] = MemberGrant(role: .editor)
        let now = Date().instant
        for type in ["doc", "page", "org"] {
            for required in [Role.viewer, .editor, .admin] {
                var pacer = Pacer()
                let result = try await Lookup.run(memberships: memberships, bindings: bindings, scopes: nil, type: type, required: required, now: now, pacer: &pacer)
                #expect(result.touched <= bindings.count + memberships.count)
                // The same answer as asking authorize about every candidate (the old quadratic way).
                var expected: [String] = []
                for org in orgs {
                    if type == "org" {
                        if let r = all[org]?.role(of: user, on: "", at: now), r >= required { expected.append(ObjectRef(orgID: org).string) }
                        continue
                    }
                    for (o, b) in bindings where o == org {
                        let object = ObjectRef(orgID: org, path: b.path)
                        if object.type == type, let r = all[org]?.role(of: user, on: b.path, at: now), r >= required { expected.append(object.string) }
                    }
                }
                #expect(result.items.map(\.object.string) == expected.sorted(), "\(type) \(required)")
            }
        }
    }

    @Test("a cancelled lookup stops its loop")
    func lookupStopsWhenCancelled() async throws {
        let bindings = (0..<5_000).map { i in (UUID(), BindingGrant(id: UUID(), path: "/doc:\(i)", role: .viewer)) }
        let steps = await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            var pacer = Pacer()
            do {
                _ = try await Lookup.run(memberships: [], bindings: bindings, scopes: nil, type: "doc", required: .viewer, now: 0, pacer: &pacer)
                Issue.record("a cancelled lookup ran to the end")
            } catch is CancellationError {}
            catch { Issue.record("\(error)") }
            return pacer.steps
        }.value
        #expect(steps == Pacer.defaultEvery)
    }

    /// Counts what reaches the database.
    final class CountingLoader: GrantLoader {
        let inner: any GrantLoader
        let counts = Mutex((whole: 0, slices: 0))
        init(_ inner: any GrantLoader) { self.inner = inner }
        func grants(orgID: UUID) async throws -> OrgGrants? {
            counts.withLock { $0.whole += 1 }
            return try await inner.grants(orgID: orgID)
        }
        func grants(orgID: UUID, of principal: Principal) async throws -> OrgGrants {
            counts.withLock { $0.slices += 1 }
            return try await inner.grants(orgID: orgID, of: principal)
        }
    }

    @Test("a strong batch loads each org once, and never the whole org of a caller who is not in it", arguments: Backend.allCases)
    func strongBatchLoads(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let alice = try await api.signupAndLogin("alice@example.com")
            let bob = try await api.signupAndLogin("bob@example.com")
            let eve = try await api.signupAndLogin("eve@example.com")
            let org = try await api.createOrg(alice.access)
            try await api.addMember(alice.access, org: org, email: "bob@example.com", role: "viewer")
            let orgID = try #require(UUID(uuidString: org))
            let loader = CountingLoader(services.policyStore)
            let policy = PolicyService(cache: GrantCache(loader: loader), permissions: services.policy.permissions)
            let viewer = try policy.requirement("viewer")
            let bobID = try #require(UUID(uuidString: bob.userID))
            let checks = (0..<1_000).map { i in
                PolicyService.Check(subject: .user(bobID), object: ObjectRef(orgID: orgID, path: "/doc:\(i)"), requirement: viewer, consistency: .strong)
            }
            var pacer = Pacer()
            let results = try await policy.decide(batch: checks, pacer: &pacer)
            #expect(results.allSatisfy { $0?.allowed == true })
            #expect(loader.counts.withLock { $0.whole + $0.slices } == 1)

            // Eve is in no org: an existing org and a random id are read the same way, and neither whole.
            let eveID = try #require(UUID(uuidString: eve.userID))
            for target in [orgID, UUID()] {
                loader.counts.withLock { $0 = (0, 0) }
                var pacer = Pacer()
                let denied = try await policy.decide(batch: (0..<100).map { i in
                    PolicyService.Check(subject: .user(eveID), object: ObjectRef(orgID: target, path: "/doc:\(i)"), requirement: viewer, consistency: .strong)
                }, pacer: &pacer)
                #expect(denied.allSatisfy { $0?.allowed == false })
                #expect(loader.counts.withLock { $0.whole } == 0)
                #expect(loader.counts.withLock { $0.slices } == 1)
            }
            // Several subjects about one org: the org is read whole, still once.
            loader.counts.withLock { $0 = (0, 0) }
            var mixed = Pacer()
            _ = try await policy.decide(batch: [
                PolicyService.Check(subject: .user(bobID), object: ObjectRef(orgID: orgID), requirement: viewer, consistency: .strong),
                PolicyService.Check(subject: .user(eveID), object: ObjectRef(orgID: orgID), requirement: viewer, consistency: .strong),
                PolicyService.Check(subject: .user(bobID), object: ObjectRef(orgID: orgID, path: "/doc:1"), requirement: viewer, consistency: .strong),
            ], pacer: &mixed)
            #expect(loader.counts.withLock { $0.whole + $0.slices } == 1)
        }
    }

    @Test("a cancelled batch stops deciding")
    func batchStopsWhenCancelled() async throws {
        let org = UUID(), user = UUID()
        let cache = GrantCache(loader: CountingLoader(NoGrants()))
        cache.install(org, OrgGrants(members: [.user(user): MemberGrant(role: .viewer)]))
        let policy = PolicyService(cache: cache, permissions: PermissionTable.builtIn)
        let checks = (0..<1_000).map { i in
            PolicyService.Check(subject: .user(user), object: ObjectRef(orgID: org, path: "/doc:\(i)"), requirement: Requirement(action: "viewer", role: .viewer), consistency: .cached)
        }
        let decided = await Task {
            var n = 0
            var pacer = Pacer()
            do {
                _ = try await policy.decide(batch: checks, pacer: &pacer) { _ in
                    n += 1
                    // The client goes away after ten decisions.
                    if n == 10 { withUnsafeCurrentTask { $0?.cancel() } }
                }
                Issue.record("a cancelled batch ran to the end")
            } catch is CancellationError {}
            catch { Issue.record("\(error)") }
            return n
        }.value
        #expect(decided >= 10 && decided < Pacer.defaultEvery + 10 && decided < checks.count)
    }

    struct NoGrants: GrantLoader {
        func grants(orgID: UUID) async throws -> OrgGrants? { nil }
    }
}
