import Authority
import Foundation
import HTTPTypes
import Tenancy
import Testing

/// The rank rules of SPEC §4, written out by hand as the expected table (not derived from the
/// code under test): actor role × target role × operation → status.
@Suite("Rank rules: actor × target × operation")
struct RankRuleTests {
    static let roles = ["viewer", "editor", "admin", "owner"]

    /// Columns: change the target to viewer, editor, admin, owner; remove the target.
    static let changeAndRemove: [String: [Int]] = [
        "owner  viewer": [200, 200, 200, 200, 204],
        "owner  editor": [200, 200, 200, 200, 204],
        "owner  admin":  [200, 200, 200, 200, 204],
        "owner  owner":  [200, 200, 200, 200, 204],
        "admin  viewer": [200, 200, 200, 403, 204],
        "admin  editor": [200, 200, 200, 403, 204],
        "admin  admin":  [403, 403, 403, 403, 403],
        "admin  owner":  [403, 403, 403, 403, 403],
        "editor viewer": [403, 403, 403, 403, 403],
        "editor editor": [403, 403, 403, 403, 403],
        "editor admin":  [403, 403, 403, 403, 403],
        "editor owner":  [403, 403, 403, 403, 403],
        "viewer viewer": [403, 403, 403, 403, 403],
        "viewer editor": [403, 403, 403, 403, 403],
        "viewer admin":  [403, 403, 403, 403, 403],
        "viewer owner":  [403, 403, 403, 403, 403],
    ]

    /// Adding a new member with role viewer, editor, admin, owner.
    static let grant: [String: [Int]] = [
        "owner": [201, 201, 201, 201],
        "admin": [201, 201, 201, 403],
        "editor": [403, 403, 403, 403],
        "viewer": [403, 403, 403, 403],
    ]

    @Test("the pure rules agree with the table")
    func pureRules() {
        for (key, expected) in Self.changeAndRemove {
            let parts = key.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            let actor = Role(rawValue: parts[0])!, target = Role(rawValue: parts[1])!
            let writes = PermissionTable.builtIn.allows(actor, Permission.membersWrite)
            let owners = PermissionTable.builtIn.allows(actor, Permission.membersOwners)
            for (i, newRole) in Role.ranked.enumerated() {
                let allowed = writes && RankRules.mayChange(actor: actor, target: target, to: newRole, managesOwners: owners)
                #expect(allowed == (expected[i] == 200), "\(key) → \(newRole)")
            }
            #expect((writes && RankRules.mayManage(actor: actor, target: target, managesOwners: owners)) == (expected[4] == 204), "\(key) remove")
        }
        for (actorName, expected) in Self.grant {
            let actor = Role(rawValue: actorName)!
            let writes = PermissionTable.builtIn.allows(actor, Permission.membersWrite)
            for (i, role) in Role.ranked.enumerated() {
                #expect((writes && RankRules.mayGrant(actor: actor, role: role)) == (expected[i] == 201), "\(actorName) grants \(role)")
            }
        }
    }

    /// What the console offers (`OrgAbilities`) is what the table allows: an admin is not
    /// offered "owner", and nobody is offered a change the server would refuse.
    @Test("the console's choices agree with the table", arguments: Backend.allCases)
    func consoleChoices(_ backend: Backend) async throws {
        try await withApp(backend) { api, services in
            let founder = try await api.signupAndLogin("founder@example.com")
            let org = try #require(UUID(uuidString: try await api.createOrg(founder.access)))
            for actorName in Self.roles {
                let tokens = try await api.signupAndLogin("actor-\(actorName)@example.com")
                try await api.addMember(founder.access, org: org.uuidString, email: "actor-\(actorName)@example.com", role: actorName)
                let actor = Actor.user(try #require(UUID(uuidString: tokens.userID)), isRoot: false)
                let abilities = try await services.tenancy.abilities(actor: actor, orgID: org)
                #expect(abilities.role?.rawValue == actorName)
                let granted = try #require(Self.grant[actorName])
                #expect(abilities.grantableRoles == Role.ranked.enumerated().filter { granted[$0.offset] == 201 }.map(\.element), "\(actorName) grants")
                for target in Self.roles {
                    let row = try #require(Self.changeAndRemove["\(actorName.padding(toLength: 6, withPad: " ", startingAt: 0)) \(target)"])
                    let offered = abilities.roleChoices(for: Role(rawValue: target)!)
                    #expect(offered == Role.ranked.enumerated().filter { row[$0.offset] == 200 }.map(\.element), "\(actorName) changes \(target)")
                    #expect(abilities.mayRemove(Role(rawValue: target)!) == (row[4] == 204), "\(actorName) removes \(target)")
                }
            }
            // A stranger cannot see the org at all; the root sees it with an owner's choices.
            let stranger = try await api.signupAndLogin("stranger@example.com")
            await #expect(throws: TenancyError.self) {
                _ = try await services.tenancy.abilities(actor: .user(UUID(uuidString: stranger.userID)!, isRoot: false), orgID: org)
            }
            let root = try await services.tenancy.abilities(actor: .user(UUID(), isRoot: true), orgID: org)
            #expect(root.role == nil && root.grantableRoles == Role.ranked && root.may(Permission.orgDelete))
        }
    }

