import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// Role bindings on an org's resources (`/orgs/{org_id}/access`): who holds what beyond membership.
struct OrgBindingPages: Sendable {
    let frame: OrgFrame
    let bindings: BindingService
    let groups: GroupService

    func access(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await bindings.list(actor: visit.who.actor, orgID: visit.org.id, limit: page.limit, offset: page.offset)
        var names = try await frame.principalNames(visit)
        let all = try await groups.list(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0).0
        for g in all { names[g.id] = "group \(g.name)" }
        let mayBind = visit.abilities.may(Permission.bindingsWrite)
        var values = extra
        values["bindings"] = items.map { b -> [String: Any] in
            ["id": b.id.lowercasedString, "subject": names[b.principal.id] ?? "\(b.principal.typeName) \(b.principal.id.lowercasedString)",
             "resource": b.resource.string, "role": b.role.rawValue, "expires_at": b.expiresAt.map { PageFormat.date($0) } ?? "never",
             "removable": mayBind]
        }
        values["may_bind"] = mayBind
        let groupIDs = Set(all.map(\.id))
        values["subjects"] = names.sorted { $0.value < $1.value }.map { id, label in
            ["value": groupIDs.contains(id) ? "group:\(id.lowercasedString)" : OrgFrame.principalValue(id, names), "label": label]
        }
        values["roles"] = PageFormat.roleOptions(visit.abilities.grantRoles, selected: .viewer)
        values["resource_example"] = "org:\(visit.org.id.lowercasedString)/project:apollo"
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/access", page: page, total: total)
        return frame.render(request, visit, "org-access", title: "Access", tab: "access", status: status, values)
    }

    var setBinding: PageHandler {
        frame.act(back: "access", redisplay: access) { visit, form, _ in
            let principal = try OrgGroupPages.principal(form["subject"])
            let resource = try ObjectRef.parse(form["resource"] ?? "")
            let (binding, created, _) = try await bindings.set(
                actor: visit.who.actor, orgID: visit.org.id, principal: principal, resource: resource.string,
                role: try OrgFrame.role(form), expiresAt: nil)
            return .done(created ? "The binding on \(binding.resource.string) is made." : "The binding on \(binding.resource.string) is changed.")
        }
    }

    var removeBinding: PageHandler {
        frame.act(back: "access", redisplay: access) { visit, form, _ in
            _ = try await bindings.remove(actor: visit.who.actor, orgID: visit.org.id, bindingID: try OrgFrame.uuid(form, "binding_id", "binding"))
            return .done("The binding is removed.")
        }
    }
}
