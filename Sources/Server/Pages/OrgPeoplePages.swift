import Authority
import Foundation
import Hummingbird
import Identity
import Invites
import Keys
import Tenancy

/// Members and invites of an org: `/orgs/{org_id}` (members), `/orgs/{org_id}/invites`.
struct OrgPeoplePages: Sendable {
    let frame: OrgFrame
    let tenancy: TenancyService
    let invites: InviteService

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
        values["roles"] = PageFormat.roleOptions(grantable, selected: PageFormat.typed(extra, "role").flatMap(Role.init(rawValue:)) ?? .viewer)
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/members", page: page, total: total)
        return frame.render(request, visit, "org-members", title: "Members", tab: "members", status: status, values)
    }

    static func invitee(_ visit: OrgFrame.Visit) -> InviteService.Invitee {
        InviteService.Invitee(actor: visit.who.actor, email: visit.who.user.email)
    }

    /// By e-mail: a proven address of an account becomes a member at once; any other address
    /// gets an invite (the same `addMember` the API runs).
    var addMember: PageHandler {
        frame.act(back: "members", redisplay: members) { visit, form, _ in
            guard let email = Email.canonical(form["email"] ?? "") else { throw Problem.badRequest("email is not a valid e-mail address") }
            let outcome = try await invites.addMember(
                by: Self.invitee(visit), orgID: visit.org.id, target: .email(email), role: try OrgFrame.role(form), expiresAt: nil)
            switch outcome {
            case .added(let member, _): return .done("\(member.email) is now a member (\(member.membership.role.rawValue)).")
            case .invited(let invite, _): return .done("\(invite.email) has no proven account here yet, so an invitation was mailed.")
            }
        }
    }

    var changeRole: PageHandler {
        frame.act(back: "members", redisplay: members) { visit, form, _ in
            let (member, _) = try await tenancy.updateMember(
                actor: visit.who.actor, orgID: visit.org.id, userID: try OrgFrame.uuid(form, "user_id", "member"),
                patch: MemberPatch(role: .set(try OrgFrame.role(form))))
            return .done("\(member.email) is now \(member.membership.role.rawValue).")
        }
    }

    var removeMember: PageHandler {
        frame.act(back: "members", redisplay: members) { visit, form, _ in
            let userID = try OrgFrame.uuid(form, "user_id", "member")
            _ = try await tenancy.removeMember(actor: visit.who.actor, orgID: visit.org.id, userID: userID)
            return userID == visit.who.user.id ? .goTo("/account/orgs", notice: "You left \(visit.org.name).") : .done("The member is removed.")
        }
    }

    // MARK: Invites

    func invitesList(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let state = InviteState(rawValue: request.uri.queryParameters.get("state") ?? "")
        let (items, total) = try await invites.list(by: Self.invitee(visit), orgID: visit.org.id, state: state, limit: page.limit, offset: page.offset)
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
        values["roles"] = PageFormat.roleOptions(grantable, selected: PageFormat.typed(extra, "role").flatMap(Role.init(rawValue:)) ?? .viewer)
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/invites", page: page, total: total, query: ["state": state?.rawValue ?? ""])
        return frame.render(request, visit, "org-invites", title: "Invites", tab: "invites", status: status, values)
    }

    var createInvite: PageHandler {
        frame.act(back: "invites", redisplay: invitesList) { visit, form, _ in
            let (invite, _) = try await invites.create(by: Self.invitee(visit), orgID: visit.org.id, email: form["email"] ?? "", role: try OrgFrame.role(form))
            return .done("An invitation to \(invite.email) (\(invite.role.rawValue)) is on its way.")
        }
    }

    /// An invite of this org named by the form (another org's, even one the person also
    /// administers, is not found here: the page and the change must be about the same org).
    func invite(_ visit: OrgFrame.Visit, _ form: FormPost) async throws -> UUID {
        let id = try OrgFrame.uuid(form, "invite_id", "invite")
        guard try await invites.get(by: Self.invitee(visit), id: id).orgID == visit.org.id else { throw Problem.notFound("no such invite") }
        return id
    }

    var resendInvite: PageHandler {
        frame.act(back: "invites", redisplay: invitesList) { visit, form, _ in
            let (invite, _) = try await invites.resend(by: Self.invitee(visit), id: try await invite(visit, form))
            return .done("The invitation to \(invite.email) was sent again, with a new link.")
        }
    }

    var revokeInvite: PageHandler {
        frame.act(back: "invites", redisplay: invitesList) { visit, form, _ in
            _ = try await invites.revoke(by: Self.invitee(visit), id: try await invite(visit, form))
            return .done("The invitation is revoked; its link no longer works.")
        }
    }
}
