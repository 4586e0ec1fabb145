import Authority
import Foundation
import Hummingbird
import Identity
import Invites
import Tenancy

struct InviteResponse: Encodable, Sendable {
    let id: String
    let orgId: String
    let orgName: String
    let email: String
    let role: String
    let state: String
    let dormant: Bool
    let inviterId: OrNull<String>
    let createdAt: Date
    let expiresAt: Date

    init(_ i: Invite, now: Date) {
        id = i.id.lowercasedString
        orgId = i.orgID.lowercasedString
        orgName = i.orgName
        email = i.email
        role = i.role.rawValue
        state = i.state(at: now).rawValue
        dormant = i.dormant
        inviterId = OrNull(i.inviterID?.lowercasedString)
        createdAt = i.createdAt
        expiresAt = i.expiresAt
    }
}

struct PlatformInviteResponse: Encodable, Sendable {
    let id: String
    let email: String
    let state: String
    let orgInvites: [InviteResponse]
    let createdAt: Date
    let expiresAt: Date

    init(_ p: PlatformInvite, now: Date) {
        id = p.id.lowercasedString
        email = p.email
        state = p.state(at: now).rawValue
        orgInvites = p.orgInvites.map { InviteResponse($0, now: now) }
        createdAt = p.createdAt
        expiresAt = p.expiresAt
    }
}

struct CreateInviteBody: Decodable, Sendable {
    let email: String
    let role: String
}

struct PlatformInviteBody: Decodable, Sendable {
    struct OrgInvite: Decodable, Sendable {
        let orgId: String
        let role: String
    }
    let email: String
    let orgInvites: [OrgInvite]?
}

struct TokenBody: Decodable, Sendable {
    let token: String
}

struct ResetRequestBody: Decodable, Sendable {
    let email: String
}

struct ResetConfirmBody: Decodable, Sendable {
    let token: String
    let newPassword: String
}

/// Org invites, platform invites, and the mailed-token flows (password reset, e-mail verification).
struct InviteRoutes {
    let auth: AuthService
    let invites: InviteService
    let limits: AbuseLimits
    var now: Date { auth.now() }

    func invitee(_ request: Request, _ context: AppRequestContext) async throws -> InviteService.Invitee {
        let caller = try await context.caller()
        return InviteService.Invitee(actor: try await context.actor(), email: caller.user?.email)
    }

    /// The invitee answering its own invite: a person (403 for a service account).
    func person(_ request: Request, _ context: AppRequestContext) async throws -> InviteService.Invitee {
        let caller = try await context.caller()
        let user = try caller.requireUser()
        return InviteService.Invitee(actor: try await context.actor(), email: user.email)
    }

    static func state(_ request: Request) throws -> InviteState? {
        guard let text = try request.singleQuery("state") else { return nil }
        guard let state = InviteState(rawValue: text) else {
            throw Problem.badRequest("state must be one of \(InviteState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return state
    }

    // MARK: Org invites

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(CreateInviteBody.self, from: request)
        let who = try await invitee(request, context)
        let body = try unchecked.fields()
        let role = try parseRole(body.role)
        let (invite, revision) = try await invites.create(by: who, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), email: body.email, role: role)
        return try JSONBody.response(InviteResponse(invite, now: now), status: .created, revision: revision)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let who = try await invitee(request, context)
        let now = now
        return try await ListResponse.page(request, { InviteResponse($0, now: now) }) { page in
            let state = try Self.state(request)
            return try await invites.list(
                by: who, orgID: try TenancyRoutes.pathID(context, "org_id", "org"), state: state, limit: page.limit, offset: page.offset)
        }
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let who = try await invitee(request, context)
        let invite = try await invites.get(by: who, id: try TenancyRoutes.pathID(context, "invite_id", "invite"))
        return try JSONBody.response(InviteResponse(invite, now: now))
    }

    @Sendable func revoke(_ request: Request, context: AppRequestContext) async throws -> Response {
        let who = try await invitee(request, context)
        let revision = try await invites.revoke(by: who, id: try TenancyRoutes.pathID(context, "invite_id", "invite"))
        return JSONBody.noContent(revision: revision)
    }

    @Sendable func resend(_ request: Request, context: AppRequestContext) async throws -> Response {
        let who = try await invitee(request, context)
        let (invite, revision) = try await invites.resend(by: who, id: try TenancyRoutes.pathID(context, "invite_id", "invite"))
        return try JSONBody.response(InviteResponse(invite, now: now), revision: revision)
    }

    func respond(_ request: Request, _ context: AppRequestContext, accept: Bool) async throws -> Response {
        let who = try await person(request, context)
        let (invite, revision) = try await invites.respond(by: who, id: try TenancyRoutes.pathID(context, "invite_id", "invite"), accept: accept)
        return try JSONBody.response(InviteResponse(invite, now: now), revision: revision)
    }

