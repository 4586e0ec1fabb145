import Authority
import Foundation
import Hummingbird
import Identity
import Invites
import Keys
import OpenID
import Tenancy

/// The tabs of `/account` and how its pages render inside them.
enum AccountTabs {
    static func tabs(_ current: String) -> [[String: Any]] {
        [("/account", "Profile"), ("/account/sessions", "Sessions"), ("/account/invites", "Invitations"),
         ("/account/orgs", "Orgs"), ("/account/keys", "API keys"), ("/account/apps", "Apps")].map { ["href": $0.0, "label": $0.1, "current": $0.0 == current] }
    }

    static func render(
        _ kit: PageKit, _ request: Request, _ who: SignedIn, _ template: String, title: String, tab: String,
        status: HTTPResponse.Status, _ values: [String: Any]
    ) -> Response {
        var values = values
        values["wide"] = true
        values["tabs"] = tabs(tab)
        values["section"] = "Your account"
        return kit.page(request, who, template, title: title, status: status, values)
    }
}

/// `/account`, `/account/sessions`, `/account/invites`: the signed-in person's profile and
/// password, sessions, and invitations. Each action runs the use case its API twin runs
/// (`IdentityRoutes.changePassword`, `InviteService.respond`, …) with the session's own authority.
struct ProfilePages: Sendable {
    let kit: PageKit
    let identity: IdentityRoutes
    let accountMail: InviteRoutes
    let invites: InviteService
    let upstream: UpstreamPages

    func profile(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        var values = extra
        values["user"] = ["email": who.user.email, "name": who.user.name, "verified": who.user.emailVerified, "is_root": who.user.isRoot,
                          "created_at": PageFormat.date(who.user.createdAt)] as [String: Any]
        let methods = try await upstream.methods(who)
        values.merge(methods.values, uniquingKeysWith: { a, _ in a })
        var response = AccountTabs.render(kit, request, who, "account", title: "Profile", tab: "/account", status: status, values)
        UpstreamPages.allowLinkRedirects(&response, to: methods.linkable)
        return response
    }

    var updateProfile: PageHandler {
        kit.act(back: "/account", redisplay: profile) { who, form, _ in
            _ = try await identity.auth.updateName(userID: who.user.id, name: form["name"] ?? "")
            return .done("Your name is saved.")
        }
    }

    var changePassword: PageHandler {
        kit.act(back: "/account", redisplay: profile) { who, form, _ in
            _ = try await identity.changePassword(
                user: who.user, sessionID: who.sessionID, current: form["current_password"] ?? "", new: form["new_password"] ?? "")
            return .done("Your password is changed; every other session has ended.")
        }
    }

    var requestVerification: PageHandler {
        kit.act(back: "/account", redisplay: profile) { who, _, context in
            try accountMail.requestVerification(email: who.user.email, ip: context.clientIP)
            return .done("A new confirmation link is on its way to \(who.user.email).")
        }
    }

    // MARK: Sessions

    func sessions(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await identity.auth.activeSessions(userID: who.user.id, limit: page.limit, offset: page.offset)
        var values = extra
        values["sessions"] = items.map { s -> [String: Any] in
            ["id": s.id.lowercasedString, "current": s.id == who.sessionID, "created_at": PageFormat.date(s.createdAt),
             "last_used_at": PageFormat.date(s.lastUsedAt), "user_agent": s.userAgent.isEmpty ? "unknown client" : String(s.userAgent.prefix(120)), "ip": s.ip]
        }
        values["pager"] = PageFormat.pager(path: "/account/sessions", page: page, total: total)
        return AccountTabs.render(kit, request, who, "sessions", title: "Sessions", tab: "/account/sessions", status: status, values)
    }

    var revokeSession: PageHandler {
        kit.act(back: "/account/sessions", redisplay: sessions) { who, form, _ in
            guard let id = form["session_id"].flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such session") }
            _ = try await identity.auth.revokeSession(userID: who.user.id, sessionID: id)
            return .done(id == who.sessionID ? "This session has ended." : "The session has ended.")
        }
    }

