import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// `/v1/orgs/{org_id}/groups…` (SPEC §17): each route maps one request onto one `GroupService` use case.
struct GroupRoutes {
    let groups: GroupService

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await ListResponse.orgPage(request, context, GroupResponse.init) {
            try await groups.list(actor: $0, orgID: $1, limit: $2.limit, offset: $2.offset)
        }
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(GroupBody.self, from: request)
        let actor = try await context.actor()
        let fields = try unchecked.fields().fields()
        let (group, revision) = try await groups.create(actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), fields: fields)
        return try JSONBody.response(GroupResponse(group), status: .created, revision: revision)
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let group = try await groups.get(actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), groupID: try Self.groupID(context))
        return try JSONBody.response(GroupResponse(group))
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(GroupBody.self, from: request)
        let actor = try await context.actor()
        let fields = try unchecked.fields().fields()
        let (group, revision) = try await groups.update(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), groupID: try Self.groupID(context), fields: fields)
        return try JSONBody.response(GroupResponse(group), revision: revision)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await groups.delete(actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), groupID: try Self.groupID(context))
        return JSONBody.noContent(revision: revision)
    }

    @Sendable func members(_ request: Request, context: AppRequestContext) async throws -> Response {
        let groupID = try Self.groupID(context)
        return try await ListResponse.orgPage(request, context, GroupMemberResponse.init) {
            try await groups.members(actor: $0, orgID: $1, groupID: groupID, limit: $2.limit, offset: $2.offset)
        }
    }

    @Sendable func setMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(GroupMemberBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let member = try GroupSubject.principal(userId: body.userId, serviceAccountId: body.serviceAccountId, groupId: body.groupId, field: "")
        let (result, created, revision) = try await groups.setMember(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), groupID: try Self.groupID(context),
            member: member, expiresAt: body.expiresAt)
        return try JSONBody.response(GroupMemberResponse(result), status: created ? .created : .ok, revision: revision)
    }

    @Sendable func removeMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await groups.removeMember(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), groupID: try Self.groupID(context),
            memberID: try TenancyRoutes.pathID(context, "member_id", "member"))
        return JSONBody.noContent(revision: revision)
    }

    static func groupID(_ context: AppRequestContext) throws -> UUID { try TenancyRoutes.pathID(context, "group_id", "group") }
}

/// One of `user_id`, `service_account_id`, `group_id`: a binding's, an override's or a group member's subject.
enum GroupSubject {
    static func principal(userId: String?, serviceAccountId: String?, groupId: String?, field: String) throws -> Principal {
        let prefix = field.isEmpty ? "" : field + "."
        switch (userId, serviceAccountId, groupId) {
        case (let id?, nil, nil):
            guard let uuid = UUIDText.parse(id) else { throw Problem.badRequest("\(prefix)user_id must be a UUID") }
            return .user(uuid)
        case (nil, let id?, nil):
            guard let uuid = UUIDText.parse(id) else { throw Problem.badRequest("\(prefix)service_account_id must be a UUID") }
            return .serviceAccount(uuid)
        case (nil, nil, let id?):
            guard let uuid = UUIDText.parse(id) else { throw Problem.badRequest("\(prefix)group_id must be a UUID") }
            return .group(uuid)
        default:
            throw Problem.badRequest("\(field.isEmpty ? "the body" : field) must have exactly one of user_id, service_account_id or group_id")
        }
    }
}

/// Create and PATCH bodies: PATCH tells a left-out `parent_id` from a null one (move to the top).
struct GroupBody: Decodable, Sendable {
    var name: String??
    var description: String??
    var metadata: JSONValue??
    var parentId: String??

    enum CodingKeys: String, CodingKey { case name, description, metadata, parentId }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodePresence(String.self, forKey: .name)
        description = try c.decodePresence(String.self, forKey: .description)
        metadata = try c.decodePresence(JSONValue.self, forKey: .metadata)
        parentId = try c.decodePresence(String.self, forKey: .parentId)
    }

    func fields() throws -> GroupService.Fields {
        var f = GroupService.Fields()
        switch name {
        case .none: break
        case .some(.none): throw Problem.badRequest("name must not be null")
        case .some(.some(let v)): f.name = v
        }
        if let description { f.description = description ?? "" }
        if let metadata {
            switch metadata {
            case .none, .some(.null): f.metadata = .object([:])
            case .some(let v): f.metadata = v
            }
        }
        if let parentId {
            guard let text = parentId else {
                f.parentID = .some(nil)
                return f
            }
            guard let id = UUIDText.parse(text) else { throw Problem.badRequest("parent_id must be a UUID or null") }
            f.parentID = .some(id)
        }
        return f
    }
}

struct GroupMemberBody: Decodable, Sendable {
    let userId: String?
    let serviceAccountId: String?
    let groupId: String?
    let expiresAt: Date?
}

struct GroupResponse: Encodable, Sendable {
    let id: String
    let orgId: String
    let name: String
    let description: String
    let metadata: JSONValue
    let parentId: OrNull<String>
    let createdAt: Date
    let updatedAt: Date

    init(_ g: Group) {
        id = g.id.lowercasedString
        orgId = g.orgID.lowercasedString
        name = g.name
        description = g.description
        metadata = .object(g.metadata)
        parentId = OrNull(g.parentID?.lowercasedString)
        createdAt = g.createdAt
        updatedAt = g.updatedAt
    }
}

/// A principal as `{user_id | service_account_id | group_id}`, the others null.
struct SubjectIDs: Encodable, Sendable {
    let userId: String?
    let serviceAccountId: String?
    let groupId: String?

    init(_ p: Principal) {
        switch p {
        case .user(let id): (userId, serviceAccountId, groupId) = (id.lowercasedString, nil, nil)
        case .serviceAccount(let id): (userId, serviceAccountId, groupId) = (nil, id.lowercasedString, nil)
        case .group(let id): (userId, serviceAccountId, groupId) = (nil, nil, id.lowercasedString)
        }
    }
}

struct GroupMemberResponse: Encodable, Sendable {
    let groupId: String
    let type: String
    let id: String
    let member: SubjectIDs
    let label: OrNull<String>
    let expiresAt: OrNull<Date>
    let createdAt: Date
    let updatedAt: Date

    init(_ m: GroupMember) {
        groupId = m.groupID.lowercasedString
        type = m.member.typeName
        id = m.member.id.lowercasedString
        member = SubjectIDs(m.member)
        label = OrNull(m.label)
        expiresAt = OrNull(m.expiresAt)
        createdAt = m.createdAt
        updatedAt = m.updatedAt
    }
}
