import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// Who a token is (`identify`) and the permission table: reads a service makes beside its decisions.
struct IdentifyRoutes {
    let authenticator: Authenticator
    let policy: PolicyService

    struct IdentifyResponse: Encodable {
        let type: String
        let userId: OrNull<String>
        let email: OrNull<String>
        let keyId: OrNull<String>
        let serviceAccountId: OrNull<String>
        let orgId: OrNull<String>
        let expiresAt: OrNull<Date>
    }

    @Sendable func identify(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(IdentifyBody.self, from: request)
        _ = try await context.caller()
        let body = try unchecked.fields()
        guard !body.token.isEmpty, body.token.utf8.count <= 8192, let resolved = try? await authenticator.resolve(token: body.token) else {
            throw Problem.unauthenticated("the token is not valid")
        }
        let c = resolved.caller
        let response: IdentifyResponse
        switch c.credential {
        case .session:
            response = IdentifyResponse(
                type: "user", userId: OrNull(c.user?.id.lowercasedString), email: OrNull(c.user?.email), keyId: OrNull(nil),
                serviceAccountId: OrNull(nil), orgId: OrNull(nil), expiresAt: OrNull(resolved.expiresAt))
        case .userKey(let key):
            response = IdentifyResponse(
                type: "api_key", userId: OrNull(c.user?.id.lowercasedString), email: OrNull(c.user?.email), keyId: OrNull(key.id.lowercasedString),
                serviceAccountId: OrNull(nil), orgId: OrNull(nil), expiresAt: OrNull(key.expiresAt))
        case .serviceAccountKey(let key, let account, let org):
            response = IdentifyResponse(
                type: "service_account", userId: OrNull(nil), email: OrNull(nil), keyId: OrNull(key.id.lowercasedString),
                serviceAccountId: OrNull(account.lowercasedString), orgId: OrNull(org.lowercasedString), expiresAt: OrNull(key.expiresAt))
        case .clientServiceAccount(_, let account, let org):
            response = IdentifyResponse(
                type: "service_account", userId: OrNull(nil), email: OrNull(nil), keyId: OrNull(nil),
                serviceAccountId: OrNull(account.lowercasedString), orgId: OrNull(org.lowercasedString), expiresAt: OrNull(resolved.expiresAt))
        }
        return try JSONBody.response(response)
    }

    struct PermissionsResponse: Encodable {
        let roles: [String]
        let permissions: [String: String]
    }

    @Sendable func permissions(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try await context.caller()
        return try JSONBody.response(PermissionsResponse(
            roles: Role.ranked.map(\.rawValue), permissions: policy.permissions.leastRole.mapValues(\.rawValue)))
    }

}
