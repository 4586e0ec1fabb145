import Authority
import Foundation
import Identity
import Tenancy
import Memberwise

/// Budgets invite mail, so an org cannot flood an inbox with its own name and text.
public protocol InviteMailThrottle: Sendable {
    /// Spends one invite mail from `orgID` to `recipient`, or throws the refusal.
    func spendInviteMail(orgID: UUID, recipient: String, now: Date) throws
}

/// Org invites, platform invites and their state machine (SPEC §6):
///
///     pending ──accept──▶ accepted      pending ──revoke──▶ revoked
///        │  ──decline─▶ declined          expired = pending past expires_at (read-time)
///        └──resend (pending or expired)──▶ pending with a new token and expiry
///
/// Dormant invites (no account for the address yet) wait; signing up with an invite token, or
/// verifying the address, wakes every one of them with a fresh expiry.
public struct InviteService: Sendable {
    public let store: any InviteStore
    public let tenancy: TenancyService
    public let links: MailLinks
    let now: @Sendable () -> Date

    public static let lifetime: TimeInterval = AuthService.inviteLifetime
    /// Hourly budgets for invite mails (per org and per recipient); nil: unthrottled.
    public var throttle: (any InviteMailThrottle)?

    public init(store: any InviteStore, tenancy: TenancyService, links: MailLinks, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.tenancy = tenancy
        self.links = links
        self.now = now
    }

    /// Who is asking: an org actor plus the address invites are matched against.
    @PublicInit
    public struct Invitee: Sendable {
        public var actor: Actor
        public var email: String?
    }

    /// (`has_account` and `needs_verification` are left out, not empty, when false: Mustache
    /// sections treat any present string as true.)
    /// The invite mail fits the recipient: an account with a proven address gets the accept link;
    /// no account, the signup link; an account whose address is unproven (its invite is dormant),
    /// the accept link with the step that must come first: confirming the address.
    func mail(for invite: Invite, token: String, inviter: UserRef?, account: UserRef?) -> OutgoingMail {
        let inviterName = inviter.map { $0.name.isEmpty ? $0.email : $0.name } ?? invite.orgName
        var variables = [
            "org_name": invite.orgName, "role": invite.role.rawValue, "inviter_name": inviterName, "email": invite.email,
            "link": account != nil ? links.acceptInvite(token) : links.signup(token), "expires_at": invite.expiresAt.ISO8601Format(),
        ]
        switch account?.emailVerified {
        case true?: variables["has_account"] = "yes"
        case false?: variables["needs_verification"] = "yes"
        case nil: break
        }
        return OutgoingMail(to: invite.email, template: MailTemplate.invite, variables: variables)
    }

    // MARK: Org invites

    public func create(by invitee: Invitee, orgID: UUID, email raw: String, role: Role) async throws -> (Invite, Int64) {
        guard let email = Email.canonical(raw) else { throw InviteError.invalid("email is not a valid e-mail address") }
        let at = now()
        let token = Secrets.token()
        return try await store.writeInvites(lockingOrg: orgID) { tx, invites in
            let (actorRole, viaRoot) = try await tenancy.access(Permission.invitesWrite, actor: invitee.actor, orgID: orgID, in: tx, at: at)
            guard RankRules.mayGrant(actor: actorRole, role: role) else { throw InviteError.forbidden("you may invite only to roles up to your own") }
            guard let org = try await tx.org(id: orgID) else { throw InviteError.notFound("no such org") }
            let user = try await tx.user(email: email)
            if let user, let m = try await tx.membership(orgID: orgID, userID: user.id), m.isCurrent(at: at) { throw InviteError.alreadyMember }
            if try await invites.livePendingInvite(orgID: orgID, email: email, now: at) != nil {
                throw InviteError.conflict("a pending invite for this address exists; resend or revoke it")
            }
            try throttle?.spendInviteMail(orgID: orgID, recipient: email, now: at)
            // Dormant until the address is proven: no account, or one whose e-mail is unverified
            // (whoever signed up with someone else's address must not collect their invites).
            let invite = Invite(
                id: UUID(), orgID: orgID, orgName: org.name, email: email, role: role, storedState: .pending, dormant: user?.emailVerified != true,
                inviterID: invitee.actor.type == "user" ? invitee.actor.id : nil, platformInviteID: nil, createdAt: at,
                expiresAt: at.addingTimeInterval(Self.lifetime))
            try await invites.insertInvite(invite, tokenHash: Secrets.hash(token))
            let inviter = try await tx.user(id: invitee.actor.userID)
            try await invites.enqueue(mail(for: invite, token: token, inviter: inviter, account: user), at: at)
            try await tx.appendAudit(TenancyService.event(
                invitee.actor, at: at, "invite.created", org: orgID, target: "invite:\(invite.id.lowercasedString)",
                ["email": .string(email), "role": .string(role.rawValue), "dormant": .bool(invite.dormant)], viaRoot: viaRoot))
            return (invite, try await tx.recordChange(.inviteChanged(invite.id), at: at))
        }
    }

