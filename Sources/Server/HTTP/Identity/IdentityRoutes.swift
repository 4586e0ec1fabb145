import Authority
import Foundation
import Hummingbird
import Identity
import Invites

/// Sign-up, sign-in, tokens, the caller's profile and sessions.
struct IdentityRoutes {
    let auth: AuthService
    let invites: InviteService
    let limits: AbuseLimits

    @Sendable func signup(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(SignupBody.self, from: request)
        let (user, revision) = try await signup(
            AuthService.SignupRequest(email: body.email, password: body.password, name: body.name), inviteToken: body.inviteToken, ip: context.clientIP)
        return try JSONBody.response(UserResponse(user), status: .created, revision: revision)
    }

    /// Signup as the API and the signup page both do it: the address's throttle, the fields,
    /// then an invite token's signup (which proves the address) or a plain one.
    func signup(_ signup: AuthService.SignupRequest, inviteToken: String?, ip: String) async throws -> (User, Int64) {
        try limits.spend(ip: ip, now: auth.now())
        _ = try AuthService.validate(signup)
        if let token = inviteToken {
            return try await invites.signup(signup, token: token, hasher: auth.hasher)
        }
        return try await auth.signup(signup)
    }

    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(LoginBody.self, from: request)
        let pair = try await login(email: body.email, password: body.password, userAgent: request.headers[.userAgent] ?? "", ip: context.clientIP)
        return try JSONBody.response(TokensResponse(pair), revision: pair.revision)
    }

    /// Login as the API and the login page both do it: the address's throttle, then the
    /// per-account and per-address budgets around the password check.
    func login(email: String, password: String, userAgent: String, ip: String) async throws -> TokenPair {
        try limits.spend(ip: ip, now: auth.now())
        // Keyed by the address under the comparison rule, whether or not it parses or an account
        // has it: every spelling of one address (NFC, NFD, any case) shares one budget.
        let account = Email.folded(email)
        let reservation = try limits.checkLogin(account: account, ip: ip, now: auth.now())
        do {
            let pair = try await auth.login(email: email, password: password, client: ClientInfo(userAgent: userAgent, ip: ip))
            limits.loginSucceeded(reservation, ip: ip, now: auth.now())
            return pair
        } catch IdentityError.invalidCredentials {
            limits.loginFailed(reservation)
            throw IdentityError.invalidCredentials
        } catch {
            limits.loginEnded(reservation)
            throw error
        }
    }

    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(RefreshBody.self, from: request)
        let pair = try await auth.refresh(body.refreshToken)
        return try JSONBody.response(TokensResponse(pair), revision: pair.revision)
    }

    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.readOptional(LogoutBody.self, from: request, default: LogoutBody(all: nil))
        let (user, sessionID) = try await context.caller().requireSession()
        let body = try unchecked.fields()
        let revision = try await auth.logout(userID: user.id, sessionID: sessionID, all: body.all ?? false)
        return JSONBody.noContent(revision: revision)
    }

    @Sendable func me(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try await context.caller().requireUser()
        return try JSONBody.response(UserResponse(user))
    }

    @Sendable func updateMe(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(UpdateMeBody.self, from: request)
        let caller = try await context.caller().requireUser()
        let body = try unchecked.fields()
        guard let name = body.name else {
            // Nothing to change: PATCH with no known field leaves the user as it is.
            return try JSONBody.response(UserResponse(caller))
        }
        let (user, revision) = try await auth.updateName(userID: caller.id, name: name)
        return try JSONBody.response(UserResponse(user), revision: revision)
    }

    @Sendable func changePassword(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(ChangePasswordBody.self, from: request)
        let (user, sessionID) = try await context.caller().requireSession()
        let body = try unchecked.fields()
        let revision = try await changePassword(user: user, sessionID: sessionID, current: body.currentPassword, new: body.newPassword)
        return JSONBody.noContent(revision: revision)
    }

    /// A password change as the API and the account page both do it. A stolen session must not
    /// become a stolen account by guessing: wrong answers are budgeted per session and per
    /// account (login itself is not touched).
    func changePassword(user: User, sessionID: UUID, current: String, new: String) async throws -> Int64 {
        let at = auth.now()
        let reserved = try limits.checkPasswordGuess(session: sessionID, account: user.id, now: at)
        do {
            let revision = try await auth.changePassword(userID: user.id, currentSessionID: sessionID, current: current, new: new)
            limits.passwordGuessEnded(reserved, at: at)
            return revision
        } catch IdentityError.forbidden(let message) {
            throw IdentityError.forbidden(message)
        } catch {
            limits.passwordGuessEnded(reserved, at: at)
            throw error
        }
    }

    @Sendable func sessions(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (user, sessionID) = try await context.caller().requireSession()
        return try await ListResponse.page(request, { SessionResponse($0, current: sessionID) }) {
            try await auth.activeSessions(userID: user.id, limit: $0.limit, offset: $0.offset)
        }
    }

    @Sendable func deleteSession(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (user, _) = try await context.caller().requireSession()
        guard let id = context.parameters.get("session_id").flatMap({ UUIDText.parse($0) }) else {
            throw Problem.notFound("no such session")
        }
        let revision = try await auth.revokeSession(userID: user.id, sessionID: id)
        return JSONBody.noContent(revision: revision)
    }
}
