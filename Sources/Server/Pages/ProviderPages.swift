import Federation
import Foundation
import Hummingbird

/// `/admin/providers`: the root's upstream sign-in providers (SPEC §15). The forms map onto
/// `FederationService`'s provider calls, like `/v1/identity-providers`.
struct ProviderPages: Sendable {
    let admin: AdminPages
    let federation: FederationService

    func list(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        var values = extra
        values["providers"] = try await federation.providers(actor: who.actor).map { row($0) }
        values["public_url_callback"] = federation.redirectURI("<id>")
        // A refused form comes back with the kind that was chosen.
        let chosen = (extra["form"] as? [String: String])?["kind"] ?? "github"
        values["kinds"] = [("github", "GitHub (or GitHub Enterprise)"), ("google", "Google"), ("oidc", "Any OpenID provider, by its issuer URL")].map {
            ["value": $0.0, "label": $0.1, "selected": $0.0 == chosen] as [String: Any]
        }
        return admin.render(request, who, "admin-providers", title: "Sign-in providers", tab: "/admin/providers", status: status, values)
    }

    func row(_ p: UpstreamProvider) -> [String: Any] {
        var row: [String: Any] = [
            "id": p.id, "name": p.displayName, "kind": p.kind.rawValue, "client_id": p.clientID, "scopes": p.scopes.joined(separator: " "),
            "enabled": p.enabled, "redirect_uri": federation.redirectURI(p.id), "href": "/admin/providers/\(p.id)",
            "is_github": p.kind == .github, "is_google": p.kind == .google, "is_oidc": p.kind == .oidc,
        ]
        if let issuer = p.issuer { row["issuer"] = issuer }
        if let web = p.webBaseURL { row["web_base_url"] = web }
        if let api = p.apiBaseURL { row["api_base_url"] = api }
        return row
    }

    /// The form's fields; empty text fields are left out (their defaults, or as they are).
    static func input(_ form: FormPost, creating: Bool) -> ProviderInput {
        func text(_ name: String) -> String? { form[name].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 } }
        return ProviderInput(
            id: creating ? form["id"] ?? "" : nil, kind: creating ? form["kind"] : nil, displayName: text("display_name"), clientID: text("client_id"),
            clientSecret: text("client_secret"), scopes: text("scopes").map { $0.split(whereSeparator: \.isWhitespace).map(String.init) },
            issuer: text("issuer"), webBaseURL: text("web_base_url"), apiBaseURL: text("api_base_url"),
            enabled: creating ? nil : form["enabled"] == "1")
    }

    var create: PageHandler {
        admin.act(back: "/admin/providers", redisplay: list) { who, form in
            let (provider, _) = try await federation.createProvider(actor: who.actor, Self.input(form, creating: true))
            return .goTo("/admin/providers/\(provider.id)", notice: "\(provider.displayName) is added. Register \(federation.redirectURI(provider.id)) as its redirect URL at the provider.")
        }
    }

    func settings(_ request: Request, _ who: SignedIn, _ extra: [String: Any], _ status: HTTPResponse.Status) async throws -> Response {
        let id = request.uri.path.split(separator: "/").last.map(String.init) ?? ""
        guard let provider = try? await federation.provider(actor: who.actor, id: id) else {
            return admin.render(request, who, "message", title: "No such provider", tab: "/admin/providers", status: .notFound, [
                "paragraphs": ["There is no sign-in provider with this id."], "link_href": "/admin/providers", "link_text": "Sign-in providers",
            ])
        }
        var values = extra
        values["provider"] = row(provider)
        return admin.render(request, who, "admin-provider", title: provider.displayName, tab: "/admin/providers", status: status, values)
    }

    var update: PageHandler {
        { request, context in
            let id = request.uri.path.split(separator: "/").last.map(String.init) ?? ""
            return try await admin.act(back: "/admin/providers/\(id)", redisplay: settings) { who, form in
                if form["delete"] == "1" {
                    _ = try await federation.deleteProvider(actor: who.actor, id: id)
                    return .goTo("/admin/providers", notice: "The provider is deleted, with the sign-ins linked through it.")
                }
                _ = try await federation.updateProvider(actor: who.actor, id: id, Self.input(form, creating: false))
                return .done("Saved.")
            }(request, context)
        }
    }
}
