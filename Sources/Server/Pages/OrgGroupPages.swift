import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// An org's groups and overrides in the console (SPEC §17): `/orgs/{org_id}/groups` (everyone in
/// the org reads them; admins change them), one group's page with its members and bindings, and
/// `/orgs/{org_id}/overrides` (admins). The same use cases as `/v1/orgs/{org_id}/groups` and `/overrides`.
struct OrgGroupPages: Sendable {
    let frame: OrgFrame
    let groups: GroupService
    let overrides: OverrideService
    let bindings: BindingService

    /// The forms of a group's page: `…/groups/{group_id}/<form>`.
    static let forms = ["save", "member", "remove-member", "bind", "unbind", "delete"]

    /// The org's groups (first 100 by name), each with its depth for the tree's indentation.
    func tree(_ visit: OrgFrame.Visit) async throws -> [Group] {
        try await groups.list(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0).0
    }

    static func ordered(_ all: [Group]) -> [(Group, depth: Int)] {
        let children = Dictionary(grouping: all.filter { $0.parentID != nil }, by: { $0.parentID! })
        let known = Set(all.map(\.id))
        var out: [(Group, depth: Int)] = []
        func walk(_ g: Group, _ depth: Int) {
            out.append((g, depth))
            for c in children[g.id] ?? [] { walk(c, depth + 1) }
        }
        for g in all where g.parentID == nil || !known.contains(g.parentID!) { walk(g, 0) }
        return out
    }

    static func parentOptions(_ all: [Group], selected: UUID?, excluding: UUID? = nil) -> [[String: Any]] {
        [["value": "", "label": "(none: a top-level group)", "selected": selected == nil]]
            + ordered(all).filter { $0.0.id != excluding }.map { g, depth in
                ["value": g.id.lowercasedString, "label": String(repeating: "— ", count: depth) + g.name, "selected": g.id == selected]
            }
    }

    func list(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let all = try await tree(visit)
        var values = extra
        values["groups"] = Self.ordered(all).map { g, depth -> [String: Any] in
            ["name": g.name, "description": g.description, "href": "\(visit.orgPath)/groups/\(g.id.lowercasedString)",
             "prefix": String(repeating: "— ", count: depth), "parent": g.parentID.flatMap { p in all.first { $0.id == p }?.name } ?? ""]
        }
        values["may_write"] = visit.abilities.may(Permission.membersWrite)
        values["parents"] = Self.parentOptions(all, selected: Self.optionalID(PageFormat.typed(extra, "parent_id")))
        return frame.render(request, visit, "org-groups", title: "Groups", tab: "groups", status: status, values)
    }

    var create: PageHandler {
        frame.act(back: "groups", redisplay: list) { visit, form, _ in
            let (group, _) = try await groups.create(actor: visit.who.actor, orgID: visit.org.id, fields: GroupService.Fields(
                name: form["name"] ?? "", description: form["description"], parentID: .some(Self.optionalID(form["parent_id"]))))
            return .goTo("\(visit.orgPath)/groups/\(group.id.lowercasedString)", notice: "The group \(group.name) is made.")
        }
    }

    static func optionalID(_ text: String?) -> UUID? {
        guard let text, !text.isEmpty else { return nil }
        return UUIDText.parse(text)
    }

    /// The group id after `groups/` in a page's path.
    static func pathID(_ request: Request) -> UUID? {
        let parts = request.uri.path.split(separator: "/")
        guard let at = parts.firstIndex(of: "groups"), at + 1 < parts.count else { return nil }
        return UUIDText.parse(String(parts[at + 1]))
    }

