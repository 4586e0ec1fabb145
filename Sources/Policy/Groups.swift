import Authority
import Foundation
import Tenancy
import Memberwise

/// A team inside an org (SPEC §17). Groups form a tree through `parentID`; a child group is a
/// member of its parent, so whatever the parent holds reaches the child's members too.
public struct Group: Sendable, Equatable {
    public var id: UUID
    public var orgID: UUID
    public var name: String
    public var description: String
    public var metadata: [String: JSONValue]
    public var parentID: UUID?
    public var createdAt: Date
    public var updatedAt: Date
    public var auditEventID: UUID?

    public init(id: UUID, orgID: UUID, name: String, description: String, metadata: [String: JSONValue], parentID: UUID?,
                createdAt: Date, updatedAt: Date, auditEventID: UUID?) {
        self.id = id
        self.orgID = orgID
        self.name = name
        self.description = description
        self.metadata = metadata
        self.parentID = parentID
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.auditEventID = auditEventID
    }
}

/// A member of a group: a user or service account of the org (which may lapse), or a child group.
@PublicInit
public struct GroupMember: Sendable, Equatable {
    public var groupID: UUID
    public var member: Principal
    /// The member's name as the org knows it (e-mail for users), for listings.
    public var label: String?
    public var expiresAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
}

/// An explicit allow or deny of one permission on a resource and below (SPEC §17).
public struct Override: Sendable, Equatable {
    public var id: UUID
    public var orgID: UUID
    public var subject: Principal
    public var resource: ObjectRef
    public var permission: String
    public var effect: OverrideGrant.Effect
    public var expiresAt: Date?
    public var reason: String
    public var createdAt: Date
    public var auditEventID: UUID?

    public init(id: UUID, orgID: UUID, subject: Principal, resource: ObjectRef, permission: String, effect: OverrideGrant.Effect,
                expiresAt: Date?, reason: String, createdAt: Date, auditEventID: UUID?) {
        self.id = id
        self.orgID = orgID
        self.subject = subject
        self.resource = resource
        self.permission = permission
        self.effect = effect
        self.expiresAt = expiresAt
        self.reason = reason
        self.createdAt = createdAt
        self.auditEventID = auditEventID
    }
}

/// One org's groups as the write rules see them: the tree, who is in each group, and what
/// membership of each confers. Loaded inside the writing transaction under the org's lock.
public struct GroupTree: Sendable, Equatable {
    public var parents: [UUID: UUID?] = [:]
    /// Direct user and service-account members of each group.
    public var members: [UUID: [Principal]] = [:]
    /// The highest role any binding of each group gives.
    public var boundRoles: [UUID: Role] = [:]
    /// The highest least role among the permissions each group's overrides name.
    public var overrideRoles: [UUID: Role] = [:]

    public init() {}

    public func contains(_ group: UUID) -> Bool { parents[group] != nil }

    /// `group`, then its parent, up to the top.
    public func ancestry(of group: UUID) -> [UUID] {
        var chain: [UUID] = []
        var next: UUID? = group
        while let g = next, contains(g), chain.count <= GroupLimits.maxDepth {
            chain.append(g)
            next = parents[g] ?? nil
        }
        return chain
    }

    /// A top-level group is at depth 1.
    public func depth(of group: UUID) -> Int { ancestry(of: group).count }

    /// `group` and every group below it.
    public func subtree(of group: UUID) -> [UUID] {
        var children: [UUID: [UUID]] = [:]
        for (g, p) in parents { if let p { children[p, default: []].append(g) } }
        var out: [UUID] = []
        var stack = [group]
        while let g = stack.popLast(), out.count <= parents.count {
            out.append(g)
            stack += children[g] ?? []
        }
        return out
    }

    /// Levels from `group` down to its deepest descendant (1 for a group without children).
    public func height(of group: UUID) -> Int {
        subtree(of: group).map { g in ancestry(of: g).firstIndex(of: group).map { $0 + 1 } ?? 1 }.max() ?? 1
    }

