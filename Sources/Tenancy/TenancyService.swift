import Authority
import Foundation

/// Orgs and memberships with the rank rules of SPEC §4. Every check goes through
/// `PermissionTable` and `RankRules`; every write runs in one transaction with its audit event
/// and change-log entry, and membership writes lock the org first (last-owner races).
public struct TenancyService: Sendable {
    public let store: any TenancyStore
    public let permissions: PermissionTable
    let now: @Sendable () -> Date
    /// Orgs one user may own; creating one more is 409 `quota_exceeded` (the root is exempt).
    public var maxOwnedOrgs = 100

    public init(store: any TenancyStore, permissions: PermissionTable = .builtIn, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.permissions = permissions
        self.now = now
    }

    // MARK: Access

    /// An actor's standing in one org: its current membership role, and whether it is the root.
    struct Standing {
        var role: Role?
        var isRoot: Bool

        /// Runs `rule` with the membership role, falling back to root powers (acting as an owner).
        /// Returns the role the rule passed with and whether only root powers made it pass.
        func passes(_ rule: (Role) -> Bool) -> (role: Role, viaRoot: Bool)? {
            if let role, rule(role) { return (role, false) }
            if isRoot, rule(.owner) { return (.owner, true) }
            return nil
        }
    }

    /// Non-members (and orgs that do not exist) are 404 alike: no existence leak.
    func standing(org: Org?, membership: Membership?, actor: Actor, at now: Date) throws -> Standing {
        guard let org else { throw TenancyError.notFound("no such org") }
        let role = actor.effectiveRole(membership: membership.flatMap { $0.isCurrent(at: now) ? $0.role : nil }, in: org.id)
        guard role != nil || actor.isRoot else { throw TenancyError.notFound("no such org") }
        return Standing(role: role, isRoot: actor.isRoot)
    }

    func standing(orgID: UUID, actor: Actor, at now: Date) async throws -> Standing {
        async let org = store.org(id: orgID)
        async let membership = store.membership(orgID: orgID, userID: actor.userID)
        return try standing(org: try await org, membership: try await membership, actor: actor, at: now)
    }

    func standing(orgID: UUID, actor: Actor, in tx: any TenancyWriter, at now: Date) async throws -> (Org, Standing) {
        let org = try await tx.org(id: orgID)
        let membership = try await tx.membership(orgID: orgID, userID: actor.userID)
        let standing = try standing(org: org, membership: membership, actor: actor, at: now)
        return (org!, standing)
    }

    /// The role that holds `permission` here, or 403.
    func require(_ permission: String, _ standing: Standing) throws -> (role: Role, viaRoot: Bool) {
        guard let pass = standing.passes({ permissions.allows($0, permission) }) else {
            throw TenancyError.forbidden("your role in this org does not allow \(permission)")
        }
        return pass
    }

    /// For other modules' org-scoped routes (bindings, invites, keys): the role with which
    /// `actor` holds `permission` in the org, or 404 for non-members and 403 for too low a role.
    /// The root ranks as an owner everywhere.
    public func access(_ permission: String, actor: Actor, orgID: UUID) async throws -> Role {
        let standing = try await standing(orgID: orgID, actor: actor, at: now())
        let pass = try require(permission, standing)
        return standing.isRoot ? .owner : pass.role
    }

    /// Who manages what an org plugs into Portcullis (its apps, its webhooks): whoever may update
    /// the org; the platform's own (`orgID` nil) are the root's alone. Inside a write; true when
    /// only root powers made it pass. `what` names the platform's things in the refusal.
    public func managesIntegrations(_ actor: Actor, orgID: UUID?, _ what: String, in tx: any TenancyWriter, at: Date) async throws -> Bool {
        guard let orgID else {
            guard actor.isRoot else { throw TenancyError.forbidden("only the platform administrator manages platform \(what)") }
            return false
        }
        return try await access(Permission.orgUpdate, actor: actor, orgID: orgID, in: tx, at: at).viaRoot
    }

    /// The same rule for reads.
    public func managesIntegrations(_ actor: Actor, orgID: UUID?, _ what: String) async throws {
        guard let orgID else {
            guard actor.isRoot else { throw TenancyError.forbidden("only the platform administrator manages platform \(what)") }
            return
        }
        _ = try await access(Permission.orgUpdate, actor: actor, orgID: orgID)
    }

    /// The same inside a write transaction; `viaRoot` tells whether only root powers made it pass.
    public func access(_ permission: String, actor: Actor, orgID: UUID, in tx: any TenancyWriter, at now: Date) async throws -> (role: Role, viaRoot: Bool) {
        let (_, standing) = try await standing(orgID: orgID, actor: actor, in: tx, at: now)
        let pass = try require(permission, standing)
        return (standing.isRoot ? .owner : pass.role, pass.viaRoot)
    }

