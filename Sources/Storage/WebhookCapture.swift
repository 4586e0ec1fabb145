import Authority
import Foundation
import Policy
import Tenancy
import Webhooks
import Wire

/// Turns a transaction's audit records into webhook events and queues them for every enabled
/// endpoint that wants them, at the end of that same transaction (SPEC §16): an event exists
/// exactly when its change committed, so a crash can lose neither. Under the change log's order
/// lock (PostgreSQL) the events' sequence is commit order; SQLite has one writer anyway.
///
/// Nothing is stored when no endpoint wants an event: an endpoint hears the changes made after
/// it was registered.
enum WebhookCapture {
    static func record(_ audits: [AuditEvent], changes: [Change], in tx: any SQLExecutor) async throws {
        let people = changes.compactMap(personEvent)
        guard !audits.isEmpty || !people.isEmpty else { return }
        let listeners = try await tx.query("SELECT id, org_id, event_types FROM webhook_endpoints WHERE enabled").map { row in
            (id: try row.uuid("id"), orgID: try row.optionalUUID("org_id"), filter: EventFilter(trusted: try row.stringList("event_types")))
        }
        guard !listeners.isEmpty else { return }
        let revision = changes.last?.revision
        var locked = false
        for audit in audits + people {
            let targets = listeners.filter { ($0.orgID == nil || $0.orgID == audit.orgID) && $0.filter.matches(audit.action) }
            guard !targets.isEmpty else { continue }
            if !locked {
                try await tx.lockForTransaction(ChangeLog.orderLockKey)
                locked = true
            }
            let event = WebhookEvent(audit: audit, revision: revision, object: try await WebhookObjects.load(audit, in: tx))
            let seq = try await insert(event, in: tx)
            for target in targets { try await queue(eventSeq: seq, endpointID: target.id, at: event.at, in: tx) }
        }
    }

    /// New and changed accounts are not audited (people sign themselves up): their change-log
    /// entries make the platform's `user.*` events.
    static func personEvent(_ change: Change) -> AuditEvent? {
        let user: UUID
        switch change.event {
        case .userCreated(let id), .userUpdated(let id): user = id
        default: return nil
        }
        return AuditEvent(at: change.at, actorType: "system", actorID: nil, action: change.kind, orgID: nil, target: "user:\(user.lowercasedString)")
    }

    static func insert(_ event: WebhookEvent, in tx: any SQLExecutor) async throws -> Int64 {
        guard let row = try await tx.queryFirst(
            "INSERT INTO webhook_events (id, type, at, org_id, payload) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
            event.id, event.type, event.at, event.orgID, event.payload)
        else { throw StorageError.other("webhook event insert returned nothing") }
        return try row.int("seq")
    }

    @discardableResult
    static func queue(eventSeq: Int64, endpointID: UUID, at: Date, in tx: any SQLExecutor) async throws -> UUID {
        let id = UUID()
        try await tx.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_seq, state, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
            id, endpointID, eventSeq, at)
        return id
    }
}

/// The changed object as the transaction left it, by the audit record's target; nil when it
/// is gone (deleted, removed) or is not a record (`instance`).
enum WebhookObjects {
    enum Kind { case text, uuid, date, bool, int, json, list }

