import Authority
import Foundation
import Hummingbird
import Identity
import Invites
import NIOCore
import OpenID
import Storage

/// `/admin/…` for the root: platform invites, the user directory, signing keys, backup.
/// Anyone else gets the same 404 page as for a path that does not exist.
struct AdminPages: Sendable {
    let kit: PageKit
    let invites: InviteService
    let auth: AuthService
    let tokens: TokenService
    let signingKeys: any SigningKeyStore
    let backup: SQLBackup
    let clients: ClientService
    let webhookConsole: WebhookConsole

    static let tabs = [
        ("/admin", "Platform invites"), ("/admin/users", "Users"), ("/admin/clients", "Apps"), ("/admin/webhooks", "Webhooks"),
        ("/admin/providers", "Sign-in providers"), ("/admin/signing-keys", "Signing keys"), ("/admin/backup", "Backup"),
    ]

    /// A root page; anyone else sees the not-found page.
    func page(_ render: @escaping PageRender<SignedIn>) -> PageHandler {
        kit.page { request, who, extra, status in
            guard who.caller.isRoot else { return notFound(request, who) }
            return try await render(request, who, extra, status)
        }
    }

    /// A root form; anyone else sees the not-found page and nothing is done.
    func act(back: String, redisplay: @escaping PageRender<SignedIn>, _ body: @escaping @Sendable (SignedIn, FormPost) async throws -> FormOutcome) -> PageHandler {
        let form = kit.act(back: back, redisplay: redisplay) { who, form, _ in try await body(who, form) }
        return { [kit] request, context in
            if let who = try await kit.signedIn(request), !who.caller.isRoot { return notFound(request, who) }
            return try await form(request, context)
        }
    }

    func notFound(_ request: Request, _ who: SignedIn) -> Response {
        kit.page(request, who, "message", title: "Not found", status: .notFound, ["paragraphs": ["There is no page here."]])
    }

    func render(_ request: Request, _ who: SignedIn, _ template: String, title: String, tab: String, status: HTTPResponse.Status = .ok, _ values: [String: Any]) -> Response {
        var values = values
        values["wide"] = true
        values["section"] = "Platform"
        values["tabs"] = Self.tabs.map { ["href": $0.0, "label": $0.1, "current": $0.0 == tab] }
        return kit.page(request, who, template, title: title, status: status, values)
    }

    // MARK: Platform invites

    func platformInvites(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await invites.platformInvites(by: who.actor, state: nil, limit: page.limit, offset: page.offset)
        let now = Date()
        var values = extra
        values["invites"] = items.map { i -> [String: Any] in
            let state = i.state(at: now)
            return ["id": i.id.lowercasedString, "email": i.email, "state": state.rawValue, "pending": state == .pending,
                    "expires_at": PageFormat.date(i.expiresAt), "orgs": i.orgInvites.map { "\($0.orgName) (\($0.role.rawValue))" }.joined(separator: ", ")]
        }
        values["pager"] = PageFormat.pager(path: "/admin", page: page, total: total)
        return render(request, who, "admin-invites", title: "Platform invites", tab: "/admin", status: status, values)
    }

    var createInvite: PageHandler {
        act(back: "/admin", redisplay: platformInvites) { who, form in
            let (invite, _) = try await invites.createPlatformInvite(by: who.actor, email: form["email"] ?? "", orgInvites: [])
            return .done("An invitation to sign up is on its way to \(invite.email).")
        }
    }

    var revokeInvite: PageHandler {
        act(back: "/admin", redisplay: platformInvites) { who, form in
            guard let id = form["invite_id"].flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such invite") }
            _ = try await invites.revokePlatformInvite(by: who.actor, id: id)
            return .done("The invitation is revoked.")
        }
    }

    // MARK: Users

    func users(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let q = String((request.uri.queryParameters.get("q") ?? "").prefix(254))
        let (users, total) = try await auth.directory(matching: q, limit: page.limit, offset: page.offset)
        return render(request, who, "admin-users", title: "Users", tab: "/admin/users", [
            "q": q,
            "users": users.map { u -> [String: Any] in
                ["id": u.id.lowercasedString, "email": u.email, "name": u.name.isEmpty ? "—" : u.name, "verified": u.emailVerified,
                 "is_root": u.isRoot, "created_at": PageFormat.date(u.createdAt)]
            },
            "pager": PageFormat.pager(path: "/admin/users", page: page, total: total, query: ["q": q]) as Any,
        ])
    }