    // MARK: Invitations

    func invitations(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await invites.mine(email: who.user.email, state: .pending, limit: page.limit, offset: page.offset)
        var values = extra
        values["invites"] = items.map { i -> [String: Any] in
            ["id": i.id.lowercasedString, "org_name": i.orgName, "role": i.role.rawValue, "expires_at": PageFormat.date(i.expiresAt), "dormant": i.dormant]
        }
        values["verified"] = who.user.emailVerified
        values["pager"] = PageFormat.pager(path: "/account/invites", page: page, total: total)
        return AccountTabs.render(kit, request, who, "my-invites", title: "Invitations", tab: "/account/invites", status: status, values)
    }

    var respondToInvite: PageHandler {
        kit.act(back: "/account/invites", redisplay: invitations) { who, form, _ in
            let accept = form["accept"] == "1"
            guard let id = form["invite_id"].flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such invite") }
            let (invite, _) = try await invites.respond(by: InviteService.Invitee(actor: who.actor, email: who.user.email), id: id, accept: accept)
            return accept
                ? .goTo("/orgs/\(invite.orgID.lowercasedString)", notice: "You joined \(invite.orgName) as \(invite.role.rawValue).")
                : .done("You declined the invitation to \(invite.orgName).")
        }
    }
}

/// `/account/orgs` and `/account/keys`: the person's orgs (and making one) and API keys (made
/// with scopes and a lifetime, the secret shown once, revoked).
struct OrgsAndKeysPages: Sendable {
    let kit: PageKit
    let tenancy: TenancyService
    let keys: KeyService
    let verifier: APIKeyVerifier

    func orgs(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await tenancy.listOrgs(actor: who.actor, everyOrg: false, nameContains: nil, limit: page.limit, offset: page.offset)
        var values = extra
        values["orgs"] = items.map { v -> [String: Any] in
            ["id": v.org.id.lowercasedString, "name": v.org.name, "description": (v.org.description.isEmpty ? nil : v.org.description) as Any, "role": v.role?.rawValue ?? "—"]
        }
        values["pager"] = PageFormat.pager(path: "/account/orgs", page: page, total: total)
        return AccountTabs.render(kit, request, who, "my-orgs", title: "Orgs", tab: "/account/orgs", status: status, values)
    }

    var createOrg: PageHandler {
        kit.act(back: "/account/orgs", redisplay: orgs) { who, form, _ in
            let description = form["description"] ?? ""
            let (view, _) = try await tenancy.createOrg(
                actor: who.actor, name: form["name"] ?? "", description: description.isEmpty ? nil : description, metadata: nil)
            return .goTo("/orgs/\(view.org.id.lowercasedString)", notice: "\(view.org.name) is created; you are its owner.")
        }
    }

    func apiKeys(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await keys.userKeys(actor: who.actor, limit: page.limit, offset: page.offset)
        let (orgs, _) = try await tenancy.listOrgs(actor: who.actor, everyOrg: false, nameContains: nil, limit: 100, offset: 0)
        var values = extra
        values["keys"] = items.map { KeyRow.values($0, lastUsed: verifier.pendingUse($0.id)) }
        values["orgs"] = orgs.map { ["id": $0.org.id.lowercasedString, "name": $0.org.name] }
        values["roles"] = PageFormat.roleOptions(Role.ranked)
        values["lifetimes"] = KeyRow.lifetimes
        values["key_action"] = "/account/keys"
        values["key_revoke_action"] = "/account/keys/revoke"
        values["pager"] = PageFormat.pager(path: "/account/keys", page: page, total: total)
        return AccountTabs.render(kit, request, who, "my-keys", title: "API keys", tab: "/account/keys", status: status, values)
    }