    // MARK: Orgs

    public func createOrg(actor: Actor, name: String, description: String?, metadata: JSONValue?) async throws -> (OrgView, Int64) {
        let name = try OrgFields.name(name)
        guard actor.serviceAccountGrant == nil, actor.orgs == nil, actor.roleCap == nil else {
            throw TenancyError.forbidden("a service account or a scoped key cannot create orgs")
        }
        let description = try OrgFields.description(description ?? "")
        let metadata = try metadata.map(OrgFields.metadata) ?? [:]
        let at = now()
        let org = Org(id: UUID(), name: name, description: description, metadata: metadata, createdAt: at, updatedAt: at)
        let quota = maxOwnedOrgs
        let revision = try await store.write(lockingOrg: nil) { tx in
            if !actor.isRoot, try await tx.ownedOrgCount(userID: actor.userID) >= quota {
                throw TenancyError.quotaExceeded("you own \(quota) orgs, the most one account may own; delete one or hand it over first")
            }
            let event = Self.event(actor, at: at, AuditAction.orgCreated, org: org.id, target: Self.orgTarget(org.id), ["name": .string(name)])
            try await tx.insertOrg(org)
            try await tx.upsertMembership(Membership(
                orgID: org.id, userID: actor.userID, role: .owner, expiresAt: nil, createdAt: at, updatedAt: at, auditEventID: event.id))
            try await tx.appendAudit(event)
            return try await tx.recordChange(.orgCreated(org.id), at: at)
        }
        return (OrgView(org: org, role: .owner), revision)
    }

    public func listOrgs(actor: Actor, everyOrg: Bool, nameContains: String?, limit: Int, offset: Int) async throws -> ([OrgView], Int) {
        let filter = try OrgFields.nameFilter(nameContains)
        if everyOrg {
            guard actor.isRoot else { throw TenancyError.forbidden("only the platform administrator may list every org") }
            return try await store.allOrgs(viewerUserID: actor.userID, now: now(), nameContains: filter, limit: limit, offset: offset)
        }
        if let grant = actor.serviceAccountGrant {
            guard let org = try await store.org(id: grant.orgID), filter.map({ org.name.lowercased().contains($0.lowercased()) }) ?? true,
                  let role = actor.effectiveRole(membership: nil, in: org.id) else { return ([], 0) }
            return (offset == 0 ? [OrgView(org: org, role: role)] : [], 1)
        }
        // A scoped key sees only its orgs (filtered by the query, so one page costs one page),
        // each with its role capped.
        let (page, total) = try await store.orgs(memberUserID: actor.userID, within: actor.orgs, now: now(), nameContains: filter, limit: limit, offset: offset)
        return (page.compactMap { view in actor.effectiveRole(membership: view.role, in: view.org.id).map { OrgView(org: view.org, role: $0) } }, total)
    }

    public func org(actor: Actor, id: UUID) async throws -> OrgView {
        let standing = try await standing(orgID: id, actor: actor, at: now())
        _ = try require(Permission.orgRead, standing)
        guard let org = try await store.org(id: id) else { throw TenancyError.notFound("no such org") }
        return OrgView(org: org, role: standing.role)
    }

    /// Applies the fields given. A patch that changes nothing writes nothing (revision nil).
    public func updateOrg(actor: Actor, id: UUID, patch: OrgPatch) async throws -> (OrgView, Int64?) {
        var fields = patch
        if case .set(let name) = patch.name { fields.name = .set(try OrgFields.name(name)) }
        if case .set(let description) = patch.description { fields.description = .set(try OrgFields.description(description)) }
        if case .set(let metadata) = patch.metadata { fields.metadata = .set(try OrgFields.metadata(.object(metadata))) }
        if case .set(let ttl) = patch.maxKeyTTL { fields.maxKeyTTL = .set(try OrgFields.maxKeyTTL(ttl)) }
        let validated = fields
        let at = now()
        return try await store.write(lockingOrg: id) { tx in
            let (current, standing) = try await standing(orgID: id, actor: actor, in: tx, at: at)
            let pass = try require(Permission.orgUpdate, standing)
            var org = current
            var changed: [JSONValue] = []
            if case .set(let v) = validated.name, v != org.name { org.name = v; changed.append(.string("name")) }
            if case .set(let v) = validated.description, v != org.description { org.description = v; changed.append(.string("description")) }
            if case .set(let v) = validated.metadata, v != org.metadata { org.metadata = v; changed.append(.string("metadata")) }
            if case .set(let v) = validated.maxKeyTTL, v != org.maxKeyTTL { org.maxKeyTTL = v; changed.append(.string("settings.max_key_ttl")) }
            guard !changed.isEmpty else { return (OrgView(org: org, role: standing.role), nil) }
            org.updatedAt = at
            try await tx.updateOrg(org)
            var details: [String: JSONValue] = ["fields": .array(changed)]
            if changed.contains(.string("name")) { details["name"] = .string(org.name) }
            try await tx.appendAudit(Self.event(actor, at: at, AuditAction.orgUpdated, org: id, target: Self.orgTarget(id), details, viaRoot: pass.viaRoot))
            let revision = try await tx.recordChange(.orgUpdated(id), at: at)
            return (OrgView(org: org, role: standing.role), revision)
        }
    }

