import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// `GET/PUT /v1/orgs/{org_id}/bindings`, `DELETE /v1/orgs/{org_id}/bindings/{binding_id}`.
struct BindingRoutes {
    let bindings: BindingService

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await ListResponse.orgPage(request, context, BindingResponse.init) {
            try await bindings.list(actor: $0, orgID: $1, limit: $2.limit, offset: $2.offset)
        }
    }

    @Sendable func set(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(BindingBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let role = try parseRole(body.role)
        guard body.subject.token == nil else { throw Problem.badRequest("subject must have exactly one of user_id, service_account_id or group_id") }
        let principal = try GroupSubject.principal(
            userId: body.subject.userId, serviceAccountId: body.subject.serviceAccountId, groupId: body.subject.groupId, field: "subject")
        let (binding, created, revision) = try await bindings.set(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), principal: principal,
            resource: body.resource, role: role, expiresAt: body.expiresAt)
        return try JSONBody.response(BindingResponse(binding), status: created ? .created : .ok, revision: revision)
    }

    @Sendable func remove(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let revision = try await bindings.remove(
            actor: actor, orgID: try TenancyRoutes.pathID(context, "org_id", "org"),
            bindingID: try TenancyRoutes.pathID(context, "binding_id", "binding"))
        return JSONBody.noContent(revision: revision)
    }
}