    /// The new key's secret is in this answer and nowhere else, ever: no redirect, no store.
    var createKey: PageHandler {
        kit.act(back: "/account/keys", redisplay: apiKeys) { who, form, _ in
            let (scopes, orgs) = try KeyRoutes.scopes(KeyRow.scopes(form))
            let created = try await keys.createUserKey(
                actor: who.actor, name: form["name"] ?? "", expiresIn: try KeyRow.lifetime(form), scopes: scopes, scopedOrgs: orgs)
            return .show(["created": ["name": created.key.name, "secret": created.secret]], .created)
        }
    }

    var revokeKey: PageHandler {
        kit.act(back: "/account/keys", redisplay: apiKeys) { who, form, _ in
            guard let id = form["key_id"].flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such key") }
            _ = try await keys.revokeUserKey(actor: who.actor, id: id)
            return .done("The key is revoked.")
        }
    }
}

/// How a key shows in a table and how the key forms read (shared by account and org pages).
enum KeyRow {
    static func values(_ key: APIKey, lastUsed: Date?) -> [String: Any] {
        [
            "id": key.id.lowercasedString, "name": key.name, "prefix": key.prefix,
            "scopes": key.scopes.isEmpty ? "all of the owner's authority" : key.scopes.joined(separator: ", "),
            "created_at": PageFormat.date(key.createdAt), "expires_at": key.expiresAt.map { PageFormat.date($0) } ?? "never",
            "last_used_at": [key.lastUsedAt, lastUsed].compactMap { $0 }.max().map { PageFormat.date($0) } ?? "never",
        ]
    }

    static var lifetimes: [[String: Any]] { [
        ["value": "2592000", "label": "30 days"], ["value": "7776000", "label": "90 days"],
        ["value": "31536000", "label": "1 year"], ["value": "", "label": "Never (unless an org's key policy says otherwise)"],
    ] }

    static func lifetime(_ form: FormPost) throws -> Int? {
        guard let text = form["expires_in"], !text.isEmpty else { return nil }
        guard let seconds = Int(text) else { throw Problem.badRequest("expires_in must be a number of seconds") }
        return seconds
    }

    /// The scopes a key form asks for: `org:<id>` for each ticked org (`org` fields), a role cap
    /// (`role`), and `authz:check`.
    static func scopes(_ form: FormPost) -> [String] {
        var scopes = form.all("org").filter { !$0.isEmpty }.map { "org:" + $0 }
        if let role = form["role"], !role.isEmpty { scopes.append("role:" + role) }
        if form["authz_check"] == "1" { scopes.append("authz:check") }
        return scopes
    }
}

extension Page {
    /// A page's `limit`/`offset` from the query; on a page, a bad value is the first page rather
    /// than an error.
    static func lenient(_ request: Request, limit: Int = 25) -> Page {
        let offset = request.uri.queryParameters.get("offset").flatMap(Int.init).map { min(max($0, 0), 1_000_000_000) } ?? 0
        return Page(limit: limit, offset: offset)
    }
}

/// `/account/apps`: the apps the person let sign them in ("Log in with Portcullis"), and taking
/// that back (which also ends the sessions the app holds).
struct AppsPages: Sendable {
    let kit: PageKit
    let openID: OpenIDService
    let auth: AuthService

    func apps(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        var values = extra
        values["apps"] = try await openID.consents(userID: who.user.id).map { c -> [String: Any] in
            ["client_id": c.clientID.lowercasedString, "name": c.clientName, "granted_at": PageFormat.date(c.grantedAt),
             "scopes": c.scopes.compactMap { AuthorizePages.scopeWords[$0] }.joined(separator: "; ")]
        }
        return AccountTabs.render(kit, request, who, "my-apps", title: "Apps", tab: "/account/apps", status: status, values)
    }

    var revoke: PageHandler {
        kit.act(back: "/account/apps", redisplay: apps) { who, form, _ in
            guard let id = form["client_id"].flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such app") }
            try await openID.revokeConsent(userID: who.user.id, clientID: id) { session in
                _ = try? await auth.revokeSession(userID: who.user.id, sessionID: session)
            }
            return .done("The app may no longer sign you in without asking, and its sessions have ended.")
        }
    }
}
