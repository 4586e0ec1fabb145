import Authority
import Foundation
import Tenancy
import Memberwise

/// Groups and their members (SPEC §17): reading needs `members.read`, writing `members.write`
/// (admin+), and the rank rules of memberships and bindings hold for groups too:
/// - a group "reaches" the highest role its bindings (and its ancestors') give, or the least
///   role of a permission their overrides name; only an actor at or above that reach manages the
///   group, adds or removes its members, or moves a group under it (no one gains a way up);
/// - a member is added or removed by itself or by an actor of strictly higher rank (owners manage owners);
/// - the tree has no cycles and is at most `GroupLimits.maxDepth` deep; checked under the org's
///   lock, so two concurrent moves that together would make a cycle cannot both pass.
public struct GroupService: Sendable {
    public let store: any GroupStore
    public let tenancy: TenancyService
    public let quotas: GroupQuotas
    let now: @Sendable () -> Date

    public init(store: any GroupStore, tenancy: TenancyService, quotas: GroupQuotas = GroupQuotas(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.tenancy = tenancy
        self.quotas = quotas
        self.now = now
    }

    /// The fields a create or update may set; nil leaves a field as it is. `parentID` is
    /// `.some(nil)` to move a group to the top.
    @PublicInit
    public struct Fields: Sendable {
        public var name: String?
        public var description: String?
        public var metadata: JSONValue?
        public var parentID: UUID??
    }

    // MARK: Reads

    public func list(actor: Actor, orgID: UUID, limit: Int, offset: Int) async throws -> ([Group], Int) {
        _ = try await tenancy.access(Permission.membersRead, actor: actor, orgID: orgID)
        return try await store.groups(orgID: orgID, limit: limit, offset: offset)
    }

    public func get(actor: Actor, orgID: UUID, groupID: UUID) async throws -> Group {
        _ = try await tenancy.access(Permission.membersRead, actor: actor, orgID: orgID)
        guard let group = try await store.group(id: groupID, orgID: orgID) else { throw GroupError.notFound("no such group") }
        return group
    }

    public func members(actor: Actor, orgID: UUID, groupID: UUID, limit: Int, offset: Int) async throws -> ([GroupMember], Int) {
        _ = try await get(actor: actor, orgID: orgID, groupID: groupID)
        return try await store.groupMembers(groupID: groupID, limit: limit, offset: offset)
    }

    // MARK: Groups

    public func create(actor: Actor, orgID: UUID, fields: Fields) async throws -> (Group, Int64) {
        guard let rawName = fields.name else { throw GroupError.invalid("name is required") }
        let name = try OrgFields.name(rawName)
        let description = try OrgFields.description(fields.description ?? "")
        let metadata = try fields.metadata.map(OrgFields.metadata) ?? [:]
        let parentID = fields.parentID ?? nil
        let at = now()
        return try await store.writeGroups(lockingOrg: orgID) { tx, groups in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.membersWrite, actor: actor, orgID: orgID, in: tx, at: at)
            let tree = try await groups.tree(orgID: orgID, permissions: tenancy.permissions)
            if let parentID {
                guard tree.contains(parentID) else { throw GroupError.invalid("parent_id is not a group of this org") }
                guard tree.depth(of: parentID) < GroupLimits.maxDepth else {
                    throw GroupError.conflict(code: "group_too_deep", "groups nest at most \(GroupLimits.maxDepth) deep")
                }
                try Self.mayReach(actor, actorRole, tree.reach(of: parentID), "the parent group")
            }
            guard try await groups.groupCount(orgID: orgID) < quotas.groupsPerOrg else {
                throw GroupError.quotaExceeded("this org holds \(quotas.groupsPerOrg) groups, its quota; delete some first")
            }
            try await Self.uniqueName(name, orgID: orgID, parentID: parentID, except: nil, groups)
            let id = UUID()
            var details: [String: JSONValue] = ["name": .string(name)]
            if let parentID { details["parent_id"] = .string(parentID.lowercasedString) }
            let event = TenancyService.event(actor, at: at, AuditAction.groupCreated, org: orgID, target: Self.target(id), details, viaRoot: viaRoot)
            let group = Group(id: id, orgID: orgID, name: name, description: description, metadata: metadata, parentID: parentID,
                              createdAt: at, updatedAt: at, auditEventID: event.id)
            try await groups.insertGroup(group)
            try await tx.appendAudit(event)
            return (group, try await tx.recordChange(.groupChanged(org: orgID), at: at))
        }
    }

