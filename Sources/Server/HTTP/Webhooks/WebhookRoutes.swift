import Foundation
import Hummingbird
import Webhooks

struct CreateWebhookBody: Decodable, Sendable {
    let url: String
    let eventTypes: [String]?
    let description: String?
    let enabled: Bool?
}

/// Fields left out (or null) stay as they are.
struct PatchWebhookBody: Decodable, Sendable {
    let url: String?
    let eventTypes: [String]?
    let description: String?
    let enabled: Bool?
}

struct RotateWebhookSecretBody: Decodable, Sendable {
    let overlapSeconds: Int?
}

struct WebhookResponse: Encodable, Sendable {
    let id: String
    let orgId: OrNull<String>
    let url: String
    let description: String
    let eventTypes: [String]
    let enabled: Bool
    let disabledReason: OrNull<String>
    /// Until when the secret before the last rotation also signs.
    let previousSecretExpiresAt: OrNull<Date>
    let createdAt: Date
    let updatedAt: Date
    /// `whsec_…`: only when it is made (registration, rotation).
    let secret: String?

    init(_ e: WebhookEndpoint, secret: WebhookSecret? = nil) {
        id = e.id.lowercasedString
        orgId = OrNull(e.orgID?.lowercasedString)
        url = e.url
        description = e.description
        eventTypes = e.eventTypes.patterns
        enabled = e.enabled
        disabledReason = OrNull(e.disabledReason)
        previousSecretExpiresAt = OrNull(e.previousSecretUntil)
        createdAt = e.createdAt
        updatedAt = e.updatedAt
        self.secret = secret?.text
    }
}

struct WebhookDeliveryResponse: Encodable, Sendable {
    let id: String
    let eventId: String
    let eventType: String
    let state: String
    let attempts: Int
    let nextAttemptAt: OrNull<Date>
    let createdAt: Date
    let lastAttemptAt: OrNull<Date>
    let lastStatus: OrNull<Int>
    let lastLatencyMs: OrNull<Int>
    let lastResponse: OrNull<String>
    let lastError: OrNull<String>

    init(_ d: WebhookDelivery) {
        id = d.id.lowercasedString
        eventId = d.eventID.lowercasedString
        eventType = d.eventType
        state = d.state.rawValue
        attempts = d.attempts
        nextAttemptAt = OrNull(d.state == .pending ? d.nextAttemptAt : nil)
        createdAt = d.createdAt
        lastAttemptAt = OrNull(d.lastAttemptAt)
        lastStatus = OrNull(d.lastStatus)
        lastLatencyMs = OrNull(d.lastLatencyMs)
        lastResponse = OrNull(d.lastResponse)
        lastError = OrNull(d.lastError)
    }
}

struct QueuedWebhookResponse: Encodable, Sendable {
    let deliveryId: String
    let eventId: String?
}

/// `/v1/orgs/{org_id}/webhooks` (an org's admins) and `/v1/webhooks` (the root's platform
/// endpoints): the same handlers, the org taken from the path when there is one. Every rule is
/// `WebhookService`'s.
struct WebhookRoutes {
    let webhooks: WebhookService

    /// The org of the path; nil on the platform routes.
    static func owner(_ context: AppRequestContext) throws -> UUID? {
        guard context.parameters.get("org_id") != nil else { return nil }
        return try TenancyRoutes.pathID(context, "org_id", "org")
    }

    static func id(_ context: AppRequestContext) throws -> UUID { try TenancyRoutes.pathID(context, "webhook_id", "webhook") }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(CreateWebhookBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let made = try await webhooks.create(actor: actor, orgID: try Self.owner(context), fields: WebhookFields(
            url: body.url, description: body.description, eventTypes: body.eventTypes, enabled: body.enabled))
        return try JSONBody.response(WebhookResponse(made.endpoint, secret: made.secret), status: .created, revision: made.revision)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let org = try Self.owner(context)
        return try await ListResponse.page(request, { WebhookResponse($0) }) {
            try await webhooks.endpoints(actor: actor, orgID: org, limit: $0.limit, offset: $0.offset)
        }
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        return try JSONBody.response(WebhookResponse(try await webhooks.endpoint(actor: actor, orgID: try Self.owner(context), id: try Self.id(context))))
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(PatchWebhookBody.self, from: request)
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let (endpoint, revision) = try await webhooks.update(actor: actor, orgID: try Self.owner(context), id: try Self.id(context), fields: WebhookFields(
            url: body.url, description: body.description, eventTypes: body.eventTypes, enabled: body.enabled))
        return try JSONBody.response(WebhookResponse(endpoint), revision: revision)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        return JSONBody.noContent(revision: try await webhooks.delete(actor: actor, orgID: try Self.owner(context), id: try Self.id(context)))
    }

    @Sendable func rotateSecret(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.readOptional(RotateWebhookSecretBody.self, from: request, default: RotateWebhookSecretBody(overlapSeconds: nil))
        let actor = try await context.actor()
        let body = try unchecked.fields()
        let made = try await webhooks.rotateSecret(
            actor: actor, orgID: try Self.owner(context), id: try Self.id(context), overlap: body.overlapSeconds.map(TimeInterval.init))
        return try JSONBody.response(WebhookResponse(made.endpoint, secret: made.secret), revision: made.revision)
    }

    @Sendable func test(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let (event, delivery) = try await webhooks.sendTest(actor: actor, orgID: try Self.owner(context), id: try Self.id(context))
        return try JSONBody.response(QueuedWebhookResponse(deliveryId: delivery.lowercasedString, eventId: event.id.lowercasedString), status: .accepted)
    }

    @Sendable func deliveries(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let (org, id) = (try Self.owner(context), try Self.id(context))
        return try await ListResponse.page(request, { WebhookDeliveryResponse($0) }) {
            try await webhooks.deliveries(actor: actor, orgID: org, id: id, limit: $0.limit, offset: $0.offset)
        }
    }

    @Sendable func redeliver(_ request: Request, context: AppRequestContext) async throws -> Response {
        let actor = try await context.actor()
        let queued = try await webhooks.redeliver(
            actor: actor, orgID: try Self.owner(context), id: try Self.id(context), deliveryID: try TenancyRoutes.pathID(context, "delivery_id", "delivery"))
        return try JSONBody.response(QueuedWebhookResponse(deliveryId: queued.lowercasedString, eventId: nil), status: .accepted)
    }
}
