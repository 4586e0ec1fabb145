import Foundation
import Hummingbird
import Identity
import Policy

/// Who is calling.
public struct Caller: Sendable {
    public var user: User
    /// The session of the access token; nil for callers that are not sessions (API keys, later).
    public var sessionID: UUID?
    /// Set when the caller authenticated with an API key: what its scopes leave of the owner's authority.
    public var scopes: KeyScopes? = nil

    /// The caller as the subject of a decision.
    public var subject: Subject { Subject(principal: .user(user.id), scopes: scopes) }

    /// May ask decisions about subjects other than itself (SPEC §5).
    /// Root may, in a session or through an unscoped key; otherwise only a key with `authz:check`.
    public var mayCheckOthers: Bool {
        if scopes?.authzCheck == true { return true }
        return user.isRoot && (scopes == nil || scopes == .unrestricted)
    }
}

/// What a bearer token stands for.
struct ResolvedToken: Sendable {
    var caller: Caller
    var expiresAt: Date?
    var user: User { caller.user }
    var subject: Subject { caller.subject }
}

/// Resolves `Authorization: Bearer …` to a caller, or throws 401.
struct Authenticator: Sendable {
    let auth: AuthService

    func authenticate(_ request: Request) async throws -> Caller {
        guard let header = request.headers[.authorization] else { throw Problem.unauthenticated() }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Problem.unauthenticated("use Authorization: Bearer <token>")
        }
        let token = String(parts[1]).trimmingCharacters(in: .whitespaces)
        guard token.utf8.count <= 8192 else { throw Problem.unauthenticated("invalid or expired credentials") }
        return try await resolve(token: token).caller
    }

    /// A token's identity: the caller of a request, or the subject of `identify` and `authorize`.
    func resolve(token: String) async throws -> ResolvedToken {
        let verified: VerifiedAccessToken
        do {
            verified = try await auth.authenticate(accessToken: token)
        } catch is IdentityError {
            throw Problem.unauthenticated("invalid or expired credentials")
        }
        guard let user = try await auth.user(id: verified.userID) else {
            throw Problem.unauthenticated("invalid or expired credentials")
        }
        return ResolvedToken(caller: Caller(user: user, sessionID: verified.sessionID), expiresAt: verified.expiresAt)
    }

    func requireRoot(_ request: Request) async throws -> Caller {
        let caller = try await authenticate(request)
        guard caller.user.isRoot else { throw Problem.forbidden("only the platform administrator may do this") }
        return caller
    }
}