    /// What adding a member by e-mail led to.
    public enum AddMemberOutcome: Sendable {
        case added(Member, Int64)
        /// The address has no account whose address is proven: it was invited instead (dormant
        /// until proven), so a squatter on the address never becomes a member.
        case invited(Invite, Int64)
    }

    /// `POST /v1/orgs/{id}/members`: by user id, or by e-mail following the proven-address rule.
    public func addMember(by invitee: Invitee, orgID: UUID, target: MemberTarget, role: Role, expiresAt: Date?) async throws -> AddMemberOutcome {
        do {
            let (member, revision) = try await tenancy.addMember(actor: invitee.actor, orgID: orgID, target: target, role: role, expiresAt: expiresAt)
            return .added(member, revision)
        } catch TenancyError.addressNotProven {
            guard case .email(let email) = target, expiresAt == nil else {
                throw InviteError.conflict("no account with a verified address has this e-mail; invite it (invites carry no expires_at)")
            }
            let (invite, revision) = try await create(by: invitee, orgID: orgID, email: email, role: role)
            return .invited(invite, revision)
        }
    }

    public func list(by invitee: Invitee, orgID: UUID, state: InviteState?, limit: Int, offset: Int) async throws -> ([Invite], Int) {
        _ = try await tenancy.access(Permission.invitesRead, actor: invitee.actor, orgID: orgID)
        return try await store.invites(orgID: orgID, state: state, now: now(), limit: limit, offset: offset)
    }

    /// The invitee may read its invite; otherwise org non-members get 404, members without `invites.read` 403.
    public func get(by invitee: Invitee, id: UUID) async throws -> Invite {
        guard let invite = try await store.invite(id: id) else { throw InviteError.notFound("no such invite") }
        let ownAddress = invite.email == invitee.email
        if ownAddress, !invite.dormant { return invite }
        do {
            _ = try await tenancy.access(Permission.invitesRead, actor: invitee.actor, orgID: invite.orgID)
        } catch let error where ownAddress && (error is TenancyError || error is InviteError) {
            // The invitee's own invite, waiting for the address to be proven: say so.
            throw InviteError.dormant
        }
        return invite
    }

    public func mine(email: String, state: InviteState?, limit: Int, offset: Int) async throws -> ([Invite], Int) {
        try await store.invites(email: email, state: state, now: now(), limit: limit, offset: offset)
    }

    /// Revoke: the inviter, or any org member holding `invites.write`.
    public func revoke(by invitee: Invitee, id: UUID) async throws -> Int64 {
        try await manage(by: invitee, id: id, action: "invite.revoked") { invite, invites, at in
            guard invite.state(at: at) == .pending else { throw InviteError.notPending(invite.state(at: at)) }
            try await invites.setState(inviteID: invite.id, .revoked)
            return nil
        }.revision
    }

    /// Resend: a new token (the old link dies) and a fresh expiry; for pending or expired invites.
    public func resend(by invitee: Invitee, id: UUID) async throws -> (Invite, Int64) {
        let (renewed, revision) = try await manage(by: invitee, id: id, action: "invite.resent") { invite, invites, at in
            let state = invite.state(at: at)
            guard state == .pending || state == .expired else { throw InviteError.notPending(state) }
            let token = Secrets.token()
            var updated = invite
            updated.expiresAt = at.addingTimeInterval(Self.lifetime)
            try await invites.renew(inviteID: invite.id, tokenHash: Secrets.hash(token), expiresAt: updated.expiresAt)
            return (updated, token)
        }
        guard let renewed else { throw InviteError.notFound("no such invite") }
        return (renewed, revision)
    }