    func group(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        guard let id = Self.pathID(request), let group = try? await groups.get(actor: visit.who.actor, orgID: visit.org.id, groupID: id) else {
            return frame.render(request, visit, "message", title: "No such group", tab: "groups", status: .notFound, [
                "paragraphs": ["This group does not belong to this org."], "link_href": visit.orgPath + "/groups", "link_text": "Groups",
            ])
        }
        let all = try await tree(visit)
        let (members, total) = try await groups.members(actor: visit.who.actor, orgID: visit.org.id, groupID: id, limit: 100, offset: 0)
        let mayWrite = visit.abilities.may(Permission.membersWrite), mayBind = visit.abilities.may(Permission.bindingsWrite)
        let names = try await frame.principalNames(visit)
        let path = "\(visit.orgPath)/groups/\(id.lowercasedString)"
        var values = extra
        var shown: [String: Any] = ["id": id.lowercasedString, "name": group.name, "path": path]
        // Mustache takes an empty string as true: optional parts are set only when present.
        if !group.description.isEmpty { shown["description"] = group.description }
        if let p = group.parentID, let parent = all.first(where: { $0.id == p }) {
            shown["parent"] = ["name": parent.name, "href": "\(visit.orgPath)/groups/\(p.lowercasedString)"]
        }
        values["group"] = shown
        values["members"] = members.map { m -> [String: Any] in
            var row: [String: Any] = ["id": m.member.id.lowercasedString, "label": m.label ?? m.member.id.lowercasedString,
                                      "kind": m.member.typeName.replacingOccurrences(of: "_", with: " "),
                                      "expires_at": m.expiresAt.map { PageFormat.date($0) } ?? "never", "removable": mayWrite]
            if case .group(let child) = m.member { row["href"] = "\(visit.orgPath)/groups/\(child.lowercasedString)" }
            return row
        }
        values["member_total"] = String(total)
        values["may_write"] = mayWrite
        values["may_bind"] = mayBind
        let member = PageFormat.typed(extra, "member")
        values["candidates"] = names.sorted { $0.value < $1.value }.map { key, label -> [String: Any] in
            let value = OrgFrame.principalValue(key, names)
            return ["value": value, "label": label, "selected": value == member]
        }
        // After a refused form, the choices as they were sent; else as stored.
        let typedParent = PageFormat.typed(extra, "parent_id")
        values["parents"] = Self.parentOptions(all, selected: typedParent.map { Self.optionalID($0) } ?? group.parentID, excluding: id)
        if mayBind {
            let (bound, _) = try await bindings.list(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0)
            values["bindings"] = bound.filter { $0.principal == .group(id) }.map { b -> [String: Any] in
                ["id": b.id.lowercasedString, "resource": b.resource.string, "role": b.role.rawValue,
                 "expires_at": b.expiresAt.map { PageFormat.date($0) } ?? "never"]
            }
            values["roles"] = PageFormat.roleOptions(visit.abilities.grantRoles, selected: .viewer)
            values["resource_example"] = "org:\(visit.org.id.lowercasedString)/project:apollo"
        }
        return frame.render(request, visit, "org-group", title: group.name, tab: "groups", status: status, values)
    }

    func act(_ what: String) -> PageHandler {
        frame.act(back: "groups", redisplay: group) { visit, form, context in
            let id = try TenancyRoutes.pathID(context, "group_id", "group")
            let actor = visit.who.actor, org = visit.org.id
            let page = "\(visit.orgPath)/groups/\(id.lowercasedString)"
            switch what {
            case "save":
                _ = try await groups.update(actor: actor, orgID: org, groupID: id, fields: GroupService.Fields(
                    name: form["name"], description: form["description"], parentID: .some(Self.optionalID(form["parent_id"]))))
                return .goTo(page, notice: "The group is saved.")
            case "member":
                let member = try Self.principal(form["member"])
                let (_, created, _) = try await groups.setMember(actor: actor, orgID: org, groupID: id, member: member, expiresAt: try Self.date(form["expires_at"]))
                return .goTo(page, notice: created ? "The member is added." : "The membership is changed.")
            case "remove-member":
                _ = try await groups.removeMember(actor: actor, orgID: org, groupID: id, memberID: try OrgFrame.uuid(form, "member_id", "member"))
                return .goTo(page, notice: "The member is removed from the group.")
            case "bind":
                let resource = try ObjectRef.parse(form["resource"] ?? "")
                _ = try await bindings.set(actor: actor, orgID: org, principal: .group(id), resource: resource.string, role: try OrgFrame.role(form), expiresAt: nil)
                return .goTo(page, notice: "The group's binding on \(resource.string) is set.")
            case "unbind":
                _ = try await bindings.remove(actor: actor, orgID: org, bindingID: try OrgFrame.uuid(form, "binding_id", "binding"))
                return .goTo(page, notice: "The binding is removed.")
            case "delete":
                _ = try await groups.delete(actor: actor, orgID: org, groupID: id)
                return .goTo("\(visit.orgPath)/groups", notice: "The group is deleted.")
            default:
                throw Problem.notFound("no such form")
            }
        }
    }

