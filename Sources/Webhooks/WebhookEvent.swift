import Foundation
import Tenancy
import Wire
import Memberwise

/// One event as receivers get it: the audited change, with the changed object itself.
///
/// The body follows the Standard Webhooks shape (`type`, `timestamp`, `data`) and adds the
/// event's `id` (also the `webhook-id` header, the same on every retry: receivers de-duplicate
/// on it), the change log `revision` of its transaction, the `org_id`, the `actor` and the
/// audit `details`.
@PublicInit
public struct WebhookEvent: Sendable, Equatable {
    public var id: UUID
    public var type: String
    public var at: Date
    public var orgID: UUID?
    public var body: [String: JSONValue]

    /// The event of an audit record; `object` is the changed object as the transaction left it
    /// (nil when it is gone: then `data` is its id and the details).
    public init(audit: AuditEvent, revision: Int64?, object: [String: JSONValue]?) {
        let targetID = audit.target.split(separator: ":", maxSplits: 1).last.map(String.init) ?? audit.target
        var data = object ?? ["id": .string(targetID)]
        if object == nil { for (key, value) in audit.details where data[key] == nil { data[key] = value } }
        self.init(id: audit.id, type: audit.action, at: audit.at, orgID: audit.orgID, body: [
            "id": .string(audit.id.lowercasedString),
            "type": .string(audit.action),
            "timestamp": .string(RFC3339.string(audit.at)),
            "revision": revision.map { .number(Double($0)) } ?? .null,
            "org_id": audit.orgID.map { .string($0.lowercasedString) } ?? .null,
            "actor": .object(["type": .string(audit.actorType), "id": audit.actorID.map { .string($0.lowercasedString) } ?? .null]),
            "target": .string(audit.target),
            "details": .object(audit.details),
            "data": .object(data),
        ])
    }

    /// `webhook.test`: sent to one endpoint when its admin asks, to try the receiver.
    public static func test(endpoint: WebhookEndpoint, at: Date) -> WebhookEvent {
        let id = UUID()
        return WebhookEvent(id: id, type: "webhook.test", at: at, orgID: endpoint.orgID, body: [
            "id": .string(id.lowercasedString),
            "type": .string("webhook.test"),
            "timestamp": .string(RFC3339.string(at)),
            "revision": .null,
            "org_id": endpoint.orgID.map { .string($0.lowercasedString) } ?? .null,
            "data": .object(["endpoint_id": .string(endpoint.id.lowercasedString), "message": .string("a test event from Portcullis")]),
        ])
    }

    /// The request body, byte for byte what is signed.
    public var payload: String { JSONValue.object(body).canonicalJSON }
}
