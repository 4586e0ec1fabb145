import Authority
import Foundation
import Policy
import Tenancy

/// Groups, group members and overrides in a backup (SPEC §17): absent in older backups.
extension BackupDocument {
    public struct Group: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String
        public var name: String
        public var description: String
        public var metadata: [String: JSONValue]
        public var parentId: String?
        public var createdAt: Date
        public var updatedAt: Date
        public var auditEventId: String?
    }

    public struct GroupMember: Codable, Sendable, Equatable {
        public var groupId: String
        /// `user` or `service_account` (child groups are members through `parent_id`).
        public var memberType: String
        public var memberId: String
        public var expiresAt: Date?
        public var createdAt: Date
        public var updatedAt: Date
    }

    public struct Override: Codable, Sendable, Equatable {
        public var id: String
        public var orgId: String
        /// `user`, `service_account` or `group`.
        public var subjectType: String
        public var subjectId: String
        public var resource: String
        public var permission: String
        public var effect: String
        public var expiresAt: Date?
        public var reason: String
        public var createdAt: Date
        public var auditEventId: String?
    }
}

extension SQLBackup {
    /// The document's groups, members and overrides as domain values, checked as the API would.
    struct GroupRecords {
        /// Parents before children, so each insert finds its parent.
        var groups: [Policy.Group] = []
        var members: [(Policy.GroupMember, orgID: UUID)] = []
        var overrides: [Policy.Override] = []
        var groupOrgs: [UUID: UUID] = [:]
    }

    static func validateGroups(
        _ d: BackupDocument, orgIDs: Set<UUID>, memberships: Set<String>, accountOrgs: [UUID: UUID], userIDs: Set<UUID>
    ) throws -> GroupRecords {
        func id(_ text: String, _ what: String) throws -> UUID {
            guard let id = UUIDText.parse(text) else { throw BackupError.invalid("\(what) id \(text.prefix(40)) is not a UUID") }
            return id
        }
        var r = GroupRecords()
        var tree = GroupTree()
        var byID: [UUID: Policy.Group] = [:]
        var siblings = Set<String>()
        for g in d.groups ?? [] {
            let gid = try id(g.id, "group"), org = try id(g.orgId, "org")
            guard orgIDs.contains(org) else { throw BackupError.invalid("group \(g.id) refers to an org that is not in the backup") }
            guard byID[gid] == nil else { throw BackupError.invalid("group \(g.id) appears twice") }
            let name: String
            do { name = try OrgFields.name(g.name) } catch { throw BackupError.invalid("group \(g.id): \(error)") }
            let parent = try g.parentId.map { try id($0, "group") }
            guard siblings.insert("\(org)/\(parent?.lowercasedString ?? "")/\(name.lowercased())").inserted else {
                throw BackupError.invalid("group \(g.id) has the name of a sibling")
            }
            byID[gid] = Policy.Group(id: gid, orgID: org, name: name, description: g.description, metadata: g.metadata, parentID: parent,
                                     createdAt: g.createdAt, updatedAt: g.updatedAt, auditEventID: try g.auditEventId.map { try id($0, "audit event") })
            tree.parents[gid] = .some(parent)
            r.groupOrgs[gid] = org
        }
        for (gid, g) in byID {
            if let p = g.parentID, r.groupOrgs[p] != g.orgID { throw BackupError.invalid("group \(gid.lowercasedString): its parent is not a group of its org") }
            let chain = tree.ancestry(of: gid)
            guard chain.count <= GroupLimits.maxDepth, tree.parents[chain.last!] == .some(nil) else {
                throw BackupError.invalid("group \(gid.lowercasedString) is in a cycle or nested deeper than \(GroupLimits.maxDepth)")
            }
        }
        r.groups = byID.values.sorted { tree.depth(of: $0.id) < tree.depth(of: $1.id) }
        var seenMembers = Set<String>()
        for m in d.groupMembers ?? [] {
            let gid = try id(m.groupId, "group"), member = try id(m.memberId, m.memberType)
            guard let org = r.groupOrgs[gid] else { throw BackupError.invalid("a group member refers to group \(m.groupId), not in the backup") }
            let principal: Principal
            switch m.memberType {
            case "user":
                guard memberships.contains("\(org)/\(member)") else { throw BackupError.invalid("group \(m.groupId) has a user who is not a member of its org") }
                principal = .user(member)
            case "service_account":
                guard accountOrgs[member] == org else { throw BackupError.invalid("group \(m.groupId) has a service account not of its org") }
                principal = .serviceAccount(member)
            default:
                throw BackupError.invalid("group member type must be user or service_account")
            }
            guard seenMembers.insert("\(gid)/\(m.memberType)/\(member)").inserted else { throw BackupError.invalid("group \(m.groupId) lists a member twice") }
            r.members.append((Policy.GroupMember(groupID: gid, member: principal, label: nil, expiresAt: m.expiresAt, createdAt: m.createdAt, updatedAt: m.updatedAt), org))
        }
        var seenOverrides = Set<String>()
        for o in d.overrides ?? [] {
            let oid = try id(o.id, "override"), org = try id(o.orgId, "org"), subject = try id(o.subjectId, o.subjectType)
            guard orgIDs.contains(org) else { throw BackupError.invalid("override \(o.id) refers to an org that is not in the backup") }
            guard let principal = Principal(typeName: o.subjectType, id: subject) else {
                throw BackupError.invalid("override \(o.id): subject_type must be user, service_account or group")
            }
            switch principal {
            case .user: guard userIDs.contains(subject) else { throw BackupError.invalid("override \(o.id) refers to a user that is not in the backup") }
            case .serviceAccount: guard accountOrgs[subject] == org else { throw BackupError.invalid("override \(o.id) refers to a service account not of its org") }
            case .group: guard r.groupOrgs[subject] == org else { throw BackupError.invalid("override \(o.id) refers to a group not of its org") }
            }
            let resource: ObjectRef
            do { resource = try Policy.Binding.resource(o.resource, in: org) } catch { throw BackupError.invalid("override \(o.id): \(error)") }
            guard let effect = OverrideGrant.Effect(rawValue: o.effect) else { throw BackupError.invalid("override \(o.id): effect must be allow or deny") }
            guard !o.permission.isEmpty, o.permission.utf8.count <= 128 else { throw BackupError.invalid("override \(o.id) has no valid permission") }
            guard !o.reason.isEmpty, o.reason.unicodeScalars.count <= OverrideService.maxReason else { throw BackupError.invalid("override \(o.id) needs a reason") }
            guard seenOverrides.insert("\(org)/\(o.subjectType):\(subject)/\(resource.path)/\(o.permission)").inserted else {
                throw BackupError.invalid("override \(o.id) repeats another override's subject, resource and permission")
            }
            r.overrides.append(Policy.Override(id: oid, orgID: org, subject: principal, resource: resource, permission: o.permission, effect: effect,
                                               expiresAt: o.expiresAt, reason: o.reason, createdAt: o.createdAt,
                                               auditEventID: try o.auditEventId.map { try id($0, "audit event") }))
        }
        return r
    }

