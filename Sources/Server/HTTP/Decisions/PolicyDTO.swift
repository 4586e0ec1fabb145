import Authority
import Foundation
import Policy
import Tenancy

struct CapabilitiesBody: Decodable, Sendable {
    let subject: SubjectBody?
    let objects: [String]
    let consistency: String?
    let atLeast: Int64?
}

struct LookupBody: Decodable, Sendable {
    let subject: SubjectBody?
    let permission: String
    let type: String?
    /// A page like every list's (SPEC §7): limit 1...100 (default 20), offset ≥ 0.
    let limit: Int?
    let offset: Int?
}

struct IdentifyBody: Decodable, Sendable {
    let token: String
}

struct DecisionResponse: Encodable, Sendable {
    let allowed: Bool
    let role: OrNull<String>
    let reason: String

    init(_ d: Decision) {
        allowed = d.allowed
        role = OrNull(d.role?.rawValue)
        reason = d.reason
    }
}

struct BindingBody: Decodable, Sendable {
    let subject: SubjectBody
    let resource: String
    let role: String
    let expiresAt: Date?
}

struct BindingResponse: Encodable, Sendable {
    let id: String
    let orgId: String
    let subject: SubjectIDs
    let resource: String
    let role: String
    let expiresAt: OrNull<Date>
    let createdAt: Date
    let updatedAt: Date

    init(_ b: Binding) {
        id = b.id.lowercasedString
        orgId = b.orgID.lowercasedString
        subject = SubjectIDs(b.principal)
        resource = b.resource.string
        role = b.role.rawValue
        expiresAt = OrNull(b.expiresAt)
        createdAt = b.createdAt
        updatedAt = b.updatedAt
    }
}