    /// Deletes the org and, through the schema's cascades, everything it owns; the sessions its
    /// OpenID clients opened end here and on every node.
    public func deleteOrg(actor: Actor, id: UUID) async throws -> Int64 {
        let at = now()
        return try await store.write(lockingOrg: id) { tx in
            let (org, standing) = try await standing(orgID: id, actor: actor, in: tx, at: at)
            let pass = try require(Permission.orgDelete, standing)
            for session in try await tx.deleteOrg(id: id, at: at) { _ = try await tx.recordChange(.sessionRevoked(session), at: at) }
            try await tx.appendAudit(Self.event(actor, at: at, AuditAction.orgDeleted, org: id, target: Self.orgTarget(id), ["name": .string(org.name)], viaRoot: pass.viaRoot))
            return try await tx.recordChange(.orgDeleted(id), at: at)
        }
    }

    // MARK: Members

    public func members(actor: Actor, orgID: UUID, limit: Int, offset: Int) async throws -> ([Member], Int) {
        let standing = try await standing(orgID: orgID, actor: actor, at: now())
        _ = try require(Permission.membersRead, standing)
        return try await store.members(orgID: orgID, limit: limit, offset: offset)
    }

    public func member(actor: Actor, orgID: UUID, userID: UUID) async throws -> Member {
        let standing = try await standing(orgID: orgID, actor: actor, at: now())
        _ = try require(Permission.membersRead, standing)
        guard let member = try await store.member(orgID: orgID, userID: userID) else { throw TenancyError.notFound("no such member") }
        return member
    }

    public func addMember(actor: Actor, orgID: UUID, target: MemberTarget, role: Role, expiresAt: Date?) async throws -> (Member, Int64) {
        let at = now()
        try Self.validateExpiry(expiresAt, now: at)
        return try await store.write(lockingOrg: orgID) { tx in
            let (_, standing) = try await standing(orgID: orgID, actor: actor, in: tx, at: at)
            _ = try require(Permission.membersWrite, standing)
            guard let pass = standing.passes({ permissions.allows($0, role == .owner ? Permission.membersOwners : Permission.membersWrite) && RankRules.mayGrant(actor: $0, role: role) }) else {
                throw TenancyError.forbidden("you may grant only roles up to your own")
            }
            let user: UserRef?
            switch target {
            case .id(let id): user = try await tx.user(id: id)
            case .email(let email): user = try await tx.user(email: email)
            }
            guard let user else {
                if case .email = target { throw TenancyError.addressNotProven }
                throw TenancyError.notFound("no user with this id")
            }
            // An address counts only once proven: whoever signed up with someone else's address
            // must not be made a member through it. Same answer as for no account at all.
            if case .email = target, !user.emailVerified { throw TenancyError.addressNotProven }
            let existing = try await tx.membership(orgID: orgID, userID: user.id)
            if let existing, existing.isCurrent(at: at) { throw TenancyError.alreadyMember }
            var details: [String: JSONValue] = ["role": .string(role.rawValue), "email": .string(user.email)]
            if let expiresAt { details["expires_at"] = .string(Self.timestamp(expiresAt)) }
            let event = Self.event(actor, at: at, AuditAction.memberAdded, org: orgID, target: Self.userTarget(user.id), details, viaRoot: pass.viaRoot)
            let membership = Membership(
                orgID: orgID, userID: user.id, role: role, expiresAt: expiresAt, createdAt: existing?.createdAt ?? at, updatedAt: at, auditEventID: event.id)
            try await tx.upsertMembership(membership)
            try await tx.appendAudit(event)
            let revision = try await tx.recordChange(.membershipChanged(org: orgID, user: user.id), at: at)
            return (Member(membership: membership, email: user.email, name: user.name), revision)
        }
    }

