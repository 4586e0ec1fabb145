import Authority
import Foundation
import Hummingbird
import Identity
import Invites
import Tenancy

/// Orgs, members and audit logs. Handlers parse and authenticate; every rule lives in `TenancyService`.
struct TenancyRoutes {
    let tenancy: TenancyService
    let invites: InviteService

    /// Ids in paths are UUIDs; anything else is simply not found (SPEC §11).
    static func pathID(_ context: AppRequestContext, _ name: String, _ what: String) throws -> UUID {
        guard let id = context.parameters.get(name).flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such \(what)") }
        return id
    }

    // MARK: Orgs

    @Sendable func createOrg(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(CreateOrgBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let (view, revision) = try await tenancy.createOrg(actor: actor, name: body.name, description: body.description, metadata: body.metadata)
        return try JSONBody.response(OrgResponse(view), status: .created, revision: revision)
    }

    @Sendable func listOrgs(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let page = try Page(from: request)
        let scope = try request.singleQuery("scope")
        let name = try request.singleQuery("name")
        guard scope == nil || scope == "all" || scope == "member" else {
            throw Problem.badRequest("scope must be member or all")
        }
        let (items, total) = try await tenancy.listOrgs(
            actor: actor, everyOrg: scope == "all", nameContains: name, limit: page.limit, offset: page.offset)
        return try JSONBody.response(ListResponse(items: items.map(OrgResponse.init), total: total, page: page))
    }

    @Sendable func getOrg(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let view = try await tenancy.org(actor: actor, id: try Self.pathID(context, "org_id", "org"))
        return try JSONBody.response(OrgResponse(view))
    }

    @Sendable func updateOrg(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(PatchOrgBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let patch = try body.patch()
        let (view, revision) = try await tenancy.updateOrg(actor: actor, id: try Self.pathID(context, "org_id", "org"), patch: patch)
        return try JSONBody.response(OrgResponse(view), revision: revision)
    }

    @Sendable func deleteOrg(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await tenancy.deleteOrg(actor: actor, id: try Self.pathID(context, "org_id", "org"))
        return JSONBody.noContent(revision: revision)
    }

    // MARK: Members

    @Sendable func listMembers(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await ListResponse.orgPage(request, context, MemberResponse.init) {
            try await tenancy.members(actor: $0, orgID: $1, limit: $2.limit, offset: $2.offset)
        }
    }

    @Sendable func addMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(AddMemberBody.self, from: request)
        let caller = try await context.caller()
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let role = try parseRole(body.role)
        let target: MemberTarget
        switch (body.userId, body.email) {
        case (.some(let id?), nil):
            guard let uuid = UUIDText.parse(id) else { throw Problem.badRequest("user_id must be a UUID") }
            target = .id(uuid)
        case (nil, .some(let email?)):
            guard let canonical = Email.canonical(email) else { throw Problem.badRequest("email is not a valid e-mail address") }
            target = .email(canonical)
        default:
            throw Problem.badRequest("give exactly one of user_id or email")
        }
        let outcome = try await invites.addMember(
            by: InviteService.Invitee(actor: actor, email: caller.user?.email), orgID: try Self.pathID(context, "org_id", "org"),
            target: target, role: role, expiresAt: body.expiresAt)
        switch outcome {
        case .added(let member, let revision):
            return try JSONBody.response(MemberResponse(member), status: .created, revision: revision)
        case .invited(let invite, let revision):
            return try JSONBody.response(InviteResponse(invite, now: Date()), status: .accepted, revision: revision)
        }
    }

    @Sendable func getMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let member = try await tenancy.member(
            actor: actor, orgID: try Self.pathID(context, "org_id", "org"), userID: try Self.pathID(context, "user_id", "member"))
        return try JSONBody.response(MemberResponse(member))
    }

    @Sendable func updateMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(PatchMemberBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        var patch = MemberPatch()
        switch body.role {
        case .none: break
        case .some(.none): throw Problem.badRequest("role must not be null")
        case .some(.some(let text)): patch.role = .set(try parseRole(text))
        }
        if let expiresAt = body.expiresAt { patch.expiresAt = .set(expiresAt) }
        let (member, revision) = try await tenancy.updateMember(
            actor: actor, orgID: try Self.pathID(context, "org_id", "org"), userID: try Self.pathID(context, "user_id", "member"), patch: patch)
        return try JSONBody.response(MemberResponse(member), revision: revision)
    }

    @Sendable func removeMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await tenancy.removeMember(
            actor: actor, orgID: try Self.pathID(context, "org_id", "org"), userID: try Self.pathID(context, "user_id", "member"))
        return JSONBody.noContent(revision: revision)
    }

    // MARK: Audit

    @Sendable func orgAudit(_ request: Request, context: AppRequestContext) async throws -> Response {
        let filter = try Self.auditFilter(request)
        return try await ListResponse.orgPage(request, context, AuditEventResponse.init) {
            try await tenancy.audit(actor: $0, orgID: $1, filter: filter, limit: $2.limit, offset: $2.offset)
        }
    }

    @Sendable func platformAudit(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let filter = try Self.auditFilter(request)
        return try await ListResponse.page(request, AuditEventResponse.init) {
            try await tenancy.platformAudit(actor: actor, filter: filter, limit: $0.limit, offset: $0.offset)
        }
    }

    /// `?action=member.added&actor_id=<uuid>`: either narrows the list; both must match.
    static func auditFilter(_ request: Request) throws -> AuditFilter {
        var filter = AuditFilter()
        if let action = try request.singleQuery("action"), !action.isEmpty {
            guard action.utf8.count <= 100 else { throw Problem.badRequest("action is at most 100 characters") }
            filter.action = action
        }
        if let text = try request.singleQuery("actor_id") {
            guard let id = UUIDText.parse(text) else { throw Problem.badRequest("actor_id must be a UUID") }
            filter.actorID = id
        }
        return filter
    }
}
