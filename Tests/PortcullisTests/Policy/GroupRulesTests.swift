import Authority
import Foundation
import Identity
import Policy
import Server
import Storage
import Tenancy
import Testing

extension APIClient {
    /// Creates a group; returns its id.
    func createGroup(_ token: String, org: String, name: String, parent: String? = nil) async throws -> String {
        var body: [String: Any] = ["name": name]
        if let parent { body["parent_id"] = parent }
        let reply = try await send(.post, "/v1/orgs/\(org)/groups", json: body, token: token)
        #expect(reply.status == .created, "create group: \(reply.text)")
        return try #require(reply.json["id"] as? String)
    }

    func putMember(_ token: String, org: String, group: String, _ member: [String: Any]) async throws -> Reply {
        try await send(.put, "/v1/orgs/\(org)/groups/\(group)/members", json: member, token: token)
    }
}

@Suite("Groups and overrides: the write rules, over HTTP")
struct GroupRulesTests {
    @Test("nesting: cycles, depth, other orgs, sibling names and non-members are refused and change nothing", arguments: Backend.allCases)
    func treeRules(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "viewer")
            let other = try await api.createOrg(alice.access, name: "Other")
            let top = try await api.createGroup(alice.access, org: org, name: "Engineering")
            let child = try await api.createGroup(alice.access, org: org, name: "Backend", parent: top)
            let grandchild = try await api.createGroup(alice.access, org: org, name: "Storage", parent: child)
            let foreign = try await api.createGroup(alice.access, org: other, name: "Elsewhere")

            let cycle = try await api.send(.patch, "/v1/orgs/\(org)/groups/\(top)", json: ["parent_id": grandchild], token: alice.access)
            #expect(cycle.status == .conflict && cycle.code == "group_cycle")
            let selfParent = try await api.send(.patch, "/v1/orgs/\(org)/groups/\(top)", json: ["parent_id": top], token: alice.access)
            #expect(selfParent.code == "group_cycle")
            let asMember = try await api.putMember(alice.access, org: org, group: grandchild, ["group_id": top])
            #expect(asMember.code == "group_cycle")
            #expect(try await api.send(.get, "/v1/orgs/\(org)/groups/\(top)", token: alice.access).json["parent_id"] is NSNull)

            // Eight levels is the limit: the chain top → … → level 8 holds, a ninth does not.
            var chain = [top, child, grandchild]
            while chain.count < GroupLimits.maxDepth {
                chain.append(try await api.createGroup(alice.access, org: org, name: "L\(chain.count + 1)", parent: chain.last!))
            }
            let ninth = try await api.send(.post, "/v1/orgs/\(org)/groups", json: ["name": "L9", "parent_id": chain.last!], token: alice.access)
            #expect(ninth.status == .conflict && ninth.code == "group_too_deep")
            // Moving a two-level subtree under level 7 would make nine.
            let pair = try await api.createGroup(alice.access, org: org, name: "Pair")
            _ = try await api.createGroup(alice.access, org: org, name: "Inner", parent: pair)
            let deep = try await api.send(.patch, "/v1/orgs/\(org)/groups/\(pair)", json: ["parent_id": chain[6]], token: alice.access)
            #expect(deep.code == "group_too_deep")

            #expect(try await api.send(.post, "/v1/orgs/\(org)/groups", json: ["name": "x", "parent_id": foreign], token: alice.access).status == .badRequest)
            #expect(try await api.putMember(alice.access, org: org, group: top, ["group_id": foreign]).status == .badRequest)
            let clash = try await api.send(.post, "/v1/orgs/\(org)/groups", json: ["name": "backend", "parent_id": top], token: alice.access)
            #expect(clash.status == .conflict && clash.code == "conflict")
            // The same name elsewhere in the tree is fine.
            _ = try await api.createGroup(alice.access, org: org, name: "Backend")

