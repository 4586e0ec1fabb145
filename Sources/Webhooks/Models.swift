import Authority
import Foundation
import Tenancy
import Memberwise

/// Where events are sent (SPEC §16): an org's endpoint (its admins') or a platform endpoint
/// (`orgID` nil: the root's), which hears every event of the instance.
public struct WebhookEndpoint: Sendable, Equatable {
    public var id: UUID
    public var orgID: UUID?
    public var url: String
    public var description: String
    public var eventTypes: EventFilter
    public var enabled: Bool
    /// Why the server turned it off (410 Gone, three days of failures); nil when a person did.
    public var disabledReason: String?
    /// Until when the secret before the last rotation still signs.
    public var previousSecretUntil: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: UUID, orgID: UUID?, url: String, description: String, eventTypes: EventFilter, enabled: Bool, createdAt: Date) {
        self.id = id
        self.orgID = orgID
        self.url = url
        self.description = description
        self.eventTypes = eventTypes
        self.enabled = enabled
        self.createdAt = createdAt
        self.updatedAt = createdAt
    }
}

/// The fields of a registration or a patch; nil leaves a field as it is.
@PublicInit
public struct WebhookFields: Sendable, Equatable {
    public var url: String?
    public var description: String?
    public var eventTypes: [String]?
    public var enabled: Bool?
}

/// An endpoint with its new secret, shown this once.
public struct RegisteredWebhook: Sendable {
    public let endpoint: WebhookEndpoint
    public let secret: WebhookSecret
    /// The change log's revision of the write.
    public let revision: Int64
}

/// One event for one endpoint, and how its last attempt went: a line of the delivery log.
@PublicInit
public struct WebhookDelivery: Sendable, Equatable {
    public enum State: String, Sendable {
        case pending, delivered, failed
    }

    public var id: UUID
    public var endpointID: UUID
    public var eventID: UUID
    public var eventType: String
    public var state: State
    public var attempts: Int
    public var nextAttemptAt: Date
    public var createdAt: Date
    public var lastAttemptAt: Date?
    public var lastStatus: Int?
    public var lastLatencyMs: Int?
    /// The start of the receiver's answer (at most `WebhookDelivery.excerptLimit` bytes).
    public var lastResponse: String?
    public var lastError: String?

    public static let excerptLimit = 512
}

/// What became of one attempt to send a delivery.
public struct AttemptOutcome: Sendable, Equatable {
    /// The receiver's status; nil when no answer came (refused address, timeout, connection).
    public var status: Int?
    public var latencyMs: Int
    public var response: String
    public var error: String?

    public init(status: Int?, latencyMs: Int, response: String = "", error: String? = nil) {
        self.status = status
        self.latencyMs = latencyMs
        self.response = Self.printable(response)
        self.error = error.map(Self.printable)
    }

    /// What a receiver says is kept to show people: control characters (NUL included, which no
    /// database column takes) become spaces.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control && $0 != "\n" ? " " : $0 }))
    }

    /// Any 2xx is a delivery.
    public var delivered: Bool { status.map { (200..<300).contains($0) } ?? false }
    /// 410 Gone: the receiver says it is gone for good; the endpoint is turned off at once.
    public var gone: Bool { status == 410 }
}

/// A delivery ready to be sent: the event's id and body.
@PublicInit
public struct DueDelivery: Sendable {
    public var id: UUID
    public var attempts: Int
    public var nextAttemptAt: Date
    public var eventID: UUID
    public var payload: String
}

/// Seals webhook secrets at rest (with the instance's master key) and opens them for signing.
public protocol WebhookSecretBox: Sendable {
    func seal(_ secret: WebhookSecret) throws -> String
    func open(_ sealed: String) throws -> WebhookSecret
}

/// Endpoint records, their delivery logs, and the queue.
public protocol WebhookStore: Sendable {
    func endpoint(id: UUID) async throws -> WebhookEndpoint?
    /// Platform endpoints (`orgID` nil) or one org's, oldest first, and their count.
    func endpoints(orgID: UUID?, limit: Int, offset: Int) async throws -> ([WebhookEndpoint], Int)
    /// The endpoint's deliveries, newest first, and their count.
    func deliveries(endpointID: UUID, limit: Int, offset: Int) async throws -> ([WebhookDelivery], Int)
    /// One transaction (the org locked when given) with tenancy and webhook statements.
    func writeWebhooks<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter, any WebhookWriter) async throws -> T) async throws -> T
}

public protocol WebhookWriter: Sendable {
    func endpoint(id: UUID) async throws -> WebhookEndpoint?
    func insert(_ endpoint: WebhookEndpoint, sealedSecret: String) async throws
    func update(_ endpoint: WebhookEndpoint) async throws
    /// A new secret; the current one becomes the previous, signing until `previousUntil`.
    func rotateSecret(id: UUID, sealedSecret: String, previousUntil: Date, at: Date) async throws
    func delete(id: UUID) async throws
    /// How many endpoints `orgID` has (the platform, for nil).
    func count(orgID: UUID?) async throws -> Int
    /// Queues one event for this endpoint alone (a test event); returns the delivery's id.
    func queueEvent(_ event: WebhookEvent, for endpointID: UUID) async throws -> UUID
    /// Queues an already sent event again, behind the endpoint's queue; nil when no such delivery.
    func redeliver(deliveryID: UUID, endpointID: UUID, at: Date) async throws -> UUID?
}

/// An endpoint this node holds the lease of: it alone sends its queue until the lease ends.
@PublicInit
public struct LeasedEndpoint: Sendable, Equatable {
    public var id: UUID
    public var url: String
    /// The current secret's sealed form, then the previous one's while it still signs.
    public var sealedSecrets: [String]
}

/// How an attempt ends for its delivery and its endpoint.
@PublicInit
public struct AttemptVerdict: Sendable, Equatable {
    public var state: WebhookDelivery.State
    /// When to try again (`pending`).
    public var nextAttemptAt: Date
    /// Set when the endpoint is turned off (410 Gone, or a delivery given up).
    public var disableReason: String?
}

/// The delivery queue as the sender sees it. Leases are per endpoint: the holder sends that
/// endpoint's deliveries one after another in order, and no other node touches them meanwhile.
public protocol WebhookQueue: Sendable {
    /// Leases up to `limit` enabled endpoints whose first pending delivery is due and that no
    /// node holds, those let go longest ago first.
    func lease(node: String, limit: Int, now: Date, until: Date) async throws -> [LeasedEndpoint]
    /// Extends this node's lease and reads the endpoint as it is now (its URL and secrets may
    /// have changed since); nil when the lease is lost or the endpoint turned off or deleted.
    func renew(endpointID: UUID, node: String, now: Date, until: Date) async throws -> LeasedEndpoint?
    func release(endpointID: UUID, node: String) async throws
    /// Releases every lease (SQLite at start: only one process can hold them).
    func releaseAll() async throws
    /// The endpoint's pending deliveries in order.
    func pending(endpointID: UUID, limit: Int) async throws -> [DueDelivery]
    /// Records an attempt's outcome and what follows from it, in one transaction.
    func record(deliveryID: UUID, endpointID: UUID, outcome: AttemptOutcome, verdict: AttemptVerdict, at: Date) async throws
    /// How many deliveries wait, and since when the oldest.
    func backlog() async throws -> (pending: Int, oldest: Date?)
    /// Forgets finished deliveries, and events no delivery needs, older than `before`.
    func prune(before: Date) async throws
}
