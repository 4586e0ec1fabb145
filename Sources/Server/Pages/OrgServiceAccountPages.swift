import Authority
import Foundation
import Hummingbird
import Identity
import Keys
import Tenancy

/// An org's service accounts (`/orgs/{org_id}/service-accounts`) and each one's keys
/// (`/orgs/{org_id}/service-accounts/{account_id}`, whose form posts to that same path so the page
/// showing a new secret has a real address).
struct OrgServiceAccountPages: Sendable {
    let frame: OrgFrame
    let keys: KeyService
    let verifier: APIKeyVerifier

    func accounts(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await keys.serviceAccounts(actor: visit.who.actor, orgID: visit.org.id, limit: page.limit, offset: page.offset)
        let may = visit.abilities.may(Permission.serviceAccountsWrite)
        var values = extra
        values["accounts"] = items.map { a -> [String: Any] in
            ["id": a.id.lowercasedString, "name": a.name, "role": a.role.rawValue, "created_at": PageFormat.date(a.createdAt),
             "href": "\(visit.orgPath)/service-accounts/\(a.id.lowercasedString)", "removable": may]
        }
        values["may_create"] = may
        values["roles"] = PageFormat.roleOptions(visit.abilities.grantRoles, selected: .viewer)
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/service-accounts", page: page, total: total)
        return frame.render(request, visit, "org-accounts", title: "Service accounts", tab: "service-accounts", status: status, values)
    }

    var createAccount: PageHandler {
        frame.act(back: "service-accounts", redisplay: accounts) { visit, form, _ in
            let (account, _) = try await keys.createServiceAccount(
                actor: visit.who.actor, orgID: visit.org.id, name: form["name"] ?? "", role: try OrgFrame.role(form))
            return .done("The service account \(account.name) is created; give it a key on its page.")
        }
    }

    var deleteAccount: PageHandler {
        frame.act(back: "service-accounts", redisplay: accounts) { visit, form, _ in
            _ = try await keys.deleteServiceAccount(actor: visit.who.actor, orgID: visit.org.id, id: try OrgFrame.uuid(form, "account_id", "service account"))
            return .done("The service account and its keys are deleted.")
        }
    }

    // MARK: One service account's keys

    func account(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let id = request.uri.path.split(separator: "/").dropFirst(3).first.flatMap { UUIDText.parse(String($0)) }
        guard let id, let (all, _) = try? await keys.serviceAccounts(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0),
              let found = all.first(where: { $0.id == id }) else {
            return frame.render(request, visit, "message", title: "No such service account", tab: "service-accounts", status: .notFound, [
                "paragraphs": ["This service account does not exist in this org."], "link_href": visit.orgPath + "/service-accounts", "link_text": "Service accounts",
            ])
        }
        let path = "\(visit.orgPath)/service-accounts/\(found.id.lowercasedString)"
        let page = Page.lenient(request)
        let (items, total) = try await keys.serviceAccountKeys(actor: visit.who.actor, orgID: visit.org.id, accountID: id, limit: page.limit, offset: page.offset)
        var values = extra
        values["account"] = ["id": found.id.lowercasedString, "name": found.name, "role": found.role.rawValue, "href": path]
        values["keys"] = items.map { KeyRow.values($0, lastUsed: verifier.pendingUse($0.id)) }
        values["may_create"] = visit.abilities.may(Permission.serviceAccountsWrite)
        values["roles"] = PageFormat.roleOptions(Role.ranked.filter { $0 <= found.role })
        values["lifetimes"] = KeyRow.lifetimes
        values["key_action"] = path
        values["key_revoke_action"] = path + "/revoke"
        values["pager"] = PageFormat.pager(path: path, page: page, total: total)
        return frame.render(request, visit, "org-account", title: found.name, tab: "service-accounts", status: status, values)
    }

    static func accountID(_ context: AppRequestContext) throws -> UUID {
        guard let id = context.parameters.get("account_id").flatMap({ UUIDText.parse($0) }) else { throw Problem.notFound("no such service account") }
        return id
    }

    /// The secret is in this answer only (no redirect), like a user key's.
    var createKey: PageHandler {
        frame.act(back: "service-accounts", redisplay: account) { visit, form, context in
            let (scopes, orgs) = try KeyRoutes.scopes(KeyRow.scopes(form))
            let created = try await keys.createServiceAccountKey(
                actor: visit.who.actor, orgID: visit.org.id, accountID: try Self.accountID(context), name: form["name"] ?? "",
                expiresIn: try KeyRow.lifetime(form), scopes: scopes, scopedOrgs: orgs)
            return .show(["created": ["name": created.key.name, "secret": created.secret]], .created)
        }
    }

    var revokeKey: PageHandler {
        frame.act(back: "service-accounts", redisplay: account) { visit, form, context in
            let accountID = try Self.accountID(context)
            _ = try await keys.revokeServiceAccountKey(
                actor: visit.who.actor, orgID: visit.org.id, accountID: accountID, keyID: try OrgFrame.uuid(form, "key_id", "key"))
            return .goTo("\(visit.orgPath)/service-accounts/\(accountID.lowercasedString)", notice: "The key is revoked.")
        }
    }
}