    /// A PATCH that changes nothing writes nothing: no audit event, no revision (nil).
    public func update(actor: Actor, orgID: UUID, groupID: UUID, fields: Fields) async throws -> (Group, Int64?) {
        let name = try fields.name.map(OrgFields.name)
        let description = try fields.description.map(OrgFields.description)
        let metadata = try fields.metadata.map(OrgFields.metadata)
        let at = now()
        return try await store.writeGroups(lockingOrg: orgID) { tx, groups in
            let (actorRole, viaRoot, found, tree) = try await managing(groupID, actor, orgID, tx, groups, at)
            var group = found
            var details: [String: JSONValue] = [:]
            if let newParent = fields.parentID, newParent != group.parentID {
                try Self.checkMove(groupID, under: newParent, tree, actor, actorRole)
                details["parent_id"] = newParent.map { .string($0.lowercasedString) } ?? .null
                details["previous_parent_id"] = group.parentID.map { .string($0.lowercasedString) } ?? .null
                group.parentID = newParent
            }
            if let name, name != group.name {
                details["name"] = .string(name)
                group.name = name
            }
            if let description, description != group.description {
                details["description"] = .string(description)
                group.description = description
            }
            if let metadata, metadata != group.metadata {
                details["metadata"] = .object(metadata)
                group.metadata = metadata
            }
            guard !details.isEmpty else { return (group, nil) }
            if details["name"] != nil || details["parent_id"] != nil {
                try await Self.uniqueName(group.name, orgID: orgID, parentID: group.parentID, except: groupID, groups)
            }
            group.updatedAt = at
            let event = TenancyService.event(actor, at: at, AuditAction.groupUpdated, org: orgID, target: Self.target(groupID), details, viaRoot: viaRoot)
            try await groups.updateGroup(group)
            try await tx.appendAudit(event)
            return (group, try await tx.recordChange(.groupChanged(org: orgID), at: at))
        }
    }