    /// Shared by revoke and resend: find, authorize (inviter or `invites.write`), act, audit.
    /// `act` returns the renewed invite and its new token when there is a mail to send.
    func manage(
        by invitee: Invitee, id: UUID, action: String,
        _ act: @Sendable @escaping (Invite, any InviteWriter, Date) async throws -> (Invite, String)?
    ) async throws -> (renewed: Invite?, revision: Int64) {
        guard let found = try await store.invite(id: id) else { throw InviteError.notFound("no such invite") }
        let at = now()
        return try await store.writeInvites(lockingOrg: found.orgID) { tx, invites in
            guard let invite = try await invites.invite(id: id) else { throw InviteError.notFound("no such invite") }
            // The inviter may revoke while still a member of the org; anyone else (and any
            // resend, which mails in the org's name) needs invites.write and a role at least the invite's.
            var viaRoot = false
            let isInviter = invite.inviterID == invitee.actor.id && invitee.actor.type == "user"
            // "Still a member" as this caller sees it: a key scoped away from the org is not one.
            let membership = try await tx.membership(orgID: invite.orgID, userID: invitee.actor.userID)
            let stillMember = invitee.actor.effectiveRole(membership: membership.flatMap { $0.isCurrent(at: at) ? $0.role : nil }, in: invite.orgID) != nil
            if !(isInviter && stillMember && action == "invite.revoked") {
                let (role, root) = try await tenancy.access(Permission.invitesWrite, actor: invitee.actor, orgID: invite.orgID, in: tx, at: at)
                guard RankRules.mayManageGrant(actor: role, grant: invite.role) else { throw InviteError.forbidden("this invite grants more than your role") }
                viaRoot = root
            }
            let renewed = try await act(invite, invites, at)
            if let (updated, token) = renewed {
                try throttle?.spendInviteMail(orgID: invite.orgID, recipient: updated.email, now: at)
                let inviter = try await tx.user(id: invitee.actor.userID)
                let account = try await tx.user(email: updated.email)
                try await invites.enqueue(mail(for: updated, token: token, inviter: inviter, account: account), at: at)
            }
            try await tx.appendAudit(TenancyService.event(
                invitee.actor, at: at, action, org: invite.orgID, target: "invite:\(invite.id.lowercasedString)",
                ["email": .string(invite.email)], viaRoot: viaRoot))
            return (renewed?.0, try await tx.recordChange(.inviteChanged(invite.id), at: at))
        }
    }

    /// Accept or decline, by the invitee only. Accepting creates the membership in the same
    /// transaction; the second of two concurrent accepts finds the invite accepted (409).
    public func respond(by invitee: Invitee, id: UUID, accept: Bool) async throws -> (Invite, Int64) {
        guard let email = invitee.email, let found = try await store.invite(id: id), found.email == email else {
            throw InviteError.notFound("no such invite")
        }
        guard !found.dormant else { throw InviteError.dormant }
        return try await respond(by: invitee, invite: found, accept: accept)
    }

    /// `POST /v1/invites/claim`: accept by the mailed token, as the signed-in invitee.
    public func claim(by invitee: Invitee, token: String) async throws -> (Invite, Int64) {
        guard let email = invitee.email, token.utf8.count <= 256, let found = try await store.invite(tokenHash: Secrets.hash(token)),
              found.email == email else {
            throw InviteError.notFound("no invite for this token and account")
        }
        // The address is the invitee's own but not proven yet: say what to do, not "not found".
        guard !found.dormant else { throw InviteError.dormant }
        return try await respond(by: invitee, invite: found, accept: true)
    }

    /// A scoped key answers only for its orgs, and accepts only what it could act with itself:
    /// a key capped at viewer cannot make its owner an admin.
    func respond(by invitee: Invitee, invite found: Invite, accept: Bool) async throws -> (Invite, Int64) {
        let caller = invitee.actor
        guard caller.serviceAccountGrant == nil, let email = invitee.email else { throw InviteError.notFound("no such invite") }
        guard let keyRole = caller.effectiveRole(membership: .owner, in: found.orgID) else { throw InviteError.notFound("no such invite") }
        if accept, keyRole < found.role {
            throw InviteError.forbidden("this key's scopes do not reach the invite's role; accept it in a session")
        }
        let userID = caller.userID
        let at = now()
        let actor = Actor.user(userID, isRoot: false)
        return try await store.writeInvites(lockingOrg: found.orgID) { tx, invites in
            guard var invite = try await invites.invite(id: found.id) else { throw InviteError.notFound("no such invite") }
            switch invite.state(at: at) {
            case .expired: throw InviteError.expired
            case .pending: break
            case let other: throw InviteError.notPending(other)
            }
            if accept {
                let existing = try await tx.membership(orgID: invite.orgID, userID: userID)
                if let existing, existing.isCurrent(at: at) { throw InviteError.alreadyMember }
                let event = TenancyService.event(actor, at: at, AuditAction.memberAdded, org: invite.orgID, target: TenancyService.userTarget(userID),
                                                 ["role": .string(invite.role.rawValue), "email": .string(email), "invite_id": .string(invite.id.lowercasedString)])
                try await tx.upsertMembership(Membership(
                    orgID: invite.orgID, userID: userID, role: invite.role, expiresAt: nil, createdAt: existing?.createdAt ?? at, updatedAt: at,
                    auditEventID: event.id))
                try await tx.appendAudit(event)
                _ = try await tx.recordChange(.membershipChanged(org: invite.orgID, user: userID), at: at)
            }
            invite.storedState = accept ? .accepted : .declined
            try await invites.setState(inviteID: invite.id, invite.storedState)
            try await tx.appendAudit(TenancyService.event(
                actor, at: at, accept ? "invite.accepted" : "invite.declined", org: invite.orgID, target: "invite:\(invite.id.lowercasedString)",
                ["email": .string(email)]))
            return (invite, try await tx.recordChange(.inviteChanged(invite.id), at: at))
        }
    }