    public func hasChildren(_ group: UUID) -> Bool { parents.values.contains { $0 == group } }

    /// What membership of `group` confers: the highest role its bindings, and its ancestors',
    /// give, or the least role of a permission their overrides name. Nil when nothing.
    public func reach(of group: UUID) -> Role? {
        ancestry(of: group).compactMap { g in [boundRoles[g], overrideRoles[g]].compactMap { $0 }.max() }.max()
    }

    /// Every user and service account in `group` or a group below it.
    public func people(in group: UUID) -> Set<Principal> {
        Set(subtree(of: group).flatMap { members[$0] ?? [] })
    }
}

/// How many groups and overrides an org may hold (SPEC §18).
@PublicInit
public struct GroupQuotas: Sendable, Equatable {
    public var groupsPerOrg: Int = defaultGroupsPerOrg
    public var overridesPerOrg: Int = defaultOverridesPerOrg

    public static let defaultGroupsPerOrg = 1_000
    public static let defaultOverridesPerOrg = 10_000
}

/// Why a group or override write was refused (mapped to a problem at the HTTP edge).
public enum GroupError: Error, Sendable, Equatable {
    /// A field failed validation (400).
    case invalid(String)
    /// The caller's rank does not reach (403).
    case forbidden(String)
    /// No such group, member or override (404).
    case notFound(String)
    /// The state refuses it (409), with a specific code: `group_cycle`, `group_too_deep`,
    /// `group_not_empty`, `conflict`.
    case conflict(code: String, String)
    /// The org's quota is full (409 `quota_exceeded`).
    case quotaExceeded(String)
}

/// Reads and org-locked writes of groups and overrides. Implemented by the Storage module.
public protocol GroupStore: Sendable {
    func groups(orgID: UUID, limit: Int, offset: Int) async throws -> ([Group], Int)
    func group(id: UUID, orgID: UUID) async throws -> Group?
    /// The group's users and service accounts, then its child groups.
    func groupMembers(groupID: UUID, limit: Int, offset: Int) async throws -> ([GroupMember], Int)
    func overrides(orgID: UUID, limit: Int, offset: Int) async throws -> ([Override], Int)
    /// Runs `body` in one transaction with the org row locked, with tenancy and group statements.
    func writeGroups<T: Sendable>(lockingOrg orgID: UUID, _ body: @escaping @Sendable (any TenancyWriter, any GroupWriter) async throws -> T) async throws -> T
}

public protocol GroupWriter: Sendable {
    func tree(orgID: UUID, permissions: PermissionTable) async throws -> GroupTree
    func group(id: UUID, orgID: UUID) async throws -> Group?
    /// Whether a sibling of that name (case-folded) exists under `parentID`, other than `except`.
    func siblingNamed(_ name: String, orgID: UUID, parentID: UUID?, except: UUID?) async throws -> Bool
    func insertGroup(_ group: Group) async throws
    func updateGroup(_ group: Group) async throws
    /// Deletes the group with its memberships, bindings and overrides.
    func deleteGroup(id: UUID) async throws
    func groupCount(orgID: UUID) async throws -> Int
    /// The principal's current role in the org: a user's unexpired membership, a service account's role.
    func memberRole(_ principal: Principal, orgID: UUID, at: Date) async throws -> Role?
    func groupMember(groupID: UUID, member: Principal) async throws -> GroupMember?
    func upsertGroupMember(_ member: GroupMember, orgID: UUID, auditEventID: UUID?) async throws
    func deleteGroupMember(groupID: UUID, member: Principal) async throws
    func override(id: UUID, orgID: UUID) async throws -> Override?
    func override(orgID: UUID, subject: Principal, path: String, permission: String) async throws -> Override?
    func insertOverride(_ override: Override) async throws
    func deleteOverride(id: UUID) async throws
    func overrideCount(orgID: UUID) async throws -> Int
}