    @Sendable func accept(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await respond(request, context, accept: true)
    }

    @Sendable func decline(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await respond(request, context, accept: false)
    }

    @Sendable func claim(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(TokenBody.self, from: request)
        try limits.spend(ip: context.clientIP, now: now)
        let who = try await person(request, context)
        let body = try unchecked.fields()
        // Per account too: one signed-in user spread over many addresses still guesses slowly.
        try limits.spend(ip: "account:" + who.actor.userID.uuidString, now: now)
        let (invite, revision) = try await invites.claim(by: who, token: body.token)
        return try JSONBody.response(InviteResponse(invite, now: now), revision: revision)
    }

    @Sendable func mine(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try await context.caller().requireUser()
        let now = now
        return try await ListResponse.page(request, { InviteResponse($0, now: now) }) { page in
            try await invites.mine(email: user.email, state: try Self.state(request), limit: page.limit, offset: page.offset)
        }
    }

    // MARK: Platform invites

    @Sendable func createPlatform(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(PlatformInviteBody.self, from: request)
        let caller = try await context.caller()
        let body = try unchecked.fields()
        var orgInvites: [InviteService.OrgInviteRequest] = []
        for (i, o) in (body.orgInvites ?? []).enumerated() {
            guard let org = UUIDText.parse(o.orgId) else { throw Problem.badRequest("org_invites[\(i)].org_id must be a UUID") }
            orgInvites.append(.init(orgID: org, role: try parseRole(o.role, field: "org_invites[\(i)].role")))
        }
        guard caller.isRoot else { throw Problem.forbidden("only the platform administrator may do this") }
        let (invite, revision) = try await invites.createPlatformInvite(by: try await context.actor(), email: body.email, orgInvites: orgInvites)
        return try JSONBody.response(PlatformInviteResponse(invite, now: now), status: .created, revision: revision)
    }

    @Sendable func listPlatform(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try await context.requireRoot()
        let now = now
        return try await ListResponse.page(request, { PlatformInviteResponse($0, now: now) }) { page in
            let state = try Self.state(request)
            return try await invites.platformInvites(by: try await context.actor(), state: state, limit: page.limit, offset: page.offset)
        }
    }

    @Sendable func getPlatform(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try await context.requireRoot()
        let invite = try await invites.platformInvite(
            by: try await context.actor(), id: try TenancyRoutes.pathID(context, "platform_invite_id", "platform invite"))
        return try JSONBody.response(PlatformInviteResponse(invite, now: now))
    }

    @Sendable func revokePlatform(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try await context.requireRoot()
        let revision = try await invites.revokePlatformInvite(
            by: try await context.actor(), id: try TenancyRoutes.pathID(context, "platform_invite_id", "platform invite"))
        return JSONBody.noContent(revision: revision)
    }

    // MARK: Mailed tokens

    /// Always 202 with the same body: whether an account exists is not revealed.
    @Sendable func requestReset(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(ResetRequestBody.self, from: request)
        try requestReset(email: body.email, ip: context.clientIP)
        return try JSONBody.response(["status": "if the address has an account, a reset link is on its way"], status: .accepted)
    }

    /// A fresh verification link; the same 202 for every address, throttled like reset.
    @Sendable func requestVerification(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(ResetRequestBody.self, from: request)
        try requestVerification(email: body.email, ip: context.clientIP)
        return try JSONBody.response(["status": "if the address has an unverified account, a verification link is on its way"], status: .accepted)
    }

    @Sendable func confirmReset(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(ResetConfirmBody.self, from: request)
        return JSONBody.noContent(revision: try await confirmReset(token: body.token, newPassword: body.newPassword, ip: context.clientIP))
    }

    @Sendable func verifyEmail(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(TokenBody.self, from: request)
        return JSONBody.noContent(revision: try await verifyEmail(token: body.token, ip: context.clientIP))
    }

    // The flows themselves, shared by the API and the hosted pages.

    /// Throttled per client address and per account (the same for every address, so the
    /// throttle tells nothing); the mail, if any, is queued off the request path.
    func requestReset(email: String, ip: String) throws {
        try limits.spend(ip: ip, now: now)
        try limits.spendResetMail(account: Email.folded(email), now: now)
        auth.requestPasswordReset(email: email)
    }

    func requestVerification(email: String, ip: String) throws {
        try limits.spend(ip: ip, now: now)
        try limits.spendResetMail(account: "verify:" + Email.folded(email), now: now)
        auth.requestVerification(email: email)
    }

    func confirmReset(token: String, newPassword: String, ip: String) async throws -> Int64 {
        try limits.spend(ip: ip, now: now)
        return try await auth.confirmPasswordReset(token: token, newPassword: newPassword)
    }

    func verifyEmail(token: String, ip: String) async throws -> Int64 {
        try limits.spend(ip: ip, now: now)
        return try await auth.verifyEmail(token: token)
    }
}
