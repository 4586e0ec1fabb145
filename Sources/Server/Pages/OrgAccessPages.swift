import Authority
import Foundation
import Hummingbird
import Identity
import Keys
import Policy
import Tenancy

/// Who holds what beyond membership: role bindings on resources (`/orgs/{org_id}/access`) and
/// service accounts with their keys (`/orgs/{org_id}/service-accounts`).
struct OrgAccessPages: Sendable {
    let frame: OrgFrame
    let tenancy: TenancyService
    let bindings: BindingService
    let keys: KeyService
    let verifier: APIKeyVerifier

    // MARK: Role bindings

    @Sendable func accessPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.visit(request, context) { try await access(request, $0, [:], .ok) }
    }

    func access(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let (items, total) = try await bindings.list(actor: visit.who.actor, orgID: visit.org.id, limit: page.limit, offset: page.offset)
        let names = try await principalNames(visit)
        var values = extra
        values["bindings"] = items.map { b -> [String: Any] in
            ["id": b.id.lowercasedString, "subject": names[b.principal.id] ?? "\(b.principal.typeName) \(b.principal.id.lowercasedString)",
             "resource": b.resource.string, "role": b.role.rawValue, "expires_at": b.expiresAt.map { PageFormat.date($0) } ?? "never",
             "removable": visit.abilities.may(Permission.bindingsWrite)]
        }
        values["may_bind"] = visit.abilities.may(Permission.bindingsWrite)
        values["subjects"] = names.sorted { $0.value < $1.value }.map { ["value": principalValue($0.key, visit, names), "label": $0.value] }
        values["roles"] = PageFormat.roleOptions(visit.abilities.grantRoles, selected: .viewer)
        values["resource_example"] = "org:\(visit.org.id.lowercasedString)/project:apollo"
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/access", page: page, total: total)
        return frame.render(request, visit, "org-access", title: "Access", tab: "access", status: status, values)
    }

    /// The members and service accounts of the org by id, named for people (first 100 of each).
    func principalNames(_ visit: OrgFrame.Visit) async throws -> [UUID: String] {
        var names: [UUID: String] = [:]
        let (members, _) = try await tenancy.members(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0)
        for m in members { names[m.membership.userID] = m.name.isEmpty ? m.email : "\(m.name) <\(m.email)>" }
        if let (accounts, _) = try? await keys.serviceAccounts(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0) {
            for a in accounts { names[a.id] = "service account \(a.name)" }
        }
        return names
    }

    func principalValue(_ id: UUID, _ visit: OrgFrame.Visit, _ names: [UUID: String]) -> String {
        (names[id]?.hasPrefix("service account ") == true ? "service_account:" : "user:") + id.lowercasedString
    }

    @Sendable func setBinding(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "access", redisplay: access) { visit, form in
            let parts = (form["subject"] ?? "").split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, let id = UUID(uuidString: parts[1]) else { throw Problem.badRequest("choose a subject") }
            let principal: Principal = parts[0] == "service_account" ? .serviceAccount(id) : .user(id)
            let resource = try ObjectRef.parse(form["resource"] ?? "")
            let (binding, created, _) = try await bindings.set(
                actor: visit.who.actor, orgID: visit.org.id, principal: principal, resource: resource.string,
                role: try OrgFrame.role(form), expiresAt: nil)
            return created ? "The binding on \(binding.resource.string) is made." : "The binding on \(binding.resource.string) is changed."
        }
    }

    @Sendable func removeBinding(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "access", redisplay: access) { visit, form in
            _ = try await bindings.remove(actor: visit.who.actor, orgID: visit.org.id, bindingID: try OrgFrame.uuid(form, "binding_id", "binding"))
            return "The binding is removed."
        }
    }

    // MARK: Service accounts

    @Sendable func accountsPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.visit(request, context) { try await accounts(request, $0, [:], .ok) }
    }

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

    @Sendable func createAccount(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "service-accounts", redisplay: accounts) { visit, form in
            let (account, _) = try await keys.createServiceAccount(
                actor: visit.who.actor, orgID: visit.org.id, name: form["name"] ?? "", role: try OrgFrame.role(form))
            return "The service account \(account.name) is created; give it a key on its page."
        }
    }

    @Sendable func deleteAccount(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context, back: "service-accounts", redisplay: accounts) { visit, form in
            _ = try await keys.deleteServiceAccount(actor: visit.who.actor, orgID: visit.org.id, id: try OrgFrame.uuid(form, "account_id", "service account"))
            return "The service account and its keys are deleted."
        }
    }

    // MARK: A service account's keys

    @Sendable func accountPage(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.visit(request, context) { try await account(request, $0, Self.accountID(context), [:], .ok) }
    }

    static func accountID(_ context: AppRequestContext) -> UUID? {
        context.parameters.get("account_id").flatMap(UUID.init(uuidString:))
    }

    func account(_ request: Request, _ visit: OrgFrame.Visit, _ id: UUID?, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        guard let id,
              let (all, _) = try? await keys.serviceAccounts(actor: visit.who.actor, orgID: visit.org.id, limit: 100, offset: 0),
              let found = all.first(where: { $0.id == id }) else {
            return frame.render(request, visit, "message", title: "No such service account", tab: "service-accounts", status: .notFound, [
                "paragraphs": ["This service account does not exist in this org."], "link_href": visit.orgPath + "/service-accounts", "link_text": "Service accounts",
            ])
        }
        let page = Page.lenient(request)
        let (items, total) = try await keys.serviceAccountKeys(actor: visit.who.actor, orgID: visit.org.id, accountID: id, limit: page.limit, offset: page.offset)
        var values = extra
        values["account"] = ["id": found.id.lowercasedString, "name": found.name, "role": found.role.rawValue,
                             "href": "\(visit.orgPath)/service-accounts/\(found.id.lowercasedString)"]
        values["keys"] = items.map { KeyRow.values($0, lastUsed: verifier.pendingUse($0.id)) }
        values["may_create"] = visit.abilities.may(Permission.serviceAccountsWrite)
        values["roles"] = PageFormat.roleOptions(Role.ranked.filter { $0 <= found.role })
        values["lifetimes"] = KeyRow.lifetimes
        values["key_action"] = "\(visit.orgPath)/service-accounts/\(found.id.lowercasedString)/keys"
        values["key_revoke_action"] = "\(visit.orgPath)/service-accounts/\(found.id.lowercasedString)/keys/revoke"
        values["pager"] = PageFormat.pager(path: "\(visit.orgPath)/service-accounts/\(found.id.lowercasedString)", page: page, total: total)
        return frame.render(request, visit, "org-account", title: found.name, tab: "service-accounts", status: status, values)
    }

    /// The secret is in this answer only (no redirect), like a user key's.
    @Sendable func createAccountKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context) { visit, form in
            do {
                guard let accountID = Self.accountID(context) else { throw Problem.notFound("no such service account") }
                let (canonical, orgs) = try KeyRoutes.scopes(KeyRow.scopes(form))
                let created = try await keys.createServiceAccountKey(
                    actor: visit.who.actor, orgID: visit.org.id, accountID: accountID, name: form["name"] ?? "",
                    expiresIn: try KeyRow.lifetime(form), scopes: canonical, scopedOrgs: orgs)
                return try await account(request, visit, Self.accountID(context), ["created": ["name": created.key.name, "secret": created.secret]], .created)
            } catch {
                let (message, status) = PageKit.failure(error, context)
                return try await account(request, visit, Self.accountID(context), ["error": message, "form": form.fields], status)
            }
        }
    }

    @Sendable func revokeAccountKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await frame.act(request, context) { visit, form in
            guard let accountID = Self.accountID(context) else { return frame.notFound(request, visit.who) }
            let back = "\(visit.orgPath)/service-accounts/\(accountID.lowercasedString)"
            do {
                _ = try await keys.revokeServiceAccountKey(
                    actor: visit.who.actor, orgID: visit.org.id, accountID: accountID, keyID: try OrgFrame.uuid(form, "key_id", "key"))
                return frame.kit.redirect(back, notice: "The key is revoked.")
            } catch {
                let (message, status) = PageKit.failure(error, context)
                return try await account(request, visit, accountID, ["error": message], status)
            }
        }
    }
}
