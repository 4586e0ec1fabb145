import Authority
import Foundation
import Hummingbird
import Identity
import OpenID

/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): `/oauth/logout`. The GET only
/// asks; the POST (with the form token) ends the browser session. The way back is followed only
/// to a redirect URI registered for the client, so this is never an open redirect.
struct LogoutPages: Sendable {
    let kit: PageKit
    let openID: OpenIDService
    let auth: AuthService
    let tokens: TokenService

    /// The registered place to go back to, if the request names one properly: `client_id` (or the
    /// audience of a valid `id_token_hint`) and a `post_logout_redirect_uri` of that client.
    func back(_ query: [String: String]) async -> String? {
        guard let uri = query["post_logout_redirect_uri"] else { return nil }
        var clientID = query["client_id"]
        if let hint = query["id_token_hint"], hint.utf8.count <= 8192,
           let claims = try? await tokens.verifySignature(hint, as: IDTokenClaims.self) {
            guard let audience = claims.aud.value.first, clientID == nil || clientID == audience else { return nil }
            clientID = audience
        }
        guard let text = clientID, let id = UUIDText.parse(text), let (client, _) = try? await openID.clients.store.client(id: id),
              client.redirectURIs.contains(uri) else { return nil }
        return uri
    }

    @Sendable func ask(_ request: Request, context: AppRequestContext) async throws -> Response {
        let query = FormPost.parse(request.uri.query ?? "").fields
        let who = try await kit.signedIn(request)
        if query["post_logout_redirect_uri"] != nil, await back(query) == nil {
            return kit.renderer.message("This sign-out cannot go on", ["The application asked to send you to an address it has not registered."], status: .badRequest)
        }
        guard who != nil else { return try await finish(query, signedOut: true) }
        var response = kit.page(request, who, "logout", title: "Sign out?", [
            "fields": query.filter { ["client_id", "post_logout_redirect_uri", "state", "id_token_hint"].contains($0.key) }
                .sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] },
        ])
        if let uri = await back(query) { AuthorizePages.allowRedirect(&response, to: uri) }
        return response
    }

    @Sendable func signOut(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let form = try await kit.post(request) else { return kit.forged }
        if let who = try await kit.signedIn(request) {
            _ = try? await auth.logout(userID: who.user.id, sessionID: who.sessionID, all: false)
        }
        var response = try await finish(form.fields, signedOut: true)
        kit.endSession(on: &response)
        return response
    }

    func finish(_ query: [String: String], signedOut: Bool) async throws -> Response {
        guard let uri = await back(query) else {
            return kit.renderer.message("You are signed out", ["You can close this window."], link: ("/login", "Sign in again"))
        }
        return AuthorizePages.back(uri, ["state": query["state"]])
    }
}
