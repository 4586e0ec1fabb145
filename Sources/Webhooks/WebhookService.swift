import Authority
import Foundation
import Tenancy

/// Managing webhook endpoints (SPEC §16). An org's endpoints are managed by whoever may update
/// the org (admins and owners); platform endpoints by the root. Every write is audited in its
/// own transaction, and so becomes an event itself (`webhook.*`).
public struct WebhookService: Sendable {
    public let store: any WebhookStore
    public let tenancy: TenancyService
    let box: any WebhookSecretBox
    /// `PORTCULLIS_WEBHOOK_ALLOW_PRIVATE`: http and private addresses allowed (tests, closed networks).
    public let allowPrivate: Bool
    let now: @Sendable () -> Date

    public static let maxPerOwner = 25
    public static let maxDescription = 500
    /// How long the secret before a rotation keeps signing, unless the rotation says otherwise.
    public static let defaultOverlap: TimeInterval = 24 * 3600
    public static let maxOverlap: TimeInterval = 7 * 24 * 3600

    public init(store: any WebhookStore, tenancy: TenancyService, box: any WebhookSecretBox, allowPrivate: Bool, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.tenancy = tenancy
        self.box = box
        self.allowPrivate = allowPrivate
        self.now = now
    }

    /// Inside a write: may `actor` manage `orgID`'s endpoints (the platform's for nil)?
    func authorize(_ actor: Actor, orgID: UUID?, in tx: any TenancyWriter, at: Date) async throws -> Bool {
        try await tenancy.managesIntegrations(actor, orgID: orgID, "webhooks", in: tx, at: at)
    }

    /// The same rule for reads.
    func authorize(_ actor: Actor, orgID: UUID?) async throws {
        try await tenancy.managesIntegrations(actor, orgID: orgID, "webhooks")
    }

    func checked(_ fields: WebhookFields, onto endpoint: inout WebhookEndpoint) throws {
        if let url = fields.url { endpoint.url = try WebhookDestination(url, allowPrivate: allowPrivate).url.absoluteString }
        if let description = fields.description {
            guard description.unicodeScalars.count <= Self.maxDescription else { throw WebhookError.invalid("description is at most \(Self.maxDescription) characters") }
            endpoint.description = description
        }
        if let types = fields.eventTypes { endpoint.eventTypes = try EventFilter(types) }
        if let enabled = fields.enabled {
            if enabled, !endpoint.enabled { endpoint.disabledReason = nil }
            endpoint.enabled = enabled
        }
    }

    public func create(actor: Actor, orgID: UUID?, fields: WebhookFields) async throws -> RegisteredWebhook {
        guard fields.url != nil else { throw WebhookError.invalid("url is required") }
        let at = now()
        var endpoint = WebhookEndpoint(
            id: UUID(), orgID: orgID, url: "", description: "", eventTypes: try EventFilter(fields.eventTypes ?? ["*"]), enabled: true, createdAt: at)
        try checked(fields, onto: &endpoint)
        let secret = WebhookSecret.mint()
        let sealed = try box.seal(secret)
        return try await store.writeWebhooks(lockingOrg: orgID) { [endpoint] tx, hooks in
            let viaRoot = try await authorize(actor, orgID: orgID, in: tx, at: at)
            guard try await hooks.count(orgID: orgID) < Self.maxPerOwner else {
                throw WebhookError.quotaExceeded("at most \(Self.maxPerOwner) webhook endpoints per org (and for the platform)")
            }
            try await hooks.insert(endpoint, sealedSecret: sealed)
            try await tx.appendAudit(Self.event(actor, at: at, "webhook.created", endpoint, viaRoot: viaRoot))
            return RegisteredWebhook(endpoint: endpoint, secret: secret, revision: try await tx.recordChange(.webhookChanged(endpoint.id), at: at))
        }
    }

    public func endpoints(actor: Actor, orgID: UUID?, limit: Int, offset: Int) async throws -> ([WebhookEndpoint], Int) {
        try await authorize(actor, orgID: orgID)
        return try await store.endpoints(orgID: orgID, limit: limit, offset: offset)
    }

    /// An endpoint of `orgID` (the platform's for nil) its manager may see; anything else is 404.
    public func endpoint(actor: Actor, orgID: UUID?, id: UUID) async throws -> WebhookEndpoint {
        try await authorize(actor, orgID: orgID)
        guard let endpoint = try await store.endpoint(id: id), endpoint.orgID == orgID else { throw WebhookError.notFound("no such webhook") }
        return endpoint
    }

    public func update(actor: Actor, orgID: UUID?, id: UUID, fields: WebhookFields) async throws -> (WebhookEndpoint, revision: Int64?) {
        _ = try await endpoint(actor: actor, orgID: orgID, id: id)
        let at = now()
        return try await store.writeWebhooks(lockingOrg: orgID) { tx, hooks in
            let viaRoot = try await authorize(actor, orgID: orgID, in: tx, at: at)
            guard var endpoint = try await hooks.endpoint(id: id), endpoint.orgID == orgID else { throw WebhookError.notFound("no such webhook") }
            let before = endpoint
            try checked(fields, onto: &endpoint)
            guard endpoint != before else { return (endpoint, nil) }
            endpoint.updatedAt = at
            try await hooks.update(endpoint)
            try await tx.appendAudit(Self.event(actor, at: at, "webhook.updated", endpoint, viaRoot: viaRoot))
            return (endpoint, try await tx.recordChange(.webhookChanged(id), at: at))
        }
    }

