import Authority
import Foundation
import Hummingbird
import Tenancy
import Webhooks
import Wire

/// Webhook endpoints in the console: an org's (`/orgs/{org_id}/webhooks`, for who may update
/// the org) and the platform's (`/admin/webhooks`, the root's). The same `WebhookService` use
/// cases as `/v1/…/webhooks`; a secret is shown once, when it is made.
enum WebhookForms {
    /// Families whose events carry no org: offered on the platform's page only.
    static let platformOnly: Set<String> = ["user", "signing_key", "platform_invite", "backup"]

    /// The families offered as check boxes; anything else goes in "other types".
    static func offered(platform: Bool) -> [String] {
        EventFilter.families.filter { platform || !platformOnly.contains($0) }.map { "\($0).*" }
    }

    /// The event types of a form: "*" alone, or the families ticked plus the other types typed
    /// (checked either way, so a typo is said rather than dropped).
    static func eventTypes(_ form: FormPost) throws -> [String] {
        let typed = (form["other_types"] ?? "").split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
        if !typed.isEmpty { _ = try EventFilter(typed) }
        if form["all_events"] == "1" { return ["*"] }
        return form.all("event_type").filter { $0.hasSuffix(".*") } + typed
    }

    static func fields(_ form: FormPost, enabledField: Bool) throws -> WebhookFields {
        WebhookFields(
            url: form["url"]?.trimmingCharacters(in: .whitespaces), description: form["description"],
            eventTypes: try eventTypes(form), enabled: enabledField ? form["enabled"] == "1" : nil)
    }

    /// The event-type check boxes: as stored, or after a refused form as it was sent.
    static func typeChoices(stored: [String], platform: Bool, extra: [String: Any]) -> (all: Bool, choices: [[String: Any]]) {
        var all = stored == ["*"], ticked = Set(stored)
        if extra["form"] != nil {
            let typed = extra["form_all"] as? [String: [String]] ?? [:]
            all = typed["all_events"]?.contains("1") ?? false
            ticked = Set(typed["event_type"] ?? [])
        }
        return (all, offered(platform: platform).map { ["value": $0, "checked": !all && ticked.contains($0)] })
    }

    static func listValues(_ endpoints: [WebhookEndpoint], action: String, platform: Bool, extra: [String: Any]) -> [String: Any] {
        var values = extra
        values["webhooks"] = endpoints.map { e -> [String: Any] in
            ["id": e.id.lowercasedString, "url": e.url, "description": e.description, "types": e.eventTypes.patterns.joined(separator: " "),
             "enabled": e.enabled, "disabled_reason": e.disabledReason ?? "", "href": "\(action)/\(e.id.lowercasedString)"]
        }
        values["webhook_action"] = action
        values["platform"] = platform
        let (all, choices) = typeChoices(stored: ["*"], platform: platform, extra: extra)
        values["all_events"] = all
        values["type_choices"] = choices
        return values
    }

    /// The page of one endpoint: its settings, its secret's state, and its delivery log.
    static func endpointValues(_ e: WebhookEndpoint, deliveries: [WebhookDelivery], action: String, now: Date, extra: [String: Any]) -> [String: Any] {
        var values = extra
        let platform = e.orgID == nil
        let offeredTypes = offered(platform: platform)
        let (all, choices) = typeChoices(stored: e.eventTypes.patterns, platform: platform, extra: extra)
        let others = e.eventTypes.patterns.filter { $0 != "*" && !offeredTypes.contains($0) }
        var endpoint: [String: Any] = [
            "id": e.id.lowercasedString, "url": e.url, "description": e.description, "enabled": e.enabled,
            "disabled_reason": e.disabledReason ?? "", "all_events": all, "other_types": others.joined(separator: ", "),
            "action": "\(action)/\(e.id.lowercasedString)",
        ]
        if let until = e.previousSecretUntil, until > now { endpoint["previous_until"] = PageFormat.date(until) }
        if let typed = extra["form"] as? [String: String] {
            for key in ["url", "description", "other_types"] { if let v = typed[key] { endpoint[key] = v } }
            endpoint["enabled"] = typed["enabled"] == "1"
        }
        values["endpoint"] = endpoint
        values["type_choices"] = choices
        values["deliveries"] = deliveries.map { d -> [String: Any] in
            var row: [String: Any] = [
                "id": d.id.lowercasedString, "event_id": d.eventID.lowercasedString, "type": d.eventType, "state": d.state.rawValue,
                "ok": d.state == .delivered, "failed": d.state == .failed, "attempts": String(d.attempts),
                "created": PageFormat.date(d.createdAt),
                "status": d.lastStatus.map(String.init) ?? "–", "latency": d.lastLatencyMs.map { "\($0) ms" } ?? "–",
                "detail": d.lastError ?? d.lastResponse.flatMap { $0.isEmpty ? nil : String($0.prefix(120)) } ?? "–",
            ]
            if d.state == .pending, d.attempts > 0 { row["next"] = PageFormat.date(d.nextAttemptAt) }
            return row
        }
        values["back_href"] = action
        return values
    }