    /// `user:<id>`, `service_account:<id>` or `group:<id>` from a picker.
    static func principal(_ value: String?) throws -> Principal {
        let parts = (value ?? "").split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let id = UUIDText.parse(parts[1]), let p = Principal(typeName: parts[0], id: id) else {
            throw Problem.badRequest("choose a member")
        }
        return p
    }

    /// A `datetime-local` or date field, read as UTC; empty is none.
    static func date(_ text: String?) throws -> Date? {
        guard let text = text?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        let formats = ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd"]
        for format in formats {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = format
            if let d = f.date(from: text) { return d }
        }
        throw Problem.badRequest("expires must be a date (YYYY-MM-DD, UTC)")
    }

    // MARK: Overrides

    func overridesPage(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await overrides.list(actor: visit.who.actor, orgID: visit.org.id, limit: page.limit, offset: page.offset)
        let names = try await frame.principalNames(visit)
        let all = try await tree(visit)
        let groupNames = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0.name) })
        func label(_ p: Principal) -> String {
            if case .group(let g) = p { return "group \(groupNames[g] ?? g.lowercasedString)" }
            return names[p.id] ?? "\(p.typeName) \(p.id.lowercasedString)"
        }
        var values = extra
        values["overrides"] = items.map { o -> [String: Any] in
            ["id": o.id.lowercasedString, "subject": label(o.subject), "resource": o.resource.string, "permission": o.permission,
             "effect": o.effect.rawValue, "deny": o.effect == .deny, "reason": o.reason,
             "expires_at": o.expiresAt.map { PageFormat.date($0) } ?? "never"]
        }
        let subject = PageFormat.typed(extra, "subject"), permission = PageFormat.typed(extra, "permission")
        let people = names.sorted { $0.value < $1.value }.map { (OrgFrame.principalValue($0.key, names), $0.value) }
        let teams = Self.ordered(all).map { g, _ in ("group:\(g.id.lowercasedString)", "group \(g.name)") }
        values["subjects"] = (people + teams).map { ["value": $0.0, "label": $0.1, "selected": $0.0 == subject] }
        values["permissions"] = overrides.tenancy.permissions.leastRole.keys.sorted().map { ["value": $0, "selected": $0 == permission] }
        values["allow_checked"] = PageFormat.typed(extra, "effect") == "allow"
        values["resource_example"] = "org:\(visit.org.id.lowercasedString)/project:apollo"
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/overrides", page: page, total: total)
        return frame.render(request, visit, "org-overrides", title: "Overrides", tab: "overrides", status: status, values)
    }

    var createOverride: PageHandler {
        frame.act(back: "overrides", redisplay: overridesPage) { visit, form, _ in
            let effect = OverrideGrant.Effect(rawValue: form["effect"] ?? "") ?? .deny
            let resource = try ObjectRef.parse(form["resource"] ?? "")
            _ = try await overrides.create(actor: visit.who.actor, orgID: visit.org.id, fields: OverrideService.Fields(
                subject: try Self.principal(form["subject"]), resource: resource.string, permission: form["permission"] ?? "", effect: effect,
                expiresAt: try Self.date(form["expires_at"]), reason: form["reason"] ?? ""))
            return .done("The \(effect.rawValue) of \(form["permission"] ?? "") on \(resource.string) is set.")
        }
    }

    var removeOverride: PageHandler {
        frame.act(back: "overrides", redisplay: overridesPage) { visit, form, _ in
            _ = try await overrides.remove(actor: visit.who.actor, orgID: visit.org.id, overrideID: try OrgFrame.uuid(form, "override_id", "override"))
            return .done("The override is removed.")
        }
    }
}
