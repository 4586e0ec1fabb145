import Authority
import Foundation
import Policy
import Tenancy
import Testing

@Suite("Decision engine (pure)")
struct PolicyEngineTests {
    static let org = UUID()

    @Test("object strings parse, and malformed ones are refused", arguments: [
        ("org:\(org.uuidString.lowercased())", true),
        ("org:\(org.uuidString)", true),
        ("org:\(org.uuidString.lowercased())/project:p1", true),
        ("org:\(org.uuidString.lowercased())/project:p1/doc:A-b.c_d~e@f+g=h:i", true),
        ("org:\(org.uuidString.lowercased())/", false),
        ("org:\(org.uuidString.lowercased())/project", false),
        ("org:\(org.uuidString.lowercased())/project:", false),
        ("org:\(org.uuidString.lowercased())/:p1", false),
        ("org:\(org.uuidString.lowercased())/Project:p1", false),
        ("org:\(org.uuidString.lowercased())/project:p1//doc:1", false),
        ("org:\(org.uuidString.lowercased())/project:p 1", false),
        ("org:\(org.uuidString.lowercased())x", false),
        ("org:not-a-uuid", false),
        ("org:", false),
        ("team:\(org.uuidString.lowercased())", false),
        ("", false),
        ("org:\(org.uuidString.lowercased())" + String(repeating: "/a:b", count: 17), false),
        ("org:\(org.uuidString.lowercased())/doc:" + String(repeating: "x", count: 257), false),
    ])
    func parsing(_ text: String, _ valid: Bool) {
        let parsed = try? ObjectRef.parse(text)
        #expect((parsed != nil) == valid, "\(text)")
        if let parsed {
            #expect(parsed.orgID == Self.org)
            #expect(parsed.string == text.replacingOccurrences(of: Self.org.uuidString, with: Self.org.uuidString.lowercased()))
        }
    }

    /// Role × built-in permission, written out by hand (SPEC §4).
    static let expected: [String: [Bool]] = [
        // viewer, editor, admin, owner
        "org.read": [true, true, true, true],
        "members.read": [true, true, true, true],
        "org.update": [false, false, true, true],
        "members.write": [false, false, true, true],
        "invites.read": [false, false, true, true],
        "invites.write": [false, false, true, true],
        "bindings.write": [false, false, true, true],
        "service_accounts.write": [false, false, true, true],
        "audit.read": [false, false, true, true],
        "org.delete": [false, false, false, true],
        "members.owners": [false, false, false, true],
        "viewer": [true, true, true, true],
        "editor": [false, true, true, true],
        "admin": [false, false, true, true],
        "owner": [false, false, false, true],
    ]

    @Test("role × permission")
    func roleTable() throws {
        let user = UUID()
        for (i, role) in Role.ranked.enumerated() {
            let grants = OrgGrants(members: [.user(user): MemberGrant(role: role)])
            for (action, row) in Self.expected {
                let d = DecisionEngine.decide(
                    grants, subject: .user(user), object: ObjectRef(orgID: Self.org), required: try PermissionTable.builtIn.requirement(for: action), now: 0)
                #expect(d.allowed == row[i], "\(role) \(action)")
                #expect(d.role == role)
            }
        }
        #expect(throws: PolicyError.self) { try PermissionTable.builtIn.requirement(for: "things.read") }
        #expect(throws: PolicyError.self) { try PermissionTable.builtIn.requirement(for: "Owner") }
    }

    @Test("bindings count on their object and below it, never on siblings")
    func ancestors() throws {
        let user = UUID()
        let binding = BindingGrant(id: UUID(), path: "/project:p1", role: .editor)
        let grants = OrgGrants(members: [.user(user): MemberGrant(role: .viewer)], bindings: [.user(user): [binding]])
        let editor = try PermissionTable.builtIn.requirement(for: "editor")
        let o = Self.org.uuidString.lowercased()
        for (object, allowed) in [
            ("org:\(o)/project:p1", true), ("org:\(o)/project:p1/doc:d1", true), ("org:\(o)/project:p1/doc:d1/page:3", true),
            ("org:\(o)/project:p10", false), ("org:\(o)/project:p2/doc:d1", false), ("org:\(o)", false), ("org:\(o)/doc:project:p1", false),
        ] {
            let d = DecisionEngine.decide(grants, subject: .user(user), object: try ObjectRef.parse(object), required: editor, now: 0)
            #expect(d.allowed == allowed, "\(object)")
            #expect(d.role == (allowed ? .editor : .viewer), "\(object)")
        }
        // A binding alone (no membership) grants on its subtree only.
        let outsider = UUID()
        let only = OrgGrants(bindings: [.user(outsider): [BindingGrant(id: UUID(), path: "/doc:d1", role: .viewer)]])
        let viewer = try PermissionTable.builtIn.requirement(for: "viewer")
        #expect(DecisionEngine.decide(only, subject: .user(outsider), object: try ObjectRef.parse("org:\(o)/doc:d1"), required: viewer, now: 0).allowed)
        #expect(!DecisionEngine.decide(only, subject: .user(outsider), object: ObjectRef(orgID: Self.org), required: viewer, now: 0).allowed)
        // The org-wide binding (empty path) covers everything.
        let wide = OrgGrants(bindings: [.user(outsider): [BindingGrant(id: UUID(), path: "", role: .admin)]])
        #expect(DecisionEngine.decide(wide, subject: .user(outsider), object: try ObjectRef.parse("org:\(o)/x:y"), required: try PermissionTable.builtIn.requirement(for: "admin"), now: 0).allowed)
    }

