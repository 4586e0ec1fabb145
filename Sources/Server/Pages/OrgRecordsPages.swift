import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// An org's audit log (`/orgs/{org_id}/audit`, filtered by action and actor), its settings, and
/// the "explain" page that asks the decision engine "may X do Y on Z" with its path.
struct OrgRecordsPages: Sendable {
    let frame: OrgFrame
    let tenancy: TenancyService
    let authorizer: Authorizer

    // MARK: Audit log

    func audit(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let page = Page.lenient(request)
        let action = request.uri.queryParameters.get("action") ?? ""
        let actorText = request.uri.queryParameters.get("actor_id") ?? ""
        var filter = AuditFilter(action: action.isEmpty ? nil : String(action.prefix(100)))
        var values: [String: Any] = ["action": action, "actor_id": actorText, "filtered": !action.isEmpty || !actorText.isEmpty]
        if !actorText.isEmpty {
            if let id = UUIDText.parse(actorText) { filter.actorID = id } else { values["error"] = "Actor must be an id (a UUID)." }
        }
        let (events, total) = try await tenancy.audit(actor: visit.who.actor, orgID: visit.org.id, filter: filter, limit: page.limit, offset: page.offset)
        let names = try await frame.principalNames(visit)
        values["events"] = events.map { e -> [String: Any] in
            let actor = e.actorID.map { names[$0] ?? "\(e.actorType) \($0.lowercasedString)" } ?? e.actorType
            return ["at": PageFormat.date(e.at), "action": e.action, "actor": actor, "actor_id": e.actorID?.lowercasedString as Any,
                    "target": e.target, "details": Self.details(e.details)]
        }
        values["pager"] = PageFormat.pager(path: visit.orgPath + "/audit", page: page, total: total, query: ["action": action, "actor_id": actorText])
        return frame.render(request, visit, "org-audit", title: "Audit log", tab: "audit", values)
    }

    static func details(_ details: [String: JSONValue]) -> String {
        details.sorted { $0.key < $1.key }.map { "\($0.key): \(Self.text($0.value))" }.joined(separator: ", ")
    }