    @Test("the permission table is SPEC §4")
    func permissionTable() {
        let t = PermissionTable.builtIn
        #expect(t.role(for: "org.read") == .viewer)
        #expect(t.role(for: "members.read") == .viewer)
        for p in ["org.update", "members.write", "invites.read", "invites.write", "bindings.write", "service_accounts.write", "audit.read"] {
            #expect(t.role(for: p) == .admin, "\(p)")
        }
        #expect(t.role(for: "org.delete") == .owner)
        #expect(t.role(for: "members.owners") == .owner)
        #expect(t.leastRole.count == 11)
        #expect(!t.allows(.owner, "no.such.permission"))
        #expect(t.permissions(of: .viewer) == ["members.read", "org.read"])
    }

    @Test("every change and removal over HTTP", arguments: Backend.allCases)
    func changeAndRemoveOverHTTP(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let founder = try await api.signupAndLogin("founder@example.com")
            let org = try await api.createOrg(founder.access)
            var actors: [String: String] = [:]
            for role in Self.roles {
                let tokens = try await api.signupAndLogin("actor-\(role)@example.com")
                try await api.addMember(founder.access, org: org, email: "actor-\(role)@example.com", role: role)
                actors[role] = tokens.access
            }
            var n = 0
            for (key, expected) in Self.changeAndRemove.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                let (actor, target) = (parts[0], parts[1])
                for (column, status) in expected.enumerated() {
                    n += 1
                    let email = "target-\(n)@example.com"
                    let userID = try await api.signup(email)
                    try await api.addMember(founder.access, org: org, email: email, role: target)
                    let reply: APIClient.Reply
                    if column < 4 {
                        reply = try await api.send(.patch, "/v1/orgs/\(org)/members/\(userID)", json: ["role": Self.roles[column]], token: actors[actor])
                    } else {
                        reply = try await api.send(.delete, "/v1/orgs/\(org)/members/\(userID)", token: actors[actor])
                    }
                    let op = column < 4 ? "change to \(Self.roles[column])" : "remove"
                    #expect(reply.status.code == status, "\(actor) \(op) \(target): \(reply.text)")
                    // What the table forbids leaves the member exactly as it was.
                    let after = try await api.send(.get, "/v1/orgs/\(org)/members/\(userID)", token: founder.access)
                    switch status {
                    case 200: #expect(after.json["role"] as? String == Self.roles[column])
                    case 204: #expect(after.status == .notFound)
                    default:
                        #expect(reply.code == "forbidden")
                        #expect(after.json["role"] as? String == target)
                    }
                }
            }
        }
    }

    @Test("every grant over HTTP", arguments: Backend.allCases)
    func grantOverHTTP(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let founder = try await api.signupAndLogin("founder@example.com")
            let org = try await api.createOrg(founder.access)
            var n = 0
            for (actor, expected) in Self.grant.sorted(by: { $0.key < $1.key }) {
                let tokens = try await api.signupAndLogin("actor-\(actor)@example.com")
                try await api.addMember(founder.access, org: org, email: "actor-\(actor)@example.com", role: actor)
                for (column, status) in expected.enumerated() {
                    n += 1
                    let email = "new-\(n)@example.com"
                    let userID = try await api.signup(email)
                    let reply = try await api.send(.post, "/v1/orgs/\(org)/members", json: ["user_id": userID, "role": Self.roles[column]], token: tokens.access)
                    #expect(reply.status.code == status, "\(actor) grants \(Self.roles[column]): \(reply.text)")
                    let after = try await api.send(.get, "/v1/orgs/\(org)/members/\(userID)", token: founder.access)
                    #expect(after.status == (status == 201 ? .ok : .notFound))
                }
            }
        }
    }

    @Test("leaving: any member may, the last permanent owner may not", arguments: Backend.allCases)
    func leaving(_ backend: Backend) async throws {
        try await withApp(backend) { api, _ in
            let owner = try await api.signupAndLogin("owner@example.com")
            let org = try await api.createOrg(owner.access)
            for role in Self.roles where role != "owner" {
                let member = try await api.signupAndLogin("\(role)@example.com")
                try await api.addMember(owner.access, org: org, email: "\(role)@example.com", role: role)
                let leave = try await api.send(.delete, "/v1/orgs/\(org)/members/\(member.userID)", token: member.access)
                #expect(leave.status == .noContent, "\(role) leaves: \(leave.text)")
                #expect(try await api.send(.get, "/v1/orgs/\(org)", token: member.access).status == .notFound)
            }
            let last = try await api.send(.delete, "/v1/orgs/\(org)/members/\(owner.userID)", token: owner.access)
            #expect(last.status == .conflict)
            #expect(last.code == "last_owner")
            let demote = try await api.send(.patch, "/v1/orgs/\(org)/members/\(owner.userID)", json: ["role": "admin"], token: owner.access)
            #expect(demote.code == "last_owner")
            // A time-bound grant does not keep an org owned: making the last owner temporary is refused.
            let temporary = try await api.send(
                .patch, "/v1/orgs/\(org)/members/\(owner.userID)", json: ["expires_at": "2999-01-01T00:00:00Z"], token: owner.access)
            #expect(temporary.code == "last_owner")

            // With a second owner, the first may leave.
            _ = try await api.signupAndLogin("second@example.com")
            try await api.addMember(owner.access, org: org, email: "second@example.com", role: "owner")
            #expect(try await api.send(.delete, "/v1/orgs/\(org)/members/\(owner.userID)", token: owner.access).status == .noContent)
        }
    }
}
