import Authority
import Foundation
import Identity
import Invites
import Keys
import Policy
import Storage
import Tenancy
import Testing

/// The store protocols of Tenancy, Policy and Keys, held to their contract on SQLite and
/// PostgreSQL alike (the Identity stores and the change feed: `IdentityStoreContractTests`).
@Suite("Store contract: tenancy, bindings and grants, keys")
struct DomainStoreContractTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// A migrated database with two users, the first owning one org.
    func withOrg<T: Sendable>(_ backend: Backend, _ body: (any SQLDatabase, _ org: UUID, _ owner: UUID, _ other: UUID) async throws -> T) async throws -> T {
        try await withDatabase(backend) { db, _ in
            try await Migrator(dialect: db.dialect).migrate(db)
            let identity = SQLIdentityStore(database: db)
            var ids: [UUID] = []
            for email in ["owner@example.com", "other@example.com"] {
                let user = User(id: UUID(), email: email, name: "N", emailVerified: true, isRoot: false, createdAt: Self.now, updatedAt: Self.now)
                _ = try await identity.createUser(UserCredentials(user: user, passwordHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"), verification: nil)
                ids.append(user.id)
            }
            let org = UUID()
            let ownerID = ids[0]
            _ = try await SQLTenancyStore(database: db).write(lockingOrg: nil) { tx in
                try await tx.insertOrg(Org(id: org, name: "Acme", description: "", metadata: [:], createdAt: Self.now, updatedAt: Self.now))
                try await tx.upsertMembership(Membership(orgID: org, userID: ownerID, role: .owner, expiresAt: nil, createdAt: Self.now, updatedAt: Self.now))
                return try await tx.recordChange(.orgCreated(org), at: Self.now)
            }
            return try await body(db, org, ids[0], ids[1])
        }
    }

    @Test("tenancy: memberships, owner counts, org lists, audit order, revisions, rollback", arguments: Backend.allCases)
    func tenancy(_ backend: Backend) async throws {
        try await withOrg(backend) { db, org, owner, other in
            let store = SQLTenancyStore(database: db)
            let later = Self.now.addingTimeInterval(60)
            // A time-bound owner does not count as a permanent one; upsert replaces.
            let first = try await store.write(lockingOrg: org) { tx in
                try await tx.upsertMembership(Membership(orgID: org, userID: other, role: .owner, expiresAt: later, createdAt: Self.now, updatedAt: Self.now))
                #expect(try await tx.permanentOwnerCount(orgID: org) == 1)
                #expect(try await tx.ownedOrgCount(userID: owner) == 1)
                try await tx.appendAudit(AuditEvent(at: Self.now, actorType: "user", actorID: owner, action: "member.added", orgID: org, target: "user:x"))
                return try await tx.recordChange(.membershipChanged(org: org, user: other), at: Self.now)
            }
            let second = try await store.write(lockingOrg: org) { tx in
                try await tx.upsertMembership(Membership(orgID: org, userID: other, role: .viewer, expiresAt: nil, createdAt: Self.now, updatedAt: later))
                try await tx.appendAudit(AuditEvent(at: later, actorType: "user", actorID: owner, action: "member.role_changed", orgID: org, target: "user:x"))
                return try await tx.recordChange(.membershipChanged(org: org, user: other), at: later)
            }
            #expect(second > first)
            #expect(try await store.membership(orgID: org, userID: other)?.role == .viewer)
            let (members, total) = try await store.members(orgID: org, limit: 1, offset: 0)
            #expect(total == 2 && members.count == 1)
            // Audit: newest first, paged with an exact total.
            let (events, count) = try await store.auditEvents(orgID: org, filter: AuditFilter(), limit: 10, offset: 0)
            #expect(count == 2 && events.map(\.action) == ["member.role_changed", "member.added"])
            #expect(try await store.auditEvent(id: events[0].id)?.action == "member.role_changed")
            // Filtered by action, by actor, by both; the total counts the filtered events.
            let (added, addedCount) = try await store.auditEvents(orgID: org, filter: AuditFilter(action: "member.added"), limit: 10, offset: 0)
            #expect(addedCount == 1 && added.map(\.action) == ["member.added"])
            #expect(try await store.auditEvents(orgID: org, filter: AuditFilter(actorID: owner), limit: 1, offset: 1) .1 == 2)
            #expect(try await store.auditEvents(orgID: org, filter: AuditFilter(actorID: other), limit: 10, offset: 0).1 == 0)
            #expect(try await store.auditEvents(orgID: org, filter: AuditFilter(action: "member.added", actorID: other), limit: 10, offset: 0).1 == 0)
            #expect(try await store.auditEvents(orgID: nil, filter: AuditFilter(action: "member.role_changed"), limit: 10, offset: 0).1 == 1)
            // Org lists: filtered by name, by a key's scope, and without expired memberships.
            #expect(try await store.orgs(memberUserID: other, within: nil, now: Self.now, nameContains: "acm", limit: 10, offset: 0).1 == 1)
            #expect(try await store.orgs(memberUserID: other, within: nil, now: Self.now, nameContains: "zzz", limit: 10, offset: 0).1 == 0)
            #expect(try await store.orgs(memberUserID: other, within: [UUID()], now: Self.now, nameContains: nil, limit: 10, offset: 0).1 == 0)
            // A body that throws leaves nothing behind.
            struct Boom: Error {}
            await #expect(throws: Boom.self) {
                try await store.write(lockingOrg: org) { tx in
                    try await tx.deleteMembership(orgID: org, userID: other)
                    throw Boom()
                }
            }
            #expect(try await store.membership(orgID: org, userID: other) != nil)
            _ = try await store.write(lockingOrg: org) { tx in try await tx.deleteMembership(orgID: org, userID: other) }
            #expect(try await store.membership(orgID: org, userID: other) == nil)
        }
    }

    @Test("bindings: one per subject and resource, counted; grant loads by org, by principal and across orgs", arguments: Backend.allCases)
    func bindingsAndGrants(_ backend: Backend) async throws {
        try await withOrg(backend) { db, org, owner, other in
            let store = SQLPolicyStore(database: db)
            let resource = try ObjectRef.parse("org:\(org.lowercasedString)/project:p1")
            let id = UUID()
            let first = Policy.Binding(id: id, orgID: org, principal: .user(other), resource: resource, role: .editor, expiresAt: nil,
                                       createdAt: Self.now, updatedAt: Self.now, auditEventID: nil)
            _ = try await store.writeBindings(lockingOrg: org) { tx, b in
                #expect(try await b.principalExists(.user(other), orgID: org))
                #expect(try await !b.principalExists(.serviceAccount(UUID()), orgID: org))
                try await b.upsertBinding(first)
                return try await tx.recordChange(.bindingChanged(org: org), at: Self.now)
            }
            // Upserting the same subject and resource replaces the role: still one binding.
            _ = try await store.writeBindings(lockingOrg: org) { tx, b in
                var replaced = try #require(try await b.binding(orgID: org, principal: .user(other), resourcePath: resource.path))
                replaced.role = .admin
                try await b.upsertBinding(replaced)
                #expect(try await b.bindingCount(orgID: org) == 1)
                #expect(try await b.bindingCount(orgID: org, principal: .user(other)) == 1)
                #expect(try await b.bindingCount(orgID: org, principal: .user(owner)) == 0)
                return try await tx.recordChange(.bindingChanged(org: org), at: Self.now)
            }
            #expect(try await store.bindings(orgID: org, limit: 10, offset: 0).0.map(\.role) == [.admin])

            let whole = try #require(try await store.grants(orgID: org))
            #expect(whole.members[.user(owner)]?.role == .owner)
            #expect(whole.role(of: .user(other), on: resource.path + "/doc:d", at: Self.now.timeIntervalSince1970) == .admin)
            // A principal's own load holds only its grants, and an unknown org none.
            let mine = try await store.grants(orgID: org, of: .user(other))
            #expect(mine.members[.user(owner)] == nil && mine.holdsAnything(.user(other)))
            #expect(try await store.grants(orgID: UUID()) == nil)
            let held = try await store.holdings(of: .user(other))
            #expect(held.memberships.isEmpty && held.bindings.map(\.0) == [org])
            #expect(try await store.holdings(of: .user(owner)).memberships.map(\.0) == [org])

            _ = try await store.writeBindings(lockingOrg: org) { tx, b in
                #expect(try await b.binding(id: id, orgID: org) != nil)
                #expect(try await b.binding(id: id, orgID: UUID()) == nil)
                try await b.deleteBinding(id: id)
                return try await tx.recordChange(.bindingChanged(org: org), at: Self.now)
            }
            #expect(try await store.bindings(orgID: org, limit: 10, offset: 0).1 == 0)
        }
    }

    @Test("keys: service accounts and their keys, revocation once, lookup by prefix with the secret hash", arguments: Backend.allCases)
    func keys(_ backend: Backend) async throws {
        try await withOrg(backend) { db, org, owner, _ in
            let store = SQLKeyStore(database: db)
            let account = ServiceAccount(id: UUID(), orgID: org, name: "ci", role: .editor, createdAt: Self.now)
            let minted = APIKeyFormat.mint()
            let key = APIKey(id: UUID(), prefix: minted.prefix, name: "deploy", owner: .serviceAccount(id: account.id, orgID: org), scopes: [],
                             createdAt: Self.now, expiresAt: nil)
            let userKey = APIKey(id: UUID(), prefix: APIKeyFormat.mint().prefix, name: "mine", owner: .user(owner), scopes: ["role:viewer"],
                                 createdAt: Self.now, expiresAt: nil)
            _ = try await store.writeKeys(lockingOrg: org) { tx, k in
                try await k.insertServiceAccount(account)
                try await k.insertKey(key, secretHash: minted.secretHash)
                try await k.insertKey(userKey, secretHash: String(repeating: "0", count: 64))
                #expect(try await k.maxKeyTTL(orgID: org) == nil)
                return try await tx.recordChange(.serviceAccountChanged(org: org, account: account.id), at: Self.now)
            }
            #expect(try await store.serviceAccount(id: account.id) == account)
            #expect(try await store.serviceAccounts(orgID: org, limit: 10, offset: 0).1 == 1)
            #expect(try await store.keys(owner: .serviceAccount(id: account.id, orgID: org), limit: 10, offset: 0).0.map(\.id) == [key.id])
            #expect(try await store.keys(owner: .user(owner), limit: 10, offset: 0).0.first?.scopes == ["role:viewer"])
            #expect(try await store.key(id: key.id)?.prefix == minted.prefix)
            // The verifier's lookup: by prefix, with the secret's hash (never the secret).
            let found = try #require(try await store.key(prefix: minted.prefix))
            #expect(found.0.id == key.id && found.secretHash == minted.secretHash)
            #expect(try await store.key(prefix: "nosuchprefix") == nil)
            // Revoking is once: the second time reports nothing revoked.
            let revoked = try await store.writeKeys(lockingOrg: nil) { _, k in try await k.revokeKey(id: userKey.id, at: Self.now) }
            let again = try await store.writeKeys(lockingOrg: nil) { _, k in try await k.revokeKey(id: userKey.id, at: Self.now) }
            #expect(revoked && !again)
            #expect(try await store.key(id: userKey.id)?.revokedAt != nil)
            // Deleting the account takes its keys along.
            _ = try await store.writeKeys(lockingOrg: org) { tx, k in
                try await k.deleteServiceAccount(id: account.id)
                return try await tx.recordChange(.serviceAccountChanged(org: org, account: account.id), at: Self.now)
            }
            #expect(try await store.serviceAccount(id: account.id) == nil)
            #expect(try await store.key(id: key.id) == nil)
        }
    }

    @Test("invites: one live pending per address, expiry by time, dormant ones wake on an invite-token signup", arguments: Backend.allCases)
    func invites(_ backend: Backend) async throws {
        try await withOrg(backend) { db, org, owner, _ in
            let store = SQLInviteStore(database: db)
            let expires = Self.now.addingTimeInterval(3600)
            func invite(_ email: String, dormant: Bool = false, expiresAt: Date = expires) -> Invite {
                Invite(id: UUID(), orgID: org, orgName: "Acme", email: email, role: .editor, storedState: .pending, dormant: dormant,
                       inviterID: owner, platformInviteID: nil, createdAt: Self.now, expiresAt: expiresAt)
            }
            let live = invite("live@example.com")
            let sleeper = invite("new@example.com", dormant: true)
            let stale = invite("stale@example.com", expiresAt: Self.now.addingTimeInterval(-1))
            _ = try await store.writeInvites(lockingOrg: org) { tx, w in
                try await w.insertInvite(live, tokenHash: String(repeating: "1", count: 64))
                try await w.insertInvite(sleeper, tokenHash: String(repeating: "2", count: 64))
                try await w.insertInvite(stale, tokenHash: String(repeating: "3", count: 64))
                #expect(try await w.livePendingInvite(orgID: org, email: "live@example.com", now: Self.now)?.id == live.id)
                #expect(try await w.livePendingInvite(orgID: org, email: "stale@example.com", now: Self.now) == nil)
                return try await tx.recordChange(.inviteChanged(live.id), at: Self.now)
            }
            #expect(try await store.invite(tokenHash: String(repeating: "1", count: 64))?.id == live.id)
            // State filters apply the clock: the stale one reads as expired, not pending.
            #expect(try await store.invites(orgID: org, state: .pending, now: Self.now, limit: 10, offset: 0).1 == 2)
            #expect(try await store.invites(orgID: org, state: .expired, now: Self.now, limit: 10, offset: 0).0.map(\.id) == [stale.id])
            // A dormant invite is not among its address's invites until it wakes.
            #expect(try await store.invites(email: "new@example.com", state: nil, now: Self.now, limit: 10, offset: 0).1 == 0)
            let user = User(id: UUID(), email: "new@example.com", name: "New", emailVerified: true, isRoot: false, createdAt: Self.now, updatedAt: Self.now)
            let credentials = UserCredentials(user: user, passwordHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA")
            #expect(try await store.signup(credentials, inviteTokenHash: String(repeating: "9", count: 64), now: Self.now, inviteLifetime: 3600) == nil)
            #expect(try await store.signup(credentials, inviteTokenHash: String(repeating: "2", count: 64), now: Self.now, inviteLifetime: 3600) != nil)
            let woken = try #require(try await store.invite(id: sleeper.id))
            #expect(!woken.dormant && woken.state(at: Self.now) == .pending)
            #expect(try await store.invites(email: "new@example.com", state: .pending, now: Self.now, limit: 10, offset: 0).1 == 1)
            // Answered invites keep their state.
            _ = try await store.writeInvites(lockingOrg: org) { tx, w in
                try await w.setState(inviteID: live.id, .declined)
                return try await tx.recordChange(.inviteChanged(live.id), at: Self.now)
            }
            #expect(try await store.invite(id: live.id)?.state(at: Self.now) == .declined)
        }
    }
}