    // MARK: Platform apps (OpenID clients)

    func platformClients(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let (items, _) = try await clients.clients(actor: who.actor, orgID: nil, limit: 100, offset: 0)
        return render(request, who, "clients", title: "Apps", tab: "/admin/clients", status: status,
                      ClientForms.values(items, action: "/admin/clients", actor: who.actor, extra: extra))
    }

    var createClient: PageHandler {
        act(back: "/admin/clients", redisplay: platformClients) { who, form in
            ClientForms.created(try await clients.create(actor: who.actor, orgID: nil, fields: ClientForms.fields(form)))
        }
    }

    /// One platform app's settings: `/admin/clients/{client_id}`.
    func clientSettings(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        guard let id = ClientForms.pathID(request), let client = try? await clients.client(actor: who.actor, id: id), client.orgID == nil else {
            return render(request, who, "message", title: "No such app", tab: "/admin/clients", status: .notFound, [
                "paragraphs": ["This app is not a platform app."], "link_href": "/admin/clients", "link_text": "Apps",
            ])
        }
        return render(request, who, "client", title: client.name, tab: "/admin/clients", status: status,
                      ClientForms.settingsValues(client, action: "/admin/clients", accounts: nil, extra: extra))
    }

    var updateClient: PageHandler {
        act(back: "/admin/clients", redisplay: clientSettings) { who, form in
            guard let id = form["client_id"].flatMap({ UUIDText.parse($0) }), try await clients.client(actor: who.actor, id: id).orgID == nil else {
                throw Problem.notFound("no such client")
            }
            let (client, _) = try await clients.update(actor: who.actor, id: id, fields: try ClientForms.settings(form))
            return .done("\(client.name) is saved.")
        }
    }

    var rotateClientSecret: PageHandler {
        act(back: "/admin/clients", redisplay: platformClients) { who, form in
            let id = try ClientForms.id(form)
            guard try await clients.client(actor: who.actor, id: id).orgID == nil else { throw Problem.notFound("no such client") }
            return ClientForms.created(try await clients.rotateSecret(actor: who.actor, id: id))
        }
    }

    var deleteClient: PageHandler {
        act(back: "/admin/clients", redisplay: platformClients) { who, form in
            let id = try ClientForms.id(form)
            guard try await clients.client(actor: who.actor, id: id).orgID == nil else { throw Problem.notFound("no such client") }
            _ = try await clients.delete(actor: who.actor, id: id)
            return .done("The app is deleted; the sessions it held have ended.")
        }
    }

    // MARK: Signing keys

    func keys(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let records = try await signingKeys.signingKeys().sorted { $0.createdAt > $1.createdAt }
        var values = extra
        values["keys"] = records.map { k -> [String: Any] in
            ["kid": k.kid, "algorithm": k.algorithm, "created_at": PageFormat.date(k.createdAt),
             "state": k.retiredAt == nil ? "active" : "retired", "publish_until": k.publishUntil.map { PageFormat.date($0) } ?? "—"]
        }
        return render(request, who, "admin-keys", title: "Signing keys", tab: "/admin/signing-keys", status: status, values)
    }

    var rotate: PageHandler {
        act(back: "/admin/signing-keys", redisplay: keys) { who, _ in
            let (keys, _) = try await tokens.rotate(by: .user(who.user.id))
            let kids = keys.map { "\($0.kid) (\($0.algorithm))" }.joined(separator: ", ")
            return .done("New signing keys are active: \(kids). The old ones stay published until tokens they signed expire.")
        }
    }

    // MARK: Backup

    func backupPage(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        render(request, who, "admin-backup", title: "Backup", tab: "/admin/backup", status: status, extra)
    }

    /// A POST (with the form token), not a link: the download holds every account's hashes.
    @Sendable func download(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await kit.action(request) { who, _ in
            guard who.caller.isRoot else { return notFound(request, who) }
            let data = try BackupDocument.encode(try await backup.export(actor: who.actor))
            var response = Response(
                status: .ok,
                headers: [.contentType: "application/json", .contentDisposition: "attachment; filename=\"portcullis-backup.json\""],
                body: .init(byteBuffer: ByteBuffer(bytes: data)))
            PageRenderer.secure(&response.headers)
            return response
        }
    }
}