    /// Changes a member's role and/or expiry. A patch that changes nothing writes nothing.
    public func updateMember(actor: Actor, orgID: UUID, userID: UUID, patch: MemberPatch) async throws -> (Member, Int64?) {
        let at = now()
        if case .set(let expiresAt) = patch.expiresAt { try Self.validateExpiry(expiresAt, now: at) }
        return try await store.write(lockingOrg: orgID) { tx in
            let (_, standing) = try await standing(orgID: orgID, actor: actor, in: tx, at: at)
            _ = try require(Permission.membersWrite, standing)
            guard let current = try await tx.membership(orgID: orgID, userID: userID),
                  let user = try await tx.user(id: userID) else { throw TenancyError.notFound("no such member") }
            var updated = current
            if case .set(let role) = patch.role { updated.role = role }
            if case .set(let expiresAt) = patch.expiresAt { updated.expiresAt = expiresAt }
            guard let pass = standing.passes({
                permissions.allows($0, Permission.membersWrite) && RankRules.mayChange(actor: $0, target: current.role, to: updated.role, managesOwners: permissions.allows($0, Permission.membersOwners))
            }) else {
                throw TenancyError.forbidden("you may change only members below your rank, to roles up to your own")
            }
            guard updated.role != current.role || updated.expiresAt != current.expiresAt else {
                return (Member(membership: current, email: user.email, name: user.name), nil)
            }
            if Self.isPermanentOwner(current, at: at), !Self.isPermanentOwner(updated, at: at) {
                try await Self.requireAnotherOwner(tx, orgID: orgID)
            }
            updated.updatedAt = at
            var details: [String: JSONValue] = [:]
            if updated.role != current.role {
                details["from"] = .string(current.role.rawValue)
                details["to"] = .string(updated.role.rawValue)
            }
            if updated.expiresAt != current.expiresAt {
                details["expires_at"] = updated.expiresAt.map { .string(Self.timestamp($0)) } ?? .null
            }
            let action = updated.role != current.role ? AuditAction.memberRoleChanged : AuditAction.memberUpdated
            let event = Self.event(actor, at: at, action, org: orgID, target: Self.userTarget(userID), details, viaRoot: pass.viaRoot)
            updated.auditEventID = event.id
            try await tx.upsertMembership(updated)
            try await tx.appendAudit(event)
            if updated.role < current.role {
                try await Self.endInvites(tx, sentBy: userID, in: orgID, above: updated.role, actor: actor, at: at)
            }
            let revision = try await tx.recordChange(.membershipChanged(org: orgID, user: userID), at: at)
            return (Member(membership: updated, email: user.email, name: user.name), revision)
        }
    }

    /// Removes a member; removing oneself is leaving, which any member may do except the last owner.
    public func removeMember(actor: Actor, orgID: UUID, userID: UUID) async throws -> Int64 {
        let at = now()
        return try await store.write(lockingOrg: orgID) { tx in
            let (_, standing) = try await standing(orgID: orgID, actor: actor, in: tx, at: at)
            guard let current = try await tx.membership(orgID: orgID, userID: userID) else {
                _ = try require(Permission.membersWrite, standing)
                throw TenancyError.notFound("no such member")
            }
            // Leaving is one's own call, made with one's whole authority: a key narrowed below
            // the membership (a read-only key, say) may not end it.
            let leaving = userID == actor.userID && standing.role != nil && standing.role == current.role
            var viaRoot = false
            if !leaving { viaRoot = try require(Permission.membersWrite, standing).viaRoot }
            if !leaving {
                guard let pass = standing.passes({
                    permissions.allows($0, Permission.membersWrite) && RankRules.mayManage(actor: $0, target: current.role, managesOwners: permissions.allows($0, Permission.membersOwners))
                }) else {
                    throw TenancyError.forbidden("you may remove only members below your rank")
                }
                viaRoot = pass.viaRoot
            }
            if Self.isPermanentOwner(current, at: at) {
                try await Self.requireAnotherOwner(tx, orgID: orgID)
            }
            try await tx.deleteMembership(orgID: orgID, userID: userID)
            try await tx.appendAudit(Self.event(
                actor, at: at, leaving ? AuditAction.memberLeft : AuditAction.memberRemoved, org: orgID,
                target: Self.userTarget(userID), ["role": .string(current.role.rawValue)], viaRoot: viaRoot))
            try await Self.endInvites(tx, sentBy: userID, in: orgID, above: nil, actor: actor, at: at)
            return try await tx.recordChange(.membershipChanged(org: orgID, user: userID), at: at)
        }
    }
}