    @Test("expired memberships and bindings no longer count")
    func expiry() throws {
        let user = UUID()
        let grants = OrgGrants(
            members: [.user(user): MemberGrant(role: .admin, expiresAt: 100)],
            bindings: [.user(user): [BindingGrant(id: UUID(), path: "/doc:1", role: .owner, expiresAt: 200)]])
        let object = try ObjectRef.parse("org:\(Self.org.uuidString)/doc:1")
        let viewer = try PermissionTable.builtIn.requirement(for: "viewer")
        #expect(DecisionEngine.decide(grants, subject: .user(user), object: object, required: viewer, now: 99).role == .owner)
        #expect(DecisionEngine.decide(grants, subject: .user(user), object: object, required: viewer, now: 150).role == .owner)
        #expect(DecisionEngine.decide(grants, subject: .user(user), object: ObjectRef(orgID: Self.org), required: viewer, now: 150).allowed == false)
        #expect(DecisionEngine.decide(grants, subject: .user(user), object: object, required: viewer, now: 200).allowed == false)
    }

    @Test("key scopes narrow: org list and role cap")
    func scopes() throws {
        let user = UUID(), other = UUID()
        let grants = OrgGrants(members: [.user(user): MemberGrant(role: .owner)])
        let object = ObjectRef(orgID: Self.org)
        let admin = try PermissionTable.builtIn.requirement(for: "org.update")
        let read = try PermissionTable.builtIn.requirement(for: "org.read")
        func decide(_ scopes: [String], _ r: Requirement) throws -> Decision {
            DecisionEngine.decide(grants, subject: Subject(principal: .user(user), scopes: try KeyScopes.parse(scopes)), object: object, required: r, now: 0)
        }
        #expect(try decide([], admin).allowed)
        #expect(try decide(["role:viewer"], read).allowed)
        #expect(try decide(["role:viewer"], admin).allowed == false)
        #expect(try decide(["role:viewer"], read).role == .viewer)
        #expect(try decide(["role:admin", "role:editor"], read).role == .editor)
        #expect(try decide(["org:\(Self.org.uuidString.lowercased())"], admin).allowed)
        #expect(try decide(["org:\(other.uuidString.lowercased())"], read).allowed == false)
        #expect(try decide(["org:\(other.uuidString.lowercased())", "org:\(Self.org.uuidString.lowercased())", "role:admin"], admin).allowed)
        #expect(try KeyScopes.parse(["authz:check"]).authzCheck)
        for bad in ["org:nope", "role:god", "admin", "authz:*", ""] {
            #expect(throws: PolicyError.self, "\(bad)") { try KeyScopes.parse([bad]) }
        }
        // Scopes only narrow: a scope never adds a role the owner does not hold.
        let none = OrgGrants()
        #expect(!DecisionEngine.decide(none, subject: Subject(principal: .user(user), scopes: try KeyScopes.parse(["role:owner"])), object: object, required: read, now: 0).allowed)
    }

    @Test("service accounts hold their org role")
    func serviceAccounts() throws {
        let sa = UUID()
        let grants = OrgGrants(members: [.serviceAccount(sa): MemberGrant(role: .editor)])
        let editor = try PermissionTable.builtIn.requirement(for: "editor")
        #expect(DecisionEngine.decide(grants, subject: Subject(principal: .serviceAccount(sa)), object: ObjectRef(orgID: Self.org), required: editor, now: 0).allowed)
        // The same id as a user holds nothing.
        #expect(!DecisionEngine.decide(grants, subject: .user(sa), object: ObjectRef(orgID: Self.org), required: editor, now: 0).allowed)
    }

    @Test("explain marks the grant that decided")
    func explain() throws {
        let user = UUID(), event = UUID()
        let grants = OrgGrants(
            members: [.user(user): MemberGrant(role: .viewer, auditEventID: UUID())],
            bindings: [.user(user): [
                BindingGrant(id: UUID(), path: "/project:p1", role: .admin, auditEventID: event),
                BindingGrant(id: UUID(), path: "/project:p2", role: .owner),
            ]])
        let e = DecisionEngine.explain(grants, subject: .user(user), object: try ObjectRef.parse("org:\(Self.org.uuidString)/project:p1/doc:1"),
                                       required: try PermissionTable.builtIn.requirement(for: "admin"), now: 0)
        #expect(e.decision.allowed)
        #expect(e.grants.count == 2)
        #expect(e.grants.filter(\.decisive).map(\.auditEventID) == [event])
    }

    @Test("custom permission files: YAML subset and JSON, with clear refusals")
    func permissionFile() throws {
        let yaml = """
        # things
        permissions:
          things.read: viewer
          "things.write": editor   # quoted is fine
        """
        #expect(try PermissionFile.parse(yaml) == ["things.read": .viewer, "things.write": .editor])
        #expect(try PermissionFile.parse(#"{"permissions": {"reports.export": "admin"}}"#) == ["reports.export": .admin])
        #expect(try PermissionFile.parse(#"{"a.b": "owner"}"#) == ["a.b": .owner])
        for bad in ["things.read: boss", "org.read: viewer", "admin.x: god", "nodot: viewer", "Things.Read: viewer", "{\"a.b\": 3}", "{nope", "a.b viewer",
                    "a.b: viewer\na.b: editor"] {
            #expect(throws: PolicyError.self, "\(bad)") { try PermissionFile.parse(bad) }
        }
        let table = PermissionTable.withCustom(["things.write": .editor])
        #expect(try table.requirement(for: "things.write").role == .editor)
        #expect(try table.requirement(for: "org.delete").role == .owner)
    }
}
