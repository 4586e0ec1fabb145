import Authority
import Foundation
import Tenancy

/// Encodes `nil` as JSON `null` (synthesized `Encodable` would leave the key out).
struct OrNull<Value: Encodable & Sendable>: Encodable, Sendable {
    let value: Value?
    init(_ value: Value?) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

/// `org` in responses; `role` is the caller's (null for the root looking at an org it is not in).
struct OrgResponse: Encodable, Sendable {
    let id: String
    let name: String
    let description: String
    let metadata: [String: JSONValue]
    let createdAt: Date
    let updatedAt: Date
    let role: OrNull<String>
    let settings: Settings

    struct Settings: Encodable, Sendable {
        let maxKeyTtl: OrNull<Int>
    }

    init(_ view: OrgView) {
        id = view.org.id.lowercasedString
        name = view.org.name
        description = view.org.description
        metadata = view.org.metadata
        createdAt = view.org.createdAt
        updatedAt = view.org.updatedAt
        role = OrNull(view.role?.rawValue)
        settings = Settings(maxKeyTtl: OrNull(view.org.maxKeyTTL))
    }
}

struct MemberResponse: Encodable, Sendable {
    let userId: String
    let email: String
    let name: String
    let role: String
    let expiresAt: OrNull<Date>
    let createdAt: Date
    let updatedAt: Date

    init(_ m: Member) {
        userId = m.membership.userID.lowercasedString
        email = m.email
        name = m.name
        role = m.membership.role.rawValue
        expiresAt = OrNull(m.membership.expiresAt)
        createdAt = m.membership.createdAt
        updatedAt = m.membership.updatedAt
    }
}

struct AuditEventResponse: Encodable, Sendable {
    struct ActorRef: Encodable, Sendable {
        let type: String
        let id: OrNull<String>
    }

    let id: String
    let at: Date
    let actor: ActorRef
    let action: String
    let orgId: OrNull<String>
    let target: String
    let details: [String: JSONValue]

    init(_ e: AuditEvent) {
        id = e.id.lowercasedString
        at = e.at
        actor = ActorRef(type: e.actorType, id: OrNull(e.actorID?.lowercasedString))
        action = e.action
        orgId = OrNull(e.orgID?.lowercasedString)
        target = e.target
        details = e.details
    }
}

// MARK: - Requests

struct CreateOrgBody: Decodable, Sendable {
    let name: String
    let description: String?
    let metadata: JSONValue?
}

/// PATCH bodies must tell "left out" from "null"; a null description or metadata clears it.
struct PatchOrgBody: Decodable, Sendable {
    var name: String??
    var description: String??
    var metadata: JSONValue??
    var settings: Settings?

    struct Settings: Decodable, Sendable {
        var maxKeyTtl: Int??

        enum CodingKeys: String, CodingKey { case maxKeyTtl }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxKeyTtl = try c.decodePresence(Int.self, forKey: .maxKeyTtl)
        }
    }

    enum CodingKeys: String, CodingKey { case name, description, metadata, settings }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodePresence(String.self, forKey: .name)
        description = try c.decodePresence(String.self, forKey: .description)
        metadata = try c.decodePresence(JSONValue.self, forKey: .metadata)
        settings = try c.decodeIfPresent(Settings.self, forKey: .settings)
    }

    func patch() throws -> OrgPatch {
        var patch = OrgPatch()
        switch name {
        case .none: break
        case .some(.none): throw Problem.badRequest("name must not be null")
        case .some(.some(let v)): patch.name = .set(v)
        }
        if let description { patch.description = .set(description ?? "") }
        if let metadata {
            switch metadata {
            case .none, .some(.null): patch.metadata = .set([:])
            case .some(.object(let o)): patch.metadata = .set(o)
            case .some: throw Problem.badRequest("metadata must be a JSON object")
            }
        }
        if let ttl = settings?.maxKeyTtl { patch.maxKeyTTL = .set(ttl) }
        return patch
    }
}

struct AddMemberBody: Decodable, Sendable {
    /// Present-but-null is told apart from absent: `{"email": …, "user_id": null}` names two.
    let userId: String??
    let email: String??
    let role: String
    let expiresAt: Date?

    enum CodingKeys: String, CodingKey { case userId, email, role, expiresAt }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        userId = try c.decodePresence(String.self, forKey: .userId)
        email = try c.decodePresence(String.self, forKey: .email)
        role = try c.decode(String.self, forKey: .role)
        expiresAt = try c.decodeIfPresent(Date.self, forKey: .expiresAt)
    }
}

struct PatchMemberBody: Decodable, Sendable {
    var role: String??
    var expiresAt: Date??

    enum CodingKeys: String, CodingKey { case role, expiresAt }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decodePresence(String.self, forKey: .role)
        expiresAt = try c.decodePresence(Date.self, forKey: .expiresAt)
    }
}

extension KeyedDecodingContainer {
    /// nil: the key is absent; `.some(nil)`: it is null; `.some(value)`: it has a value.
    func decodePresence<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T?? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) { return .some(nil) }
        return .some(try decode(T.self, forKey: key))
    }
}

/// A role named in a request; anything else is a 400.
func parseRole(_ text: String, field: String = "role") throws -> Role {
    guard let role = Role(rawValue: text) else {
        throw Problem.badRequest("\(field) must be one of \(Role.ranked.map(\.rawValue).joined(separator: ", "))")
    }
    return role
}