    /// A new secret; the current one keeps signing beside it for `overlap` seconds, so receivers
    /// can switch without missing a delivery.
    public func rotateSecret(actor: Actor, orgID: UUID?, id: UUID, overlap: TimeInterval?) async throws -> RegisteredWebhook {
        let overlap = overlap ?? Self.defaultOverlap
        guard (0...Self.maxOverlap).contains(overlap) else { throw WebhookError.invalid("overlap_seconds is between 0 and \(Int(Self.maxOverlap))") }
        _ = try await endpoint(actor: actor, orgID: orgID, id: id)
        let at = now()
        let secret = WebhookSecret.mint()
        let sealed = try box.seal(secret)
        return try await store.writeWebhooks(lockingOrg: orgID) { tx, hooks in
            let viaRoot = try await authorize(actor, orgID: orgID, in: tx, at: at)
            guard var endpoint = try await hooks.endpoint(id: id), endpoint.orgID == orgID else { throw WebhookError.notFound("no such webhook") }
            try await hooks.rotateSecret(id: id, sealedSecret: sealed, previousUntil: at.addingTimeInterval(overlap), at: at)
            endpoint.previousSecretUntil = at.addingTimeInterval(overlap)
            endpoint.updatedAt = at
            try await tx.appendAudit(Self.event(actor, at: at, "webhook.secret_rotated", endpoint, viaRoot: viaRoot, ["overlap_seconds": .number(overlap)]))
            return RegisteredWebhook(endpoint: endpoint, secret: secret, revision: try await tx.recordChange(.webhookChanged(id), at: at))
        }
    }

    public func delete(actor: Actor, orgID: UUID?, id: UUID) async throws -> Int64 {
        _ = try await endpoint(actor: actor, orgID: orgID, id: id)
        let at = now()
        return try await store.writeWebhooks(lockingOrg: orgID) { tx, hooks in
            let viaRoot = try await authorize(actor, orgID: orgID, in: tx, at: at)
            guard let endpoint = try await hooks.endpoint(id: id), endpoint.orgID == orgID else { throw WebhookError.notFound("no such webhook") }
            try await hooks.delete(id: id)
            try await tx.appendAudit(Self.event(actor, at: at, "webhook.deleted", endpoint, viaRoot: viaRoot))
            return try await tx.recordChange(.webhookChanged(id), at: at)
        }
    }

    /// The endpoint's delivery log, newest first.
    public func deliveries(actor: Actor, orgID: UUID?, id: UUID, limit: Int, offset: Int) async throws -> ([WebhookDelivery], Int) {
        _ = try await endpoint(actor: actor, orgID: orgID, id: id)
        return try await store.deliveries(endpointID: id, limit: limit, offset: offset)
    }

    /// Sends a delivery's event again, after whatever the endpoint has queued.
    public func redeliver(actor: Actor, orgID: UUID?, id: UUID, deliveryID: UUID) async throws -> UUID {
        _ = try await endpoint(actor: actor, orgID: orgID, id: id)
        let at = now()
        return try await store.writeWebhooks(lockingOrg: orgID) { tx, hooks in
            _ = try await authorize(actor, orgID: orgID, in: tx, at: at)
            guard let queued = try await hooks.redeliver(deliveryID: deliveryID, endpointID: id, at: at) else {
                throw WebhookError.notFound("no such delivery of this webhook")
            }
            return queued
        }
    }

    /// Queues a `webhook.test` event for this endpoint alone. A turned-off endpoint is sent
    /// nothing, so it is refused rather than queued for later.
    public func sendTest(actor: Actor, orgID: UUID?, id: UUID) async throws -> (event: WebhookEvent, deliveryID: UUID) {
        let endpoint = try await endpoint(actor: actor, orgID: orgID, id: id)
        guard endpoint.enabled else { throw WebhookError.conflict("this webhook is turned off; turn it on to send it a test event") }
        let at = now()
        let event = WebhookEvent.test(endpoint: endpoint, at: at)
        return try await store.writeWebhooks(lockingOrg: orgID) { tx, hooks in
            _ = try await authorize(actor, orgID: orgID, in: tx, at: at)
            return (event, try await hooks.queueEvent(event, for: id))
        }
    }

    static func event(_ actor: Actor, at: Date, _ action: String, _ endpoint: WebhookEndpoint, viaRoot: Bool, _ extra: [String: JSONValue] = [:]) -> AuditEvent {
        var details = extra
        details["url"] = .string(endpoint.url)
        details["event_types"] = .array(endpoint.eventTypes.patterns.map(JSONValue.string))
        details["enabled"] = .bool(endpoint.enabled)
        return TenancyService.event(actor, at: at, action, org: endpoint.orgID, target: "webhook:\(endpoint.id.lowercasedString)", details, viaRoot: viaRoot)
    }
}