    static func load(_ audit: AuditEvent, in tx: any SQLExecutor) async throws -> [String: JSONValue]? {
        let parts = audit.target.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        let (kind, key) = (parts[0], parts[1])
        let id = UUIDText.parse(key)
        switch (kind, id) {
        case ("org", let id?):
            return try await row(tx, "SELECT id, name, description, metadata, max_key_ttl, created_at, updated_at FROM orgs WHERE id = $1", [id],
                                 ["id": .uuid, "name": .text, "description": .text, "metadata": .json, "max_key_ttl": .int, "created_at": .date, "updated_at": .date])
        case ("user", let id?):
            if let org = audit.orgID {
                return try await row(tx, """
                    SELECT m.org_id, m.user_id, u.email, u.name, m.role, m.expires_at, m.created_at, m.updated_at
                    FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2
                    """, [org, id],
                    ["org_id": .uuid, "user_id": .uuid, "email": .text, "name": .text, "role": .text, "expires_at": .date, "created_at": .date, "updated_at": .date])
            }
            return try await row(tx, "SELECT id, email, name, email_verified, created_at, updated_at FROM users WHERE id = $1", [id],
                                 ["id": .uuid, "email": .text, "name": .text, "email_verified": .bool, "created_at": .date, "updated_at": .date])
        case ("invite", let id?):
            return try await row(tx, "SELECT id, org_id, email, role, state, dormant, inviter_id, created_at, expires_at FROM invites WHERE id = $1", [id],
                                 ["id": .uuid, "org_id": .uuid, "email": .text, "role": .text, "state": .text, "dormant": .bool, "inviter_id": .uuid,
                                  "created_at": .date, "expires_at": .date])
        case ("platform_invite", let id?):
            return try await row(tx, "SELECT id, email, state, inviter_id, created_at, expires_at FROM platform_invites WHERE id = $1", [id],
                                 ["id": .uuid, "email": .text, "state": .text, "inviter_id": .uuid, "created_at": .date, "expires_at": .date])
        case ("binding", let id?):
            guard var binding = try await row(tx, """
                SELECT id, org_id, subject_type, subject_id, resource_path, role, expires_at, created_at, updated_at FROM bindings WHERE id = $1
                """, [id],
                ["id": .uuid, "org_id": .uuid, "subject_type": .text, "subject_id": .uuid, "resource_path": .text, "role": .text,
                 "expires_at": .date, "created_at": .date, "updated_at": .date]) else { return nil }
            apiShape(&binding)
            return binding
        case ("group", let id?):
            return try await row(tx, "SELECT id, org_id, name, description, metadata, parent_id, created_at, updated_at FROM groups WHERE id = $1", [id],
                                 ["id": .uuid, "org_id": .uuid, "name": .text, "description": .text, "metadata": .json, "parent_id": .uuid,
                                  "created_at": .date, "updated_at": .date])
        case ("override", let id?):
            guard var override = try await row(tx, """
                SELECT id, org_id, subject_type, subject_id, resource_path, permission, effect, expires_at, reason, created_at FROM overrides WHERE id = $1
                """, [id],
                ["id": .uuid, "org_id": .uuid, "subject_type": .text, "subject_id": .uuid, "resource_path": .text, "permission": .text, "effect": .text,
                 "expires_at": .date, "reason": .text, "created_at": .date]) else { return nil }
            apiShape(&override)
            return override
        case ("key", let id?):
            return try await row(tx, """
                SELECT id, prefix, name, user_id, service_account_id, org_id, scopes, created_at, expires_at, revoked_at FROM api_keys WHERE id = $1
                """, [id],
                ["id": .uuid, "prefix": .text, "name": .text, "user_id": .uuid, "service_account_id": .uuid, "org_id": .uuid, "scopes": .list,
                 "created_at": .date, "expires_at": .date, "revoked_at": .date])
        case ("service_account", let id?):
            return try await row(tx, "SELECT id, org_id, name, role, created_at FROM service_accounts WHERE id = $1", [id],
                                 ["id": .uuid, "org_id": .uuid, "name": .text, "role": .text, "created_at": .date])
        case ("client", let id?):
            return try await row(tx, """
                SELECT id, org_id, name, kind, redirect_uris, scopes, first_party, service_account_id, created_at, updated_at FROM oauth_clients WHERE id = $1
                """, [id],
                ["id": .uuid, "org_id": .uuid, "name": .text, "kind": .text, "redirect_uris": .list, "scopes": .list, "first_party": .bool,
                 "service_account_id": .uuid, "created_at": .date, "updated_at": .date])
        case ("webhook", let id?):
            return try await row(tx, "SELECT id, org_id, url, description, event_types, enabled, created_at, updated_at FROM webhook_endpoints WHERE id = $1", [id],
                                 ["id": .uuid, "org_id": .uuid, "url": .text, "description": .text, "event_types": .list, "enabled": .bool,
                                  "created_at": .date, "updated_at": .date])
        case ("identity_provider", _):
            // Never the sealed secret.
            return try await row(tx, """
                SELECT id, kind, display_name, client_id, issuer, web_base_url, api_base_url, enabled, created_at, updated_at FROM identity_providers WHERE id = $1
                """, [key],
                ["id": .text, "kind": .text, "display_name": .text, "client_id": .text, "issuer": .text, "web_base_url": .text, "api_base_url": .text,
                 "enabled": .bool, "created_at": .date, "updated_at": .date])
        case ("signing_key", _):
            return try await row(tx, "SELECT kid, algorithm, created_at, retired_at FROM signing_keys WHERE kid = $1", [key],
                                 ["kid": .text, "algorithm": .text, "created_at": .date, "retired_at": .date])
        default:
            return nil
        }
    }

    /// As the API shows a binding or override: the subject by kind, the resource as a whole object reference.
    static func apiShape(_ object: inout [String: JSONValue]) {
        if case .string(let path)? = object.removeValue(forKey: "resource_path"), case .string(let org)? = object["org_id"], let orgID = UUIDText.parse(org) {
            object["resource"] = .string(ObjectRef(orgID: orgID, path: path).string)
        }
        if case .string(let kind)? = object.removeValue(forKey: "subject_type"), let subject = object.removeValue(forKey: "subject_id") {
            object["subject"] = .object([kind + "_id": subject])
        }
    }

    /// The first row of `sql` as a JSON object, each column read as its kind says.
    static func row(_ tx: any SQLExecutor, _ sql: String, _ binds: [any SQLBindable], _ columns: KeyValuePairs<String, Kind>) async throws -> [String: JSONValue]? {
        guard let row = try await tx.query(sql, binds.map(\.sqlValue)).first else { return nil }
        var object: [String: JSONValue] = [:]
        for (name, kind) in columns {
            guard !row.isNull(name) else { object[name] = .null; continue }
            switch kind {
            case .text: object[name] = .string(try row.string(name))
            case .uuid: object[name] = .string(try row.uuid(name).lowercasedString)
            case .date: object[name] = .string(RFC3339.string(try row.date(name)))
            case .bool: object[name] = .bool(try row.bool(name))
            case .int: object[name] = .number(Double(try row.int(name)))
            case .json: object[name] = .object(JSONValue.object(fromJSON: try row.string(name)))
            case .list: object[name] = .array(try row.stringList(name).map(JSONValue.string))
            }
        }
        return object
    }
}
