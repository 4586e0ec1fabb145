import Foundation
import Memberwise

/// Which audit events a read wants: one action (`member.added`), one actor's, or both.
@PublicInit
public struct AuditFilter: Sendable, Equatable {
    public var action: String?
    public var actorID: UUID?
}

/// Reading the audit log: an org's (admins, `audit.read`) and the platform's (root).
extension TenancyService {
    public func audit(actor: Actor, orgID: UUID, filter: AuditFilter = AuditFilter(), limit: Int, offset: Int) async throws -> ([AuditEvent], Int) {
        let standing = try await standing(orgID: orgID, actor: actor, at: now())
        _ = try require(Permission.auditRead, standing)
        return try await store.auditEvents(orgID: orgID, filter: filter, limit: limit, offset: offset)
    }

    public func platformAudit(actor: Actor, filter: AuditFilter = AuditFilter(), limit: Int, offset: Int) async throws -> ([AuditEvent], Int) {
        guard actor.isRoot else { throw TenancyError.forbidden("only the platform administrator may read the platform audit log") }
        return try await store.auditEvents(orgID: nil, filter: filter, limit: limit, offset: offset)
    }

    /// The audit events with these ids in `orgID`, when the actor may read that org's audit log;
    /// none otherwise (explain shows the events behind grants only to such callers).
    public func auditEvents(_ ids: [UUID], orgID: UUID, visibleTo actor: Actor) async throws -> [UUID: AuditEvent] {
        guard !ids.isEmpty, (try? await access(Permission.auditRead, actor: actor, orgID: orgID)) != nil else { return [:] }
        var events: [UUID: AuditEvent] = [:]
        for id in Set(ids) {
            if let event = try await store.auditEvent(id: id) { events[id] = event }
        }
        return events
    }
}
