import Authority
import Foundation

/// A committed write, as the change log records it and every node applies it. The log (and
/// the watch stream) keep the `kind` and `subject` strings; code speaks in these cases, so a
/// kind is spelled once and a subject is parsed once, here.
public enum ChangeEvent: Sendable, Hashable {
    case userCreated(UUID)
    case userUpdated(UUID)
    case sessionCreated(UUID)
    case sessionRefreshed(UUID)
    case sessionRevoked(UUID)
    /// Every session of the user ("log out everywhere").
    case sessionsRevoked(user: UUID)
    case signingKeysChanged(kid: String)
    case orgCreated(UUID)
    case orgUpdated(UUID)
    case orgDeleted(UUID)
    case membershipChanged(org: UUID, user: UUID)
    /// An org or platform invite.
    case inviteChanged(UUID)
    /// Some binding of the org.
    case bindingChanged(org: UUID)
    /// Some group of the org: its tree, its name or its members.
    case groupChanged(org: UUID)
    /// Some override of the org.
    case overrideChanged(org: UUID)
    case keyCreated(UUID)
    case keyRevoked(UUID)
    case serviceAccountChanged(org: UUID, account: UUID)
    /// An OpenID client was registered, changed, given a new secret or deleted.
    case clientChanged(UUID)
    /// A webhook endpoint was registered, changed, given a new secret or deleted.
    case webhookChanged(UUID)
    /// A backup was restored: everything changed.
    case restored
    /// A kind this node does not know (written by a newer node); applied as nothing.
    case other(kind: String, subject: String)

    public var kind: String {
        switch self {
        case .userCreated: "user.created"
        case .userUpdated: "user.updated"
        case .sessionCreated: "session.created"
        case .sessionRefreshed: "session.refreshed"
        case .sessionRevoked, .sessionsRevoked: "session.revoked"
        case .signingKeysChanged: "signing_keys.changed"
        case .orgCreated: "org.created"
        case .orgUpdated: "org.updated"
        case .orgDeleted: "org.deleted"
        case .membershipChanged: "membership.changed"
        case .inviteChanged: "invite.changed"
        case .bindingChanged: "binding.changed"
        case .groupChanged: "group.changed"
        case .overrideChanged: "override.changed"
        case .keyCreated: "api_key.created"
        case .keyRevoked: "api_key.revoked"
        case .serviceAccountChanged: "service_account.changed"
        case .clientChanged: "oauth_client.changed"
        case .webhookChanged: "webhook.changed"
        case .restored: "backup.restored"
        case .other(let kind, _): kind
        }
    }

    public var subject: String {
        switch self {
        case .userCreated(let id), .userUpdated(let id), .sessionCreated(let id), .sessionRefreshed(let id), .sessionRevoked(let id),
             .orgCreated(let id), .orgUpdated(let id), .orgDeleted(let id), .inviteChanged(let id), .keyCreated(let id), .keyRevoked(let id),
             .clientChanged(let id), .webhookChanged(let id):
            id.lowercasedString
        case .sessionsRevoked(let user): "user:" + user.lowercasedString
        case .signingKeysChanged(let kid): kid
        case .membershipChanged(let org, let user): org.lowercasedString + "/" + user.lowercasedString
        case .bindingChanged(let org), .groupChanged(let org), .overrideChanged(let org): org.lowercasedString
        case .serviceAccountChanged(let org, let account): org.lowercasedString + "/" + account.lowercasedString
        case .restored: "instance"
        case .other(_, let subject): subject
        }
    }

    /// The event a log row records; rows this node cannot read are `.other`.
    public init(kind: String, subject: String) {
        let id = UUIDText.parse(subject)
        let pair = Self.pair(subject)
        switch (kind, id, pair) {
        case ("user.created", let id?, _): self = .userCreated(id)
        case ("user.updated", let id?, _): self = .userUpdated(id)
        case ("session.created", let id?, _): self = .sessionCreated(id)
        case ("session.refreshed", let id?, _): self = .sessionRefreshed(id)
        case ("session.revoked", let id?, _): self = .sessionRevoked(id)
        case ("session.revoked", nil, _) where subject.hasPrefix("user:"):
            if let user = UUIDText.parse(String(subject.dropFirst(5))) { self = .sessionsRevoked(user: user) } else { self = .other(kind: kind, subject: subject) }
        case ("signing_keys.changed", _, _): self = .signingKeysChanged(kid: subject)
        case ("org.created", let id?, _): self = .orgCreated(id)
        case ("org.updated", let id?, _): self = .orgUpdated(id)
        case ("org.deleted", let id?, _): self = .orgDeleted(id)
        case ("membership.changed", _, let (org, user)?): self = .membershipChanged(org: org, user: user)
        case ("invite.changed", let id?, _): self = .inviteChanged(id)
        case ("binding.changed", let id?, _): self = .bindingChanged(org: id)
        case ("group.changed", let id?, _): self = .groupChanged(org: id)
        case ("override.changed", let id?, _): self = .overrideChanged(org: id)
        case ("api_key.created", let id?, _): self = .keyCreated(id)
        case ("api_key.revoked", let id?, _): self = .keyRevoked(id)
        case ("service_account.changed", _, let (org, account)?): self = .serviceAccountChanged(org: org, account: account)
        case ("oauth_client.changed", let id?, _): self = .clientChanged(id)
        case ("webhook.changed", let id?, _): self = .webhookChanged(id)
        case ("backup.restored", _, _): self = .restored
        default: self = .other(kind: kind, subject: subject)
        }
    }

    /// `<uuid>/<uuid>`.
    static func pair(_ subject: String) -> (UUID, UUID)? {
        let parts = subject.split(separator: "/")
        guard parts.count == 2, let a = UUIDText.parse(String(parts[0])), let b = UUIDText.parse(String(parts[1])) else { return nil }
        return (a, b)
    }
}