    /// Deletes a group without child groups, with its memberships, bindings and overrides.
    public func delete(actor: Actor, orgID: UUID, groupID: UUID) async throws -> Int64 {
        let at = now()
        return try await store.writeGroups(lockingOrg: orgID) { tx, groups in
            let (_, viaRoot, group, tree) = try await managing(groupID, actor, orgID, tx, groups, at)
            guard !tree.hasChildren(groupID) else {
                throw GroupError.conflict(code: "group_not_empty", "this group has child groups; move or delete them first")
            }
            try await groups.deleteGroup(id: groupID)
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.groupDeleted, org: orgID, target: Self.target(groupID), ["name": .string(group.name)], viaRoot: viaRoot))
            return try await tx.recordChange(.groupChanged(org: orgID), at: at)
        }
    }

    // MARK: Members

    /// Adds `member` to the group or changes its expiry; a group as member moves under this one.
    public func setMember(actor: Actor, orgID: UUID, groupID: UUID, member: Principal, expiresAt: Date?) async throws -> (GroupMember, created: Bool, revision: Int64) {
        let at = now()
        if let expiresAt, expiresAt <= at { throw GroupError.invalid("expires_at must be in the future") }
        if case .group = member, expiresAt != nil { throw GroupError.invalid("a child group's place in the tree does not expire; omit expires_at") }
        return try await store.writeGroups(lockingOrg: orgID) { tx, groups in
            let (actorRole, viaRoot, _, tree) = try await managing(groupID, actor, orgID, tx, groups, at)
            var details: [String: JSONValue] = ["member": .string(member.label)]
            if let expiresAt { details["expires_at"] = .string(TenancyService.timestamp(expiresAt)) }
            let result: GroupMember, created: Bool
            let event = TenancyService.event(actor, at: at, AuditAction.groupMemberSet, org: orgID, target: Self.target(groupID), details, viaRoot: viaRoot)
            if case .group(let child) = member {
                // A child group is a member through its parent link: "already a member" is "already under this group".
                guard var childGroup = try await groups.group(id: child, orgID: orgID) else { throw GroupError.invalid("group_id is not a group of this org") }
                created = childGroup.parentID != groupID
                if created {
                    try Self.mayReach(actor, actorRole, tree.reach(of: child), "the child group")
                    try Self.checkMove(child, under: groupID, tree, actor, actorRole)
                    try await Self.uniqueName(childGroup.name, orgID: orgID, parentID: groupID, except: child, groups)
                    childGroup.parentID = groupID
                    childGroup.updatedAt = at
                    try await groups.updateGroup(childGroup)
                }
                result = GroupMember(groupID: groupID, member: member, label: childGroup.name, expiresAt: nil,
                                     createdAt: childGroup.createdAt, updatedAt: childGroup.updatedAt)
            } else {
                try await Self.mayManagePerson(member, actor: actor, actorRole, orgID: orgID, at: at, groups)
                let existing = try await groups.groupMember(groupID: groupID, member: member)
                created = existing == nil
                let row = GroupMember(groupID: groupID, member: member, label: nil, expiresAt: expiresAt, createdAt: existing?.createdAt ?? at, updatedAt: at)
                try await groups.upsertGroupMember(row, orgID: orgID, auditEventID: event.id)
                result = try await groups.groupMember(groupID: groupID, member: member) ?? row
            }
            try await tx.appendAudit(event)
            return (result, created, try await tx.recordChange(.groupChanged(org: orgID), at: at))
        }
    }

    /// Removes a user or service account from the group; a child group moves to the top.
    public func removeMember(actor: Actor, orgID: UUID, groupID: UUID, memberID: UUID) async throws -> Int64 {
        let at = now()
        return try await store.writeGroups(lockingOrg: orgID) { tx, groups in
            let (actorRole, viaRoot, _, _) = try await managing(groupID, actor, orgID, tx, groups, at)
            var found: Principal?
            for candidate in [Principal.user(memberID), .serviceAccount(memberID)] where try await groups.groupMember(groupID: groupID, member: candidate) != nil {
                found = candidate
            }
            if let member = found {
                try await Self.mayManagePerson(member, actor: actor, actorRole, orgID: orgID, at: at, groups, leaving: true)
                try await groups.deleteGroupMember(groupID: groupID, member: member)
            } else if var child = try await groups.group(id: memberID, orgID: orgID), child.parentID == groupID {
                found = .group(memberID)
                try await Self.uniqueName(child.name, orgID: orgID, parentID: nil, except: memberID, groups)
                child.parentID = nil
                child.updatedAt = at
                try await groups.updateGroup(child)
            }
            guard let member = found else { throw GroupError.notFound("no such member of this group") }
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, AuditAction.groupMemberRemoved, org: orgID, target: Self.target(groupID), ["member": .string(member.label)], viaRoot: viaRoot))
            return try await tx.recordChange(.groupChanged(org: orgID), at: at)
        }
    }

    // MARK: The rules

    /// Inside a write: the actor may write groups here, the group exists, and the actor's rank
    /// covers what membership of it confers. Returns the actor's role, whether only root powers
    /// passed, the group and the org's tree.
    func managing(
        _ groupID: UUID, _ actor: Actor, _ orgID: UUID, _ tx: any TenancyWriter, _ groups: any GroupWriter, _ at: Date
    ) async throws -> (Role, Bool, Group, GroupTree) {
        let (actorRole, viaRoot) = try await tenancy.access(Permission.membersWrite, actor: actor, orgID: orgID, in: tx, at: at)
        guard let group = try await groups.group(id: groupID, orgID: orgID) else { throw GroupError.notFound("no such group") }
        let tree = try await groups.tree(orgID: orgID, permissions: tenancy.permissions)
        try Self.mayReach(actor, actorRole, tree.reach(of: groupID), "this group")
        return (actorRole, viaRoot, group, tree)
    }

    static func target(_ id: UUID) -> String { "group:\(id.lowercasedString)" }

    /// The actor's rank reaches what membership of a group confers.
    static func mayReach(_ actor: Actor, _ actorRole: Role, _ reach: Role?, _ what: String) throws(GroupError) {
        guard let reach, !actor.isRoot else { return }
        guard RankRules.mayManageGrant(actor: actorRole, grant: reach) else {
            throw GroupError.forbidden("\(what) confers \(reach.rawValue); only a role at or above it may change it")
        }
    }

    /// Moving `group` under `parent` (nil: to the top) keeps the tree a tree, at most eight deep,
    /// and gives its members nothing above the actor's rank.
    static func checkMove(_ group: UUID, under parent: UUID?, _ tree: GroupTree, _ actor: Actor, _ actorRole: Role) throws(GroupError) {
        guard let parent else { return }
        guard tree.contains(parent) else { throw GroupError.invalid("parent_id is not a group of this org") }
        guard !tree.ancestry(of: parent).contains(group) else {
            throw GroupError.conflict(code: "group_cycle", "a group cannot move under itself or one of its own descendants")
        }
        guard tree.depth(of: parent) + tree.height(of: group) <= GroupLimits.maxDepth else {
            throw GroupError.conflict(code: "group_too_deep", "groups nest at most \(GroupLimits.maxDepth) deep")
        }
        try mayReach(actor, actorRole, tree.reach(of: parent), "the parent group")
    }

    /// A person is managed by itself or by a strictly higher rank (owners manage owners); a
    /// user or service account must be a current member of the org to join a group.
    static func mayManagePerson(
        _ member: Principal, actor: Actor, _ actorRole: Role, orgID: UUID, at: Date, _ groups: any GroupWriter, leaving: Bool = false
    ) async throws {
        let role = try await groups.memberRole(member, orgID: orgID, at: at)
        guard let role else {
            if leaving { return }
            throw GroupError.invalid("the member is not a user or service account of this org (a current member)")
        }
        guard !actor.isRoot, member != actor.subject.principal else { return }
        guard RankRules.mayManage(actor: actorRole, target: role, managesOwners: actorRole == .owner) else {
            throw GroupError.forbidden("you may change only the groups of members below your role")
        }
    }

    static func uniqueName(_ name: String, orgID: UUID, parentID: UUID?, except: UUID?, _ groups: any GroupWriter) async throws {
        if try await groups.siblingNamed(name, orgID: orgID, parentID: parentID, except: except) {
            throw GroupError.conflict(code: "conflict", "a group named \"\(name)\" already exists there")
        }
    }
}
