import Authority
import Foundation
import Hummingbird
import OpenID
import Tenancy

/// The OpenID clients ("apps") an org's admins (`/orgs/{org_id}/clients`) or the root
/// (`/admin/clients`) manage: registering one (its secret shown once), a new secret, deleting.
/// The same `ClientService` use cases as `/v1/clients`.
enum ClientForms {
    static let offeredScopes = ["profile", "email", "orgs"]

    /// A registration form: name, type, one redirect URI per line, the scopes ticked (openid
    /// always), and first-party (offered to the root only; the service decides).
    static func fields(_ form: FormPost) -> ClientFields {
        let uris = (form["redirect_uris"] ?? "").split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return ClientFields(
            name: form["name"] ?? "", kind: OAuthClient.Kind(rawValue: form["type"] ?? "") ?? .confidential, redirectURIs: uris,
            scopes: ["openid"] + form.all("scope").filter(offeredScopes.contains), firstParty: form["first_party"] == "1")
    }

    static func values(_ clients: [OAuthClient], action: String, actor: Actor, extra: [String: Any]) -> [String: Any] {
        var values = extra
        values["clients"] = clients.map { c -> [String: Any] in
            ["id": c.id.lowercasedString, "name": c.name, "type": c.kind.rawValue, "confidential": c.kind == .confidential,
             "redirect_uris": c.redirectURIs.joined(separator: " "), "scopes": c.scopes.joined(separator: " "), "first_party": c.firstParty]
        }
        values["client_action"] = action
        values["may_first_party"] = actor.isRoot
        values["scope_choices"] = offeredScopes.map { ["value": $0] }
        return values
    }

    static func created(_ registered: RegisteredClient) -> FormOutcome {
        var shown: [String: Any] = ["name": registered.client.name, "client_id": registered.client.id.lowercasedString]
        if let secret = registered.secret { shown["secret"] = secret }
        return .show(["created_client": shown], .created)
    }

    static func id(_ form: FormPost) throws -> UUID {
        guard let id = form["client_id"].flatMap(UUID.init(uuidString:)) else { throw Problem.notFound("no such client") }
        return id
    }
}

/// An org's apps: `/orgs/{org_id}/clients`, for who may update the org.
struct OrgClientPages: Sendable {
    let frame: OrgFrame
    let clients: ClientService

    func list(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let (items, _) = try await clients.clients(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0)
        let values = ClientForms.values(items, action: visit.orgPath + "/clients", actor: visit.who.actor, extra: extra)
        return frame.render(request, visit, "clients", title: "Apps", tab: "clients", status: status, values)
    }

    var create: PageHandler {
        frame.act(back: "clients", redisplay: list) { visit, form, _ in
            ClientForms.created(try await clients.create(actor: visit.who.actor, orgID: visit.org.id, fields: ClientForms.fields(form)))
        }
    }

    var rotate: PageHandler {
        frame.act(back: "clients", redisplay: list) { visit, form, _ in
            let id = try ClientForms.id(form)
            guard try await clients.client(actor: visit.who.actor, id: id).orgID == visit.org.id else { throw Problem.notFound("no such client") }
            return ClientForms.created(try await clients.rotateSecret(actor: visit.who.actor, id: id))
        }
    }

    var delete: PageHandler {
        frame.act(back: "clients", redisplay: list) { visit, form, _ in
            let id = try ClientForms.id(form)
            guard try await clients.client(actor: visit.who.actor, id: id).orgID == visit.org.id else { throw Problem.notFound("no such client") }
            _ = try await clients.delete(actor: visit.who.actor, id: id)
            return .done("The app is deleted; the sessions it held have ended.")
        }
    }
}
