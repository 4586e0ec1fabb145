import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// `GET/POST /v1/orgs/{org_id}/overrides`, `DELETE /v1/orgs/{org_id}/overrides/{override_id}` (SPEC §17).
struct OverrideRoutes {
    let overrides: OverrideService

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await ListResponse.orgPage(request, context, OverrideResponse.init) {
            try await overrides.list(actor: $0, orgID: $1, limit: $2.limit, offset: $2.offset)
        }
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(OverrideBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let subject = try GroupSubject.principal(
            userId: body.subject.userId, serviceAccountId: body.subject.serviceAccountId, groupId: body.subject.groupId, field: "subject")
        guard let effect = OverrideGrant.Effect(rawValue: body.effect) else { throw Problem.badRequest("effect must be allow or deny") }
        let (override, revision) = try await overrides.create(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"),
            fields: OverrideService.Fields(subject: subject, resource: body.resource, permission: body.permission, effect: effect,
                                           expiresAt: body.expiresAt, reason: body.reason ?? ""))
        return try JSONBody.response(OverrideResponse(override), status: .created, revision: revision)
    }

    @Sendable func remove(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await overrides.remove(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"),
            overrideID: try TenancyRoutes.pathID(context, "override_id", "override"))
        return JSONBody.noContent(revision: revision)
    }
}

struct OverrideBody: Decodable, Sendable {
    struct Subject: Decodable, Sendable {
        let userId: String?
        let serviceAccountId: String?
        let groupId: String?
    }

    let subject: Subject
    let resource: String
    let permission: String
    let effect: String
    let expiresAt: Date?
    let reason: String?
}

struct OverrideResponse: Encodable, Sendable {
    let id: String
    let orgId: String
    let subject: SubjectIDs
    let resource: String
    let permission: String
    let effect: String
    let expiresAt: OrNull<Date>
    let reason: String
    let createdAt: Date

    init(_ o: Override) {
        id = o.id.lowercasedString
        orgId = o.orgID.lowercasedString
        subject = SubjectIDs(o.subject)
        resource = o.resource.string
        permission = o.permission
        effect = o.effect.rawValue
        expiresAt = OrNull(o.expiresAt)
        reason = o.reason
        createdAt = o.createdAt
    }
}