    static func created(_ made: RegisteredWebhook, rotated: Bool) -> [String: Any] {
        ["new_secret": ["secret": made.secret.text, "url": made.endpoint.url, "rotated": rotated,
                        "previous_until": made.endpoint.previousSecretUntil.map(PageFormat.date) ?? ""]]
    }

    static func pathID(_ context: AppRequestContext) throws -> UUID { try TenancyRoutes.pathID(context, "webhook_id", "webhook") }

    /// The endpoint id after `webhooks/` in a page's path (a page render has no route parameters).
    static func pathID(_ request: Request) -> UUID? {
        let parts = request.uri.path.split(separator: "/")
        guard let at = parts.firstIndex(of: "webhooks"), at + 1 < parts.count else { return nil }
        return UUIDText.parse(String(parts[at + 1]))
    }

    /// The overlap a rotation form asks for, in hours (empty: the default day).
    static func overlap(_ form: FormPost) throws -> TimeInterval? {
        let text = (form["overlap_hours"] ?? "").trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return nil }
        guard let hours = Double(text), hours >= 0 else { throw Problem.badRequest("the overlap is a number of hours, 0 to 168") }
        return hours * 3600
    }
}

/// The pages of one owner's endpoints, for either frame: where it renders and what `orgID` it manages.
struct WebhookConsole: Sendable {
    let webhooks: WebhookService
    /// The forms of an endpoint's page: `…/webhooks/{webhook_id}/<form>`.
    static let forms = ["save", "secret", "test", "redeliver", "delete"]

    func list(actor: Actor, orgID: UUID?, action: String, extra: [String: Any]) async throws -> [String: Any] {
        let (items, _) = try await webhooks.endpoints(actor: actor, orgID: orgID, limit: 100, offset: 0)
        return WebhookForms.listValues(items, action: action, platform: orgID == nil, extra: extra)
    }

    /// Nil when there is no such endpoint of this owner.
    func endpoint(actor: Actor, orgID: UUID?, request: Request, action: String, extra: [String: Any]) async throws -> [String: Any]? {
        guard let id = WebhookForms.pathID(request), let endpoint = try? await webhooks.endpoint(actor: actor, orgID: orgID, id: id) else { return nil }
        let (deliveries, _) = try await webhooks.deliveries(actor: actor, orgID: orgID, id: id, limit: 50, offset: 0)
        return WebhookForms.endpointValues(endpoint, deliveries: deliveries, action: action, now: Date(), extra: extra)
    }

    func create(actor: Actor, orgID: UUID?, form: FormPost) async throws -> FormOutcome {
        let made = try await webhooks.create(actor: actor, orgID: orgID, fields: try WebhookForms.fields(form, enabledField: false))
        return .show(WebhookForms.created(made, rotated: false), .created)
    }