            let carol = try await api.signupAndLogin("carol@example.com")
            let stranger = try await api.putMember(alice.access, org: org, group: top, ["user_id": carol.userID])
            #expect(stranger.status == .badRequest)
            let notEmpty = try await api.send(.delete, "/v1/orgs/\(org)/groups/\(child)", token: alice.access)
            #expect(notEmpty.status == .conflict && notEmpty.code == "group_not_empty")
            #expect(try await api.send(.post, "/v1/orgs/\(org)/groups", json: ["name": "x"], token: bob.access).status == .forbidden)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/groups", token: carol.access).status == .notFound)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/groups/not-a-uuid", token: alice.access).status == .notFound)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/groups", token: bob.access).json["total"] as? Int == GroupLimits.maxDepth + 3)
        }
    }

    @Test("two concurrent moves that together make a cycle: exactly one passes", arguments: Backend.allCases)
    func racingMoves(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let (alice, _, org) = try await api.aliceAndBob()
            for round in 0..<8 {
                let a = try await api.createGroup(alice.access, org: org, name: "A\(round)")
                let b = try await api.createGroup(alice.access, org: org, name: "B\(round)")
                async let first = api.send(.patch, "/v1/orgs/\(org)/groups/\(a)", json: ["parent_id": b], token: alice.access)
                async let second = api.send(.patch, "/v1/orgs/\(org)/groups/\(b)", json: ["parent_id": a], token: alice.access)
                let statuses = [try await first.status.code, try await second.status.code].sorted()
                #expect(statuses == [200, 409], "round \(round)")
                let parents = [
                    try await api.send(.get, "/v1/orgs/\(org)/groups/\(a)", token: alice.access).json["parent_id"] as? String,
                    try await api.send(.get, "/v1/orgs/\(org)/groups/\(b)", token: alice.access).json["parent_id"] as? String,
                ]
                #expect(parents.compactMap { $0 }.count == 1, "round \(round): \(parents)")
            }
        }
    }

    @Test("rank: an admin cannot grant a group more than they hold, join one that reaches higher, or override peers", arguments: Backend.allCases)
    func rank(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "admin")
            let carol = try await api.signupAndLogin("carol@example.com")
            let dave = try await api.signupAndLogin("dave@example.com")
            try await api.addMember(alice.access, org: org, email: "carol@example.com", role: "admin")
            try await api.addMember(alice.access, org: org, email: "dave@example.com", role: "viewer")
            let o = "org:\(org)"
            let admins = try await api.createGroup(bob.access, org: org, name: "Admins")
            let owners = try await api.createGroup(alice.access, org: org, name: "Owners")
            // An admin binds up to admin to a group, never owner.
            let ownerBinding = try await api.send(.put, "/v1/orgs/\(org)/bindings", json: ["subject": ["group_id": admins], "resource": o, "role": "owner"], token: bob.access)
            #expect(ownerBinding.status == .forbidden)
            let bound = try await api.send(.put, "/v1/orgs/\(org)/bindings", json: ["subject": ["group_id": owners], "resource": o, "role": "owner"], token: alice.access)
            #expect(bound.status == .created, "\(bound.text)")
            #expect((bound.json["subject"] as? [String: Any])?["group_id"] as? String == owners)
            // The owners' group reaches owner: an admin may not join it, add others, or move groups under it.
            #expect(try await api.putMember(bob.access, org: org, group: owners, ["user_id": bob.userID]).status == .forbidden)
            #expect(try await api.putMember(bob.access, org: org, group: owners, ["user_id": dave.userID]).status == .forbidden)
            #expect(try await api.send(.patch, "/v1/orgs/\(org)/groups/\(admins)", json: ["parent_id": owners], token: bob.access).status == .forbidden)
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/groups/\(owners)", token: bob.access).status == .forbidden)
            #expect(try await api.allowed(bob.access, o, "owner") == false)
            // Members of equal rank: an admin does not move another admin around; anyone may leave.
            #expect(try await api.putMember(bob.access, org: org, group: admins, ["user_id": carol.userID]).status == .forbidden)
            #expect(try await api.putMember(bob.access, org: org, group: admins, ["user_id": dave.userID]).status == .created)
            #expect(try await api.putMember(bob.access, org: org, group: admins, ["user_id": bob.userID]).status == .created)
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/groups/\(admins)/members/\(bob.userID)", token: bob.access).status == .noContent)

            // Overrides: below one's own rank only, never on oneself, allows only within one's role.
            func override(_ token: String, _ subject: [String: Any], _ permission: String, _ effect: String) async throws -> APIClient.Reply {
                try await api.send(.post, "/v1/orgs/\(org)/overrides",
                                   json: ["subject": subject, "resource": o, "permission": permission, "effect": effect, "reason": "test"], token: token)
            }
            #expect(try await override(bob.access, ["user_id": carol.userID], "org.update", "deny").status == .forbidden)
            #expect(try await override(bob.access, ["user_id": bob.userID], "org.update", "deny").status == .forbidden)
            #expect(try await override(bob.access, ["user_id": dave.userID], "org.delete", "allow").status == .forbidden)
            #expect(try await override(bob.access, ["user_id": dave.userID], "org.delete", "deny").status == .created)
            #expect(try await override(bob.access, ["user_id": dave.userID], "org.delete", "deny").code == "conflict")
            #expect(try await override(bob.access, ["user_id": dave.userID], "admin", "allow").status == .badRequest)
            #expect(try await override(bob.access, ["group_id": owners], "org.read", "deny").status == .forbidden)
            let missingReason = try await api.send(.post, "/v1/orgs/\(org)/overrides",
                                                   json: ["subject": ["user_id": dave.userID], "resource": o, "permission": "org.read", "effect": "deny"], token: bob.access)
            #expect(missingReason.status == .badRequest)
            #expect(try await override(dave.access, ["user_id": dave.userID], "org.read", "deny").status == .forbidden)
        }
    }

    @Test("decisions through groups and overrides; leaving the org leaves its groups", arguments: Backend.allCases)
    func decisions(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let (alice, bob, org) = try await api.aliceAndBob(bobRole: "viewer")
            let o = "org:\(org)"
            let team = try await api.createGroup(alice.access, org: org, name: "Team")
            let squad = try await api.createGroup(alice.access, org: org, name: "Squad", parent: team)
            #expect(try await api.putMember(alice.access, org: org, group: squad, ["user_id": bob.userID]).status == .created)
            _ = try await api.send(.put, "/v1/orgs/\(org)/bindings", json: ["subject": ["group_id": team], "resource": o + "/project:p1", "role": "editor"], token: alice.access)
            #expect(try await api.allowed(bob.access, o + "/project:p1/doc:1", "editor"))
            #expect(try await api.allowed(bob.access, o + "/project:p2", "editor") == false)
            let explain = try await api.send(.post, "/v1/authorize/explain", json: ["object": o + "/project:p1/doc:1", "action": "editor"], token: bob.access)
            let decisive = try #require((explain.json["grants"] as? [[String: Any]])?.first { $0["decisive"] as? Bool == true })
            #expect(decisive["group_id"] as? String == team && decisive["via"] as? [String] == [squad, team] && decisive["group_name"] as? String == "Team")

            // A deny on the group beats the editor role; the role name is not overridden.
            let deny = try await api.send(.post, "/v1/orgs/\(org)/overrides", json: [
                "subject": ["group_id": squad], "resource": o + "/project:p1", "permission": "bindings.write", "effect": "deny", "reason": "audit freeze",
            ], token: alice.access)
            #expect(deny.status == .created, "\(deny.text)")
            let allow = try await api.send(.post, "/v1/orgs/\(org)/overrides", json: [
                "subject": ["user_id": bob.userID], "resource": o + "/project:p1", "permission": "invites.write", "effect": "allow", "reason": "on call",
            ], token: alice.access)
            #expect(allow.status == .created)
            #expect(try await api.allowed(bob.access, o + "/project:p1", "invites.write"))
            #expect(try await api.allowed(bob.access, o + "/project:p2", "invites.write") == false)
            let caps = try await api.send(.post, "/v1/capabilities", json: ["objects": [o + "/project:p1"]], token: bob.access)
            let perms = ((caps.json["results"] as? [[String: Any]])?.first?["permissions"] as? [String]) ?? []
            #expect(perms.contains("invites.write") && !perms.contains("bindings.write") && perms.contains("org.read"))
            let lookup = try await api.send(.post, "/v1/lookup", json: ["permission": "invites.write", "type": "project"], token: bob.access)
            #expect((lookup.json["items"] as? [[String: Any]])?.compactMap { $0["object"] as? String } == [o + "/project:p1"])

            // Removing Bob from the org removes him from its groups and drops his overrides, at once.
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/members/\(bob.userID)", token: alice.access).status == .noContent)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/groups/\(squad)/members", token: alice.access).json["total"] as? Int == 0)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/overrides", token: alice.access).json["total"] as? Int == 1)
            try await api.addMember(alice.access, org: org, email: "bob@example.com", role: "viewer")
            #expect(try await api.allowed(bob.access, o + "/project:p1", "editor") == false)
            #expect(try await api.allowed(bob.access, o + "/project:p1", "invites.write") == false)

            let actions = try await api.items("/v1/orgs/\(org)/audit?limit=100", token: alice.access).compactMap { $0["action"] as? String }
            for action in ["group.created", "group.member_set", "override.created", "binding.set"] { #expect(actions.contains(action), "\(action)") }

            // A deleted service account leaves its groups; a deleted org takes its groups with it.
            let account = try await api.send(.post, "/v1/orgs/\(org)/service-accounts", json: ["name": "ci", "role": "viewer"], token: alice.access)
            let accountID = try #require(account.json["id"] as? String)
            #expect(try await api.putMember(alice.access, org: org, group: team, ["service_account_id": accountID]).status == .created)
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/service-accounts/\(accountID)", token: alice.access).status == .noContent)
            #expect(try await api.send(.get, "/v1/orgs/\(org)/groups/\(team)/members", token: alice.access).json["total"] as? Int == 1)
            #expect(try await api.send(.delete, "/v1/orgs/\(org)", token: alice.access).status == .noContent)
            for table in ["groups", "group_members", "overrides"] {
                #expect(try await services.database.query("SELECT COUNT(*) AS n FROM \(table)").first?.int("n") == 0, "\(table)")
            }
        }
    }

    @Test("property: grants loaded from the database decide as the reference evaluator", arguments: Backend.allCases)
    func loadedState(_ backend: Backend) async throws {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let now = Date()
            var rng = SplitMix(state: backend == .sqlite ? 11 : 12)
            var checks = 0
            for round in 0..<12 {
                let org = UUID()
                var (d, people) = GrantDefinitions.random(org: org, using: &rng)
                // The definitions' clock is 1,000; the database's is now: shift every time onto it.
                func shift(_ t: Instant) -> Date? { t.isFinite ? now.addingTimeInterval(t - GroupEngineTests.now) : nil }
                try await Self.store(d, org: org, people: people, db: db, at: now, shift: shift)
                let store = SQLPolicyStore(database: db)
                let whole = try #require(try await store.grants(orgID: org))
                // Warming a cache loads every org at once, by other queries: the same answers.
                let bulk = try #require(try await store.allGrants()[org])
                #expect(bulk.members == whole.members, "round \(round): memberships loaded in bulk")
                for _ in 0..<200 {
                    let subject = GrantDefinitions.randomSubject(people, org: org, using: &rng)
                    let object = ObjectRef(orgID: org, path: GrantDefinitions.objects.randomElement(using: &rng)!)
                    let action = GrantDefinitions.actions.randomElement(using: &rng)!
                    let required = try GrantDefinitions.table.requirement(for: action)
                    let expected = d.reference(subject, object, action, now: GroupEngineTests.now)
                    #expect(DecisionEngine.decide(whole, subject: subject, object: object, required: required, now: now.instant).allowed == expected,
                            "round \(round): \(action) on \(object.path)")
                    #expect(DecisionEngine.decide(bulk, subject: subject, object: object, required: required, now: now.instant).allowed == expected)
                    // A strong read loads the subject's grants alone, and must answer the same.
                    let own = try await store.grants(orgID: org, of: subject.principal)
                    #expect(DecisionEngine.decide(own, subject: subject, object: object, required: required, now: now.instant).allowed == expected)
                    checks += 1
                }
                d = GrantDefinitions()
                people = []
            }
            #expect(checks == 2_400)
        }
    }

    /// Writes definitions through the stores' own writers (the rules are not under test here: the loaders are).
    static func store(_ d: GrantDefinitions, org: UUID, people: [Principal], db: any SQLDatabase, at now: Date, shift: (Instant) -> Date?) async throws {
        let identity = SQLIdentityStore(database: db)
        for case .user(let id) in people {
            let user = User(id: id, email: "\(id.lowercasedString)@example.com", name: "N", emailVerified: true, isRoot: false, createdAt: now, updatedAt: now)
            _ = try await identity.createUser(UserCredentials(user: user, passwordHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"), verification: nil)
        }
        let members = d.members.map { ($0.key, $0.value.role, shift($0.value.until)) }
        _ = try await SQLTenancyStore(database: db).write(lockingOrg: nil) { tx in
            try await tx.insertOrg(Org(id: org, name: "Org", description: "", metadata: [:], createdAt: now, updatedAt: now))
            for (p, role, until) in members {
                if case .user(let id) = p {
                    try await tx.upsertMembership(Membership(orgID: org, userID: id, role: role, expiresAt: until, createdAt: now, updatedAt: now))
                }
            }
            return try await tx.recordChange(.orgCreated(org), at: now)
        }
        for case (.serviceAccount(let id), let role, _) in members {
            try await db.execute("INSERT INTO service_accounts (id, org_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)", id, org, "sa", role.rawValue, now)
        }
        // Service accounts that are not members of this org exist elsewhere: the generator's people all need rows only when members.
        let groups = d.groups, edges = d.edges.map { ($0.member, $0.group, shift($0.until)) }
        let overrides = d.overrides.map { ($0.holder, $0.path, $0.permission, $0.effect, shift($0.until)) }
        _ = try await SQLGroupStore(database: db).writeGroups(lockingOrg: org) { tx, g in
            for (i, group) in groups.enumerated() {
                try await g.insertGroup(Group(id: group.id, orgID: org, name: "g\(i)", description: "", metadata: [:], parentID: group.parent,
                                              createdAt: now, updatedAt: now, auditEventID: nil))
            }
            var seen = Set<String>()
            for (member, group, until) in edges where seen.insert("\(member)\(group)").inserted {
                try await g.upsertGroupMember(GroupMember(groupID: group, member: member, label: nil, expiresAt: until, createdAt: now, updatedAt: now),
                                              orgID: org, auditEventID: nil)
            }
            for (holder, path, permission, effect, until) in overrides {
                try await g.insertOverride(Override(id: UUID(), orgID: org, subject: holder, resource: ObjectRef(orgID: org, path: path), permission: permission,
                                                    effect: effect, expiresAt: until, reason: "r", createdAt: now, auditEventID: nil))
            }
            return try await tx.recordChange(.groupChanged(org: org), at: now)
        }
        let bindings = d.bindings.map { ($0.holder, $0.path, $0.role, shift($0.until)) }
        _ = try await SQLPolicyStore(database: db).writeBindings(lockingOrg: org) { tx, b in
            for (holder, path, role, until) in bindings {
                try await b.upsertBinding(Binding(id: UUID(), orgID: org, principal: holder, resource: ObjectRef(orgID: org, path: path), role: role,
                                                  expiresAt: until, createdAt: now, updatedAt: now, auditEventID: nil))
            }
            return try await tx.recordChange(.bindingChanged(org: org), at: now)
        }
    }
}
