import Authority
import Foundation
import Hummingbird
import Identity
import Invites
import Tenancy

/// The frame of every `/orgs/{org_id}/…` page: the org, what the signed-in person may do there
/// (`OrgAbilities`, so only allowed choices are offered), and the org's tabs.
struct OrgFrame: Sendable {
    let kit: PageKit
    let tenancy: TenancyService

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

    /// Runs an org form: forged posts refused, the signed-in person's abilities looked up.
    func act(_ request: Request, _ context: AppRequestContext, _ body: @escaping (Visit, FormPost) async throws -> Response) async throws -> Response {
        try await kit.action(request) { who, form in try await enter(request, context, who) { try await body($0, form) } }
    }

    func enter(_ request: Request, _ context: AppRequestContext, _ who: SignedIn, _ body: (Visit) async throws -> Response) async throws -> Response {
        guard let id = context.parameters.get("org_id").flatMap(UUID.init(uuidString:)) else { return notFound(request, who) }
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
        tabs.append(contentsOf: [("access", "Access"), ("service-accounts", "Service accounts")])
        if visit.abilities.may(Permission.auditRead) { tabs.append(("audit", "Audit log")) }
        tabs.append(contentsOf: [("settings", "Settings"), ("explain", "Explain")])
        var values = values
        values["wide"] = true
        values["section"] = visit.org.name
        values["org"] = ["id": visit.org.id.lowercasedString, "name": visit.org.name, "path": path, "role": visit.abilities.role?.rawValue ?? "platform admin"]
        values["tabs"] = tabs.map { ["href": "\(path)/\($0.0)", "label": $0.1, "current": $0.0 == tab] }
        return kit.page(request, visit.who, template, title: "\(title) · \(visit.org.name)", status: status, values)
    }

    /// An org form that ends in a redirect with a notice, or on failure in `redisplay` with the
    /// error in place and the fields kept.
    func act(
        _ request: Request, _ context: AppRequestContext, back: String,
        redisplay: @escaping (Request, Visit, [String: Any], HTTPResponse.Status) async throws -> Response,
        _ body: @escaping (Visit, FormPost) async throws -> String
    ) async throws -> Response {
        try await act(request, context) { visit, form in
            do {
                return kit.redirect("\(visit.orgPath)/\(back)", notice: try await body(visit, form))
            } catch {
                let (message, status) = PageKit.failure(error, context)
                return try await redisplay(request, visit, ["error": message, "form": form.fields], status)
            }
        }
    }

    static func uuid(_ form: FormPost, _ name: String, _ what: String) throws -> UUID {
        guard let id = form[name].flatMap(UUID.init(uuidString:)) else { throw Problem.notFound("no such \(what)") }
        return id
    }

    static func role(_ form: FormPost, _ name: String = "role") throws -> Role {
        guard let role = form[name].flatMap(Role.init(rawValue:)) else { throw Problem.badRequest("role must be one of viewer, editor, admin, owner") }
        return role
    }
}

/// Members and invites of an org: `/orgs/{org_id}` (members), `/orgs/{org_id}/invites`.
struct OrgPeoplePages: Sendable {
    let frame: OrgFrame
    let tenancy: TenancyService
    let invites: InviteService