    /// The forms of an endpoint's page, by the last part of their path.
    func act(_ what: String, actor: Actor, orgID: UUID?, form: FormPost, context: AppRequestContext, action: String) async throws -> FormOutcome {
        let id = try WebhookForms.pathID(context)
        let page = "\(action)/\(id.lowercasedString)"
        switch what {
        case "save":
            _ = try await webhooks.update(actor: actor, orgID: orgID, id: id, fields: try WebhookForms.fields(form, enabledField: true))
            return .goTo(page, notice: "The webhook is saved.")
        case "secret":
            let made = try await webhooks.rotateSecret(actor: actor, orgID: orgID, id: id, overlap: try WebhookForms.overlap(form))
            return .show(WebhookForms.created(made, rotated: true), .ok)
        case "test":
            _ = try await webhooks.sendTest(actor: actor, orgID: orgID, id: id)
            return .goTo(page, notice: "A test event is on its way; it shows in the delivery log below.")
        case "redeliver":
            _ = try await webhooks.redeliver(actor: actor, orgID: orgID, id: id, deliveryID: try OrgFrame.uuid(form, "delivery_id", "delivery"))
            return .goTo(page, notice: "The event is queued again, after whatever the endpoint has waiting.")
        case "delete":
            _ = try await webhooks.delete(actor: actor, orgID: orgID, id: id)
            return .goTo(action, notice: "The webhook is deleted; nothing more is sent to it.")
        default:
            throw Problem.notFound("no such form")
        }
    }
}

/// An org's webhooks: `/orgs/{org_id}/webhooks`.
struct OrgWebhookPages: Sendable {
    let frame: OrgFrame
    let console: WebhookConsole

    func list(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let values = try await console.list(actor: visit.who.actor, orgID: visit.org.id, action: visit.orgPath + "/webhooks", extra: extra)
        return frame.render(request, visit, "webhooks", title: "Webhooks", tab: "webhooks", status: status, values)
    }

    var create: PageHandler {
        frame.act(back: "webhooks", redisplay: list) { visit, form, _ in
            try await console.create(actor: visit.who.actor, orgID: visit.org.id, form: form)
        }
    }

    func endpoint(_ request: Request, _ visit: OrgFrame.Visit, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        guard let values = try await console.endpoint(
            actor: visit.who.actor, orgID: visit.org.id, request: request, action: visit.orgPath + "/webhooks", extra: extra) else {
            return frame.render(request, visit, "message", title: "No such webhook", tab: "webhooks", status: .notFound, [
                "paragraphs": ["This webhook does not belong to this org."], "link_href": visit.orgPath + "/webhooks", "link_text": "Webhooks",
            ])
        }
        return frame.render(request, visit, "webhook", title: "Webhook", tab: "webhooks", status: status, values)
    }

    func act(_ what: String) -> PageHandler {
        frame.act(back: "webhooks", redisplay: endpoint) { visit, form, context in
            try await console.act(what, actor: visit.who.actor, orgID: visit.org.id, form: form, context: context, action: visit.orgPath + "/webhooks")
        }
    }
}

extension AdminPages {
    /// The platform's webhooks: `/admin/webhooks`.
    func platformWebhooks(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let values = try await webhookConsole.list(actor: who.actor, orgID: nil, action: "/admin/webhooks", extra: extra)
        return render(request, who, "webhooks", title: "Webhooks", tab: "/admin/webhooks", status: status, values)
    }

    var createWebhook: PageHandler {
        act(back: "/admin/webhooks", redisplay: platformWebhooks) { who, form in
            try await webhookConsole.create(actor: who.actor, orgID: nil, form: form)
        }
    }

    func platformWebhook(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        guard let values = try await webhookConsole.endpoint(actor: who.actor, orgID: nil, request: request, action: "/admin/webhooks", extra: extra) else {
            return render(request, who, "message", title: "No such webhook", tab: "/admin/webhooks", status: .notFound, [
                "paragraphs": ["This webhook is not a platform webhook."], "link_href": "/admin/webhooks", "link_text": "Webhooks",
            ])
        }
        return render(request, who, "webhook", title: "Webhook", tab: "/admin/webhooks", status: status, values)
    }

    func webhookAction(_ what: String) -> PageHandler {
        let form = kit.act(back: "/admin/webhooks", redisplay: platformWebhook) { who, form, context in
            try await webhookConsole.act(what, actor: who.actor, orgID: nil, form: form, context: context, action: "/admin/webhooks")
        }
        return { [kit] request, context in
            if let who = try await kit.signedIn(request), !who.caller.isRoot { return notFound(request, who) }
            return try await form(request, context)
        }
    }
}
