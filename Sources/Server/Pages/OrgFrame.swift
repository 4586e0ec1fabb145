import Authority
import Foundation
import Hummingbird
import Identity
import Invites
import Keys
import Tenancy

/// The frame of every `/orgs/{org_id}/…` page: the org, what the signed-in person may do there
/// (`OrgAbilities`, so only allowed choices are offered), and the org's tabs.
struct OrgFrame: Sendable {
    let kit: PageKit
    let tenancy: TenancyService
    let keys: KeyService

    struct Visit: Sendable {
        let who: SignedIn
        let abilities: OrgAbilities
        var org: Org { abilities.org }
        var orgPath: String { "/orgs/\(org.id.lowercasedString)" }
    }

    /// Runs an org page for a signed-in person who may see the org (404 page otherwise).
    func visit(_ request: Request, _ context: AppRequestContext, _ body: (Visit) async throws -> Response) async throws -> Response {
        try await kit.signedInPage(request) { who in try await enter(request, context, who, body) }
    }

    /// An org page (`render` with no extra values).
    func page(_ render: @escaping PageRender<Visit>) -> PageHandler {
        { request, context in
            try await visit(request, context) { visit in
                try await kit.showing(request, visit.who, link: (visit.orgPath, visit.org.name)) { try await render(request, visit, [:], .ok) }
            }
        }
    }

    /// An org form whose page is `back` below the org's path: forged posts refused, the signed-in
    /// person's abilities looked up, then `PageKit.finish`.
    func act(
        back: String, redisplay: @escaping PageRender<Visit>,
        _ body: @escaping @Sendable (Visit, FormPost, AppRequestContext) async throws -> FormOutcome
    ) -> PageHandler {
        { request, context in
            try await kit.action(request) { who, form in
                try await enter(request, context, who) { visit in
                    try await kit.finish(request, context, visit, form, back: "\(visit.orgPath)/\(back)", redisplay: redisplay) {
                        try await body(visit, form, context)
                    }
                }
            }
        }
    }

    /// The members and service accounts of the org by id, named for people (first 100 of each).
    func principalNames(_ visit: Visit) async throws -> [UUID: String] {
        var names: [UUID: String] = [:]
        let (members, _) = try await tenancy.members(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0)
        for m in members { names[m.membership.userID] = m.name.isEmpty ? m.email : "\(m.name) <\(m.email)>" }
        if let (accounts, _) = try? await keys.serviceAccounts(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0) {
            for a in accounts { names[a.id] = "service account \(a.name)" }
        }
        return names
    }

    /// A subject picker's value: `user:<id>` or `service_account:<id>`.
    static func principalValue(_ id: UUID, _ names: [UUID: String]) -> String {
        (names[id]?.hasPrefix("service account ") == true ? "service_account:" : "user:") + id.lowercasedString
    }

    func enter(_ request: Request, _ context: AppRequestContext, _ who: SignedIn, _ body: (Visit) async throws -> Response) async throws -> Response {
        guard let id = context.parameters.get("org_id").flatMap({ UUIDText.parse($0) }) else { return notFound(request, who) }
        let abilities: OrgAbilities
        do {
            abilities = try await tenancy.abilities(actor: who.actor, orgID: id)
        } catch {
            if Problem.from(error)?.status == .notFound { return notFound(request, who) }
            throw error
        }
        return try await body(Visit(who: who, abilities: abilities))
    }

    func notFound(_ request: Request, _ who: SignedIn) -> Response {
        kit.page(request, who, "message", title: "No such org", status: .notFound, [
            "paragraphs": ["This org does not exist, or you are not a member of it."], "link_href": "/account/orgs", "link_text": "Your orgs",
        ])
    }

    /// Renders an org page with its tabs (only those the person may open).
    func render(
        _ request: Request, _ visit: Visit, _ template: String, title: String, tab: String,
        status: HTTPResponse.Status = .ok, _ values: [String: Any]
    ) -> Response {
        let path = visit.orgPath
        var tabs: [(String, String)] = [("members", "Members")]
        if visit.abilities.may(Permission.invitesRead) { tabs.append(("invites", "Invites")) }
        tabs.append(("groups", "Groups"))
        if visit.abilities.may(Permission.bindingsWrite) { tabs.append(contentsOf: [("access", "Access"), ("overrides", "Overrides")]) }
        if visit.abilities.may(Permission.serviceAccountsWrite) { tabs.append(("service-accounts", "Service accounts")) }
        if visit.abilities.may(Permission.auditRead) { tabs.append(("audit", "Audit log")) }
        if visit.abilities.may(Permission.orgUpdate) { tabs.append(contentsOf: [("clients", "Apps"), ("webhooks", "Webhooks")]) }
        tabs.append(contentsOf: [("settings", "Settings"), ("explain", "Explain")])
        var values = values
        values["wide"] = true
        values["section"] = visit.org.name
        // The window's title names the org; a message page's heading is the title alone.
        values["heading"] = title
        values["org"] = ["id": visit.org.id.lowercasedString, "name": visit.org.name, "path": path, "role": visit.abilities.role?.rawValue ?? "platform admin"]
        values["tabs"] = tabs.map { ["href": "\(path)/\($0.0)", "label": $0.1, "current": $0.0 == tab] }
        return kit.page(request, visit.who, template, title: "\(title) · \(visit.org.name)", status: status, values)
    }

    static func uuid(_ form: FormPost, _ name: String, _ what: String) throws -> UUID {
        guard let id = form[name].flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such \(what)") }
        return id
    }

    static func role(_ form: FormPost, _ name: String = "role") throws -> Role {
        guard let role = form[name].flatMap(Role.init(rawValue:)) else { throw Problem.badRequest("role must be one of viewer, editor, admin, owner") }
        return role
    }
}