    // MARK: Platform invites

    @PublicInit
    public struct OrgInviteRequest: Sendable {
        public var orgID: UUID
        public var role: Role
    }

    public func createPlatformInvite(by root: Actor, email raw: String, orgInvites: [OrgInviteRequest]) async throws -> (PlatformInvite, Int64) {
        guard root.isRoot else { throw InviteError.forbidden("only the platform administrator may invite to the platform") }
        guard let email = Email.canonical(raw) else { throw InviteError.invalid("email is not a valid e-mail address") }
        guard orgInvites.count <= 50 else { throw InviteError.invalid("at most 50 org invites") }
        let at = now()
        let token = Secrets.token()
        return try await store.writeInvites(lockingOrg: nil) { tx, invites in
            if try await invites.livePendingPlatformInvite(email: email, now: at) != nil {
                throw InviteError.conflict("a pending platform invite for this address exists; revoke it to send a new one")
            }
            if try await tx.user(email: email) != nil { throw InviteError.conflict("an account with this e-mail exists; invite it to an org instead") }
            let expires = at.addingTimeInterval(Self.lifetime)
            var platform = PlatformInvite(id: UUID(), email: email, storedState: .pending, inviterID: root.id, createdAt: at, expiresAt: expires, orgInvites: [])
            try await invites.insertPlatformInvite(platform, tokenHash: Secrets.hash(token))
            for request in orgInvites {
                guard let org = try await tx.org(id: request.orgID) else { throw InviteError.invalid("org \(request.orgID.lowercasedString) does not exist") }
                let invite = Invite(
                    id: UUID(), orgID: org.id, orgName: org.name, email: email, role: request.role, storedState: .pending, dormant: true,
                    inviterID: root.id, platformInviteID: platform.id, createdAt: at, expiresAt: expires)
                // The org invite's own token is never mailed: the signup goes through the platform token.
                try await invites.insertInvite(invite, tokenHash: Secrets.hash(Secrets.token()))
                platform.orgInvites.append(invite)
            }
            try await invites.enqueue(OutgoingMail(to: email, template: MailTemplate.platformInvite, variables: [
                "email": email, "link": links.signup(token), "expires_at": expires.ISO8601Format(),
                "org_names": platform.orgInvites.map(\.orgName).joined(separator: ", "),
            ]), at: at)
            try await tx.appendAudit(TenancyService.event(
                root, at: at, "platform_invite.created", org: nil, target: "platform_invite:\(platform.id.lowercasedString)",
                ["email": .string(email), "org_invites": .number(Double(orgInvites.count))]))
            return (platform, try await tx.recordChange(.inviteChanged(platform.id), at: at))
        }
    }

    public func platformInvites(by root: Actor, state: InviteState?, limit: Int, offset: Int) async throws -> ([PlatformInvite], Int) {
        guard root.isRoot else { throw InviteError.forbidden("only the platform administrator may list platform invites") }
        return try await store.platformInvites(state: state, now: now(), limit: limit, offset: offset)
    }

    public func platformInvite(by root: Actor, id: UUID) async throws -> PlatformInvite {
        guard root.isRoot else { throw InviteError.forbidden("only the platform administrator may read platform invites") }
        guard let invite = try await store.platformInvite(id: id) else { throw InviteError.notFound("no such platform invite") }
        return invite
    }

    /// Revokes a pending platform invite and the org invites attached to it.
    public func revokePlatformInvite(by root: Actor, id: UUID) async throws -> Int64 {
        guard root.isRoot else { throw InviteError.forbidden("only the platform administrator may revoke platform invites") }
        let at = now()
        return try await store.writeInvites(lockingOrg: nil) { tx, invites in
            guard let platform = try await invites.platformInvite(id: id) else { throw InviteError.notFound("no such platform invite") }
            guard platform.state(at: at) == .pending else { throw InviteError.notPending(platform.state(at: at)) }
            try await invites.setPlatformState(id: id, .revoked)
            for invite in platform.orgInvites where invite.storedState == .pending { try await invites.setState(inviteID: invite.id, .revoked) }
            try await tx.appendAudit(TenancyService.event(
                root, at: at, "platform_invite.revoked", org: nil, target: "platform_invite:\(id.lowercasedString)", ["email": .string(platform.email)]))
            return try await tx.recordChange(.inviteChanged(id), at: at)
        }
    }
}