    @Sendable func membersPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.visit(request, context) { try await members(request, $0, [:], .ok) }
    }

    func members(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await tenancy.members(actor: visit.who.actor, orgID: visit.org.id, limit: page.limit, offset: page.offset)
        let me = visit.who.user.id
        var values = extra
        values["members"] = items.map { m -> [String: Any] in
            let role = m.membership.role
            let choices = m.membership.userID == me ? [] : visit.abilities.roleChoices(for: role)
            return [
                "user_id": m.membership.userID.lowercasedString, "name": m.name.isEmpty ? "—" : m.name, "email": m.email, "role": role.rawValue,
                "expires_at": m.membership.expiresAt.map { PageFormat.date($0) } as Any, "is_me": m.membership.userID == me,
                "choices": choices.count > 1 ? PageFormat.roleOptions(choices, selected: role) : [],
                "removable": m.membership.userID == me || visit.abilities.mayRemove(role),
            ]
        }
        let grantable = visit.abilities.grantableRoles
        values["may_add"] = !grantable.isEmpty
        values["roles"] = PageFormat.roleOptions(grantable, selected: .viewer)
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/members", page: page, total: total)
        return frame.render(request, visit, "org-members", title: "Members", tab: "members", status: status, values)
    }

    /// By e-mail: a proven address of an account becomes a member at once; any other address
    /// gets an invite (the same `addMember` the API runs).
    @Sendable func addMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "members", redisplay: members) { visit, form in
            guard let email = Email.canonical(form["email"] ?? "") else { throw Problem.badRequest("email is not a valid e-mail address") }
            let outcome = try await invites.addMember(
                by: InviteService.Invitee(actor: visit.who.actor, email: visit.who.user.email), orgID: visit.org.id,
                target: .email(email), role: try OrgFrame.role(form), expiresAt: nil)
            switch outcome {
            case .added(let member, _): return "\(member.email) is now a member (\(member.membership.role.rawValue))."
            case .invited(let invite, _): return "\(invite.email) has no proven account here yet, so an invitation was mailed."
            }
        }
    }

    @Sendable func changeRole(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "members", redisplay: members) { visit, form in
            let (member, _) = try await tenancy.updateMember(
                actor: visit.who.actor, orgID: visit.org.id, userID: try OrgFrame.uuid(form, "user_id", "member"),
                patch: MemberPatch(role: .set(try OrgFrame.role(form))))
            return "\(member.email) is now \(member.membership.role.rawValue)."
        }
    }

    @Sendable func removeMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context) { visit, form in
            do {
                let userID = try OrgFrame.uuid(form, "user_id", "member")
                _ = try await tenancy.removeMember(actor: visit.who.actor, orgID: visit.org.id, userID: userID)
                if userID == visit.who.user.id { return frame.kit.redirect("/account/orgs", notice: "You left \(visit.org.name).") }
                return frame.kit.redirect(visit.orgPath + "/members", notice: "The member is removed.")
            } catch {
                let (message, status) = PageKit.failure(error, context)
                return try await members(request, visit, ["error": message], status)
            }
        }
    }

    // MARK: Invites

    @Sendable func invitesPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.visit(request, context) { try await invitesList(request, $0, [:], .ok) }
    }

    func invitesList(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let stateText = request.uri.queryParameters.get("state") ?? ""
        let state = InviteState(rawValue: stateText)
        let (items, total) = try await invites.list(
            by: InviteService.Invitee(actor: visit.who.actor, email: visit.who.user.email), orgID: visit.org.id, state: state,
            limit: page.limit, offset: page.offset)
        let now = Date()
        var values = extra
        values["invites"] = items.map { i -> [String: Any] in
            let current = i.state(at: now)
            return ["id": i.id.lowercasedString, "email": i.email, "role": i.role.rawValue, "state": current.rawValue,
                    "pending": current == .pending, "dormant": i.dormant, "expires_at": PageFormat.date(i.expiresAt)]
        }
        values["states"] = ([""] + InviteState.allCases.map(\.rawValue)).map { ["value": $0, "label": $0.isEmpty ? "any state" : $0, "selected": $0 == (state?.rawValue ?? "")] }
        let grantable = visit.abilities.grantableRoles
        values["may_invite"] = visit.abilities.may(Permission.invitesWrite) && !grantable.isEmpty
        values["roles"] = PageFormat.roleOptions(grantable, selected: .viewer)
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/invites", page: page, total: total, query: ["state": state?.rawValue ?? ""])
        return frame.render(request, visit, "org-invites", title: "Invites", tab: "invites", status: status, values)
    }

    @Sendable func createInvite(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "invites", redisplay: invitesList) { visit, form in
            let (invite, _) = try await invites.create(
                by: InviteService.Invitee(actor: visit.who.actor, email: visit.who.user.email), orgID: visit.org.id,
                email: form["email"] ?? "", role: try OrgFrame.role(form))
            return "An invitation to \(invite.email) (\(invite.role.rawValue)) is on its way."
        }
    }

    @Sendable func resendInvite(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "invites", redisplay: invitesList) { visit, form in
            let (invite, _) = try await invites.resend(
                by: InviteService.Invitee(actor: visit.who.actor, email: visit.who.user.email), id: try OrgFrame.uuid(form, "invite_id", "invite"))
            return "The invitation to \(invite.email) was sent again, with a new link."
        }
    }

    @Sendable func revokeInvite(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "invites", redisplay: invitesList) { visit, form in
            _ = try await invites.revoke(
                by: InviteService.Invitee(actor: visit.who.actor, email: visit.who.user.email), id: try OrgFrame.uuid(form, "invite_id", "invite"))
            return "The invitation is revoked; its link no longer works."
        }
    }
}
