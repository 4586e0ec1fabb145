import Authority
import Foundation
import Hummingbird
import Identity
import Keys
import OpenID
import Tenancy

/// The OpenID clients ("apps") an org's admins (`/orgs/{org_id}/clients`) or the root
/// (`/admin/clients`) manage: registering one (its secret shown once), a new secret, deleting.
/// The same `ClientService` use cases as `/v1/clients`.
enum ClientForms {
    static let offeredScopes = ["profile", "email", "orgs", "offline_access"]

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
             "redirect_uris": c.redirectURIs.joined(separator: " "), "scopes": c.scopes.joined(separator: " "), "first_party": c.firstParty,
             "href": "\(action)/\(c.id.lowercasedString)"]
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

    /// The settings form of one client: what it may ask for and its tokens' settings. Empty
    /// lifetimes, constants or service account go back to none (the server's defaults).
    static func settings(_ form: FormPost) throws -> ClientFields {
        func seconds(_ name: String, _ label: String) throws -> Int?? {
            let text = (form[name] ?? "").trimmingCharacters(in: .whitespaces)
            if text.isEmpty { return .some(nil) }
            guard let n = Int(text) else { throw Problem.badRequest("\(label) is a number of seconds") }
            return .some(n)
        }
        let uris = (form["redirect_uris"] ?? "").split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var constants: [String: JSONValue] = [:]
        let text = (form["constants"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        if !text.isEmpty {
            guard case .object(let given)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
                throw Problem.badRequest("the constant claims must be a JSON object, such as {\"tenant\": \"acme\"}")
            }
            constants = given
        }
        let presets = form.all("preset").filter { ClaimTemplate.Preset(rawValue: $0) != nil }
        let template: ClaimTemplate? = presets.isEmpty && constants.isEmpty ? nil : try ClientRoutes.checked {
            try ClaimTemplate.parse(.object(["presets": .array(presets.map(JSONValue.string)), "constants": .object(constants)]))
        }
        let account = (form["service_account_id"] ?? "").isEmpty ? nil : try OrgFrame.uuid(form, "service_account_id", "service account")
        return ClientFields(
            name: form["name"], redirectURIs: uris, scopes: ["openid"] + form.all("scope").filter(offeredScopes.contains),
            idTokenAlgorithm: SigningAlgorithm(rawValue: form["id_token_alg"] ?? ""),
            accessTokenLifetime: try seconds("access_token_lifetime", "The access-token lifetime"),
            refreshTokenLifetime: try seconds("refresh_token_lifetime", "The refresh-token lifetime"),
            claimTemplate: .some(template), serviceAccountID: form["service_account_id"] == nil ? nil : .some(account))
    }

    /// The values of one client's settings page; `accounts` are its org's service accounts.
    static func settingsValues(_ c: OAuthClient, action: String, accounts: [ServiceAccount]?, extra: [String: Any]) -> [String: Any] {
        var values = extra
        let presets = c.claimTemplate?.presets ?? []
        let constants: [String: JSONValue] = c.claimTemplate?.constants ?? [:]
        let access: String = c.accessTokenLifetime.map { String($0) } ?? ""
        let refresh: String = c.refreshTokenLifetime.map { String($0) } ?? ""
        let client: [String: Any] = [
            "id": c.id.lowercasedString, "name": c.name, "title": c.name, "type": c.kind.rawValue, "redirect_uris": c.redirectURIs.joined(separator: "\n"),
            "access_token_lifetime": access, "refresh_token_lifetime": refresh,
            "constants": constants.isEmpty ? "" : JSONValue.object(constants).canonicalJSON, "action": "\(action)/\(c.id.lowercasedString)",
        ]
        // After a refused save, the fields as typed.
        values["client"] = client.merging((extra["form"] as? [String: String] ?? [:]).filter {
            ["name", "redirect_uris", "access_token_lifetime", "refresh_token_lifetime", "constants"].contains($0.key)
        }) { $1 }
        values["scope_choices"] = offeredScopes.map { ["value": $0, "checked": c.scopes.contains($0)] }
        values["algorithms"] = SigningAlgorithm.allCases.reversed().map { ["value": $0.rawValue, "selected": c.idTokenAlgorithm == $0] }
        values["presets"] = ClaimTemplate.Preset.allCases.map { ["value": $0.rawValue, "checked": presets.contains($0)] }
        if let accounts, c.kind == .confidential {
            values["accounts"] = [["value": "", "text": "none (client_credentials refused)", "selected": c.serviceAccountID == nil]]
                + accounts.map { ["value": $0.id.lowercasedString, "text": "\($0.name) (\($0.role.rawValue))", "selected": c.serviceAccountID == $0.id] }
        }
        values["back_href"] = action
        return values
    }

    /// The client id at the end of a settings page's path.
    static func pathID(_ request: Request) -> UUID? {
        request.uri.path.split(separator: "/").last.flatMap { UUIDText.parse(String($0)) }
    }

    static func id(_ form: FormPost) throws -> UUID {
        guard let id = form["client_id"].flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such client") }
        return id
    }
}

/// An org's apps: `/orgs/{org_id}/clients`, for who may update the org.
struct OrgClientPages: Sendable {
    let frame: OrgFrame
    let clients: ClientService
    let keys: KeyService

    /// One app's settings: `/orgs/{org_id}/clients/{client_id}`.
    func settings(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        guard let id = ClientForms.pathID(request), let client = try? await clients.client(actor: visit.who.actor, id: id), client.orgID == visit.org.id else {
            return frame.render(request, visit, "message", title: "No such app", tab: "clients", status: .notFound, [
                "paragraphs": ["This app is not registered in this org."], "link_href": visit.orgPath + "/clients", "link_text": "Apps",
            ])
        }
        let accounts = try? await keys.serviceAccounts(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0).0
        let values = ClientForms.settingsValues(client, action: visit.orgPath + "/clients", accounts: accounts ?? [], extra: extra)
        return frame.render(request, visit, "client", title: client.name, tab: "clients", status: status, values)
    }

    var update: PageHandler {
        frame.act(back: "clients", redisplay: settings) { visit, form, context in
            let id = try TenancyRoutes.pathID(context, "client_id", "client")
            guard try await clients.client(actor: visit.who.actor, id: id).orgID == visit.org.id else { throw Problem.notFound("no such client") }
            let (client, _) = try await clients.update(actor: visit.who.actor, id: id, fields: try ClientForms.settings(form))
            return .done("\(client.name) is saved.")
        }
    }

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