    static func text(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value), let text = String(data: data, encoding: .utf8) else { return "" }
        return text.hasPrefix("\"") ? String(text.dropFirst().dropLast()) : text
    }

    // MARK: Settings

    func settings(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let org = visit.org
        var values: [String: Any] = [
            "name": org.name, "description": org.description,
            "metadata": org.metadata.isEmpty ? "" : Self.text(.object(org.metadata)),
            "max_key_days": org.maxKeyTTL.map { String($0 / 86_400) } ?? "",
            "may_update": visit.abilities.may(Permission.orgUpdate), "may_delete": visit.abilities.may(Permission.orgDelete),
        ]
        // A failed save shows what was typed, not what is stored.
        if let form = extra["form"] as? [String: String] {
            for name in ["name", "description", "metadata", "max_key_days"] { values[name] = form[name] ?? "" }
        }
        values.merge(extra) { _, new in new }
        return frame.render(request, visit, "org-settings", title: "Settings", tab: "settings", status: status, values)
    }

    var updateSettings: PageHandler {
        frame.act(back: "settings", redisplay: settings) { visit, form, _ in
            var patch = OrgPatch(name: .set(form["name"] ?? ""), description: .set(form["description"] ?? ""))
            let metadata = (form["metadata"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            if metadata.isEmpty {
                patch.metadata = .set([:])
            } else {
                guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(metadata.utf8)), case .object(let object) = value else {
                    throw Problem.badRequest("metadata must be a JSON object, like {\"plan\": \"pro\"}")
                }
                patch.metadata = .set(object)
            }
            let days = (form["max_key_days"] ?? "").trimmingCharacters(in: .whitespaces)
            if days.isEmpty {
                patch.maxKeyTTL = .set(nil)
            } else {
                guard let n = Int(days), n > 0, n <= 36_500 else { throw Problem.badRequest("the longest key lifetime is a number of days from 1 to 36500") }
                patch.maxKeyTTL = .set(n * 86_400)
            }
            _ = try await tenancy.updateOrg(actor: visit.who.actor, id: visit.org.id, patch: patch)
            return .done("The settings are saved.")
        }
    }

    /// The delete form's error shows beside it, not at the top of the settings.
    func settingsWithDeleteError(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        try await settings(request, visit, ["delete_error": extra["error"] as Any], status)
    }

    var deleteOrg: PageHandler {
        frame.act(back: "settings", redisplay: settingsWithDeleteError) { visit, form, _ in
            guard form["confirm_name"] == visit.org.name else { throw Problem.badRequest("type the org's name to confirm") }
            _ = try await tenancy.deleteOrg(actor: visit.who.actor, id: visit.org.id)
            return .goTo("/account/orgs", notice: "\(visit.org.name) is deleted.")
        }
    }

    // MARK: Explain

    /// The question comes in the query (a GET form): asking changes nothing.
    func explainPage(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let query = request.uri.queryParameters
        let subject = query.get("subject") ?? ""
        let action = query.get("action") ?? ""
        let object = query.get("object") ?? "org:\(visit.org.id.lowercasedString)"
        let names = try await frame.principalNames(visit)
        var values: [String: Any] = [
            "subjects": names.sorted { $0.value < $1.value }.map { id, label -> [String: Any] in
                let value = OrgFrame.principalValue(id, names)
                return ["value": value, "label": label, "selected": value == subject]
            },
            "action": action, "object": object,
        ]
        var status = status
        if !subject.isEmpty || !action.isEmpty {
            do {
                values["answer"] = try await explain(visit, subject: subject, action: action, object: object)
            } catch {
                // A question the API would answer with a 4xx is shown in place; anything else is a 500.
                guard let problem = Problem.from(error) else { throw error }
                (values["error"], status) = (problem.sentence, problem.status)
            }
        }
        return frame.render(request, visit, "org-explain", title: "Explain", tab: "explain", status: status, values)
    }

    /// Who asks on the explain page: the person with the authority of an `authz:check` key of
    /// their own limited to this org, which they could make themselves on `/account/keys`. So an
    /// admin may ask about the org's members (the decision API's rule for such keys), anyone else
    /// only about themselves; the root as the root.
    static func asker(_ visit: OrgFrame.Visit) -> Actor {
        guard !visit.who.user.isRoot else { return visit.who.caller.asker }
        return Actor.user(visit.who.user.id, isRoot: false, scopes: KeyScopes(orgs: [visit.org.id], roleCap: nil, authzCheck: true))
    }

    func explain(_ visit: OrgFrame.Visit, subject: String, action: String, object: String) async throws -> [String: Any] {
        let parts = subject.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let id = UUIDText.parse(parts[1]) else { throw Problem.badRequest("choose who is asking") }
        let ref: SubjectRef = parts[0] == "service_account" ? .serviceAccount(id) : .user(id)
        let fields = DecisionFields(policy: authorizer.policy)
        let question = Question(subject: ref, object: try DecisionFields.object(object), requirement: try fields.requirement(action))
        guard let explanation = try await authorizer.explain(question, atLeast: nil, by: Self.asker(visit)) else {
            throw Problem.badRequest("that subject cannot be asked about")
        }
        let d = explanation.decision
        return [
            "allowed": d.allowed, "reason": d.reason, "role": d.role?.rawValue ?? "none", "required_role": explanation.requiredRole.rawValue,
            "grants": explanation.grants.map { g -> [String: Any] in
                var row: [String: Any] = [
                    "kind": g.kind.rawValue, "role": g.role?.rawValue ?? "", "resource": g.resource, "decisive": g.decisive,
                    "expires_at": g.expiresAt.isFinite ? PageFormat.date(Date(timeIntervalSince1970: g.expiresAt)) : "never",
                    "override": g.effect.map { "\($0.rawValue) \(g.permission ?? "")" + ((g.reason ?? "").isEmpty ? "" : ": \(g.reason!)") } ?? "",
                ]
                // Mustache takes an empty string as true: the chain is set only when there is one.
                if !g.via.isEmpty { row["via"] = g.via.map { explanation.groupNames[$0] ?? $0.lowercasedString }.joined(separator: " → ") }
                return row
            },
        ]
    }
}