    /// Reads the three tables inside the export's transaction.
    static func exportGroups(_ tx: any SQLExecutor) async throws -> ([BackupDocument.Group], [BackupDocument.GroupMember], [BackupDocument.Override]) {
        let groups = try await tx.query("SELECT \(SQLGroupStore.groupColumns) FROM groups ORDER BY created_at, id").map { row in
            let g = try SQLGroupStore.decodeGroup(row)
            return BackupDocument.Group(id: g.id.lowercasedString, orgId: g.orgID.lowercasedString, name: g.name, description: g.description,
                                        metadata: g.metadata, parentId: g.parentID?.lowercasedString, createdAt: g.createdAt, updatedAt: g.updatedAt,
                                        auditEventId: g.auditEventID?.lowercasedString)
        }
        let members = try await tx.query(
            "SELECT group_id, member_type, member_id, expires_at, created_at, updated_at FROM group_members ORDER BY created_at, group_id, member_id").map { row in
            BackupDocument.GroupMember(groupId: try row.uuid("group_id").lowercasedString, memberType: try row.string("member_type"),
                                       memberId: try row.uuid("member_id").lowercasedString, expiresAt: try row.optionalDate("expires_at"),
                                       createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
        }
        let overrides = try await tx.query("SELECT \(SQLGroupStore.overrideColumns) FROM overrides ORDER BY created_at, id").map { row in
            let o = try SQLGroupStore.decodeOverride(row)
            return BackupDocument.Override(id: o.id.lowercasedString, orgId: o.orgID.lowercasedString, subjectType: o.subject.typeName,
                                           subjectId: o.subject.id.lowercasedString, resource: o.resource.string, permission: o.permission,
                                           effect: o.effect.rawValue, expiresAt: o.expiresAt, reason: o.reason, createdAt: o.createdAt,
                                           auditEventId: o.auditEventID?.lowercasedString)
        }
        return (groups, members, overrides)
    }

    static func restoreGroups(_ r: GroupRecords, _ tx: any SQLExecutor) async throws {
        let writer = SQLGroupStore.Writer(tx: tx)
        for g in r.groups { try await writer.insertGroup(g) }
        for (m, org) in r.members { try await writer.upsertGroupMember(m, orgID: org, auditEventID: nil) }
        for o in r.overrides { try await writer.insertOverride(o) }
    }
}
