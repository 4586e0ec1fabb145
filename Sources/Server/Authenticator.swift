import Foundation
import Hummingbird
import Identity

/// Who is calling.
public struct Caller: Sendable {
    public var user: User
    /// The session of the access token; nil for callers that are not sessions (API keys, later).
    public var sessionID: UUID?
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
        let verified: VerifiedAccessToken
        do {
            verified = try await auth.authenticate(accessToken: token)
        } catch is IdentityError {
            throw Problem.unauthenticated("invalid or expired credentials")
        }
        guard let user = try await auth.user(id: verified.userID) else {
            throw Problem.unauthenticated("invalid or expired credentials")
        }
        return Caller(user: user, sessionID: verified.sessionID)
    }

    func requireRoot(_ request: Request) async throws -> Caller {
        let caller = try await authenticate(request)
        guard caller.user.isRoot else { throw Problem.forbidden("only the platform administrator may do this") }
        return caller
    }
}
