import Foundation
import Identity
import Invites
import Tenancy

/// Org and platform invites on either SQL backend.
public struct SQLInviteStore: SQLStore, InviteStore {
    public let context: SQLStoreContext
    public init(context: SQLStoreContext) { self.context = context }

    static let columns = "i.id, i.org_id, o.name AS org_name, i.email, i.role, i.state, i.dormant, i.inviter_id, i.platform_invite_id, i.created_at, i.expires_at"
    static let joined = "FROM invites i JOIN orgs o ON o.id = i.org_id"
    static let select = "SELECT \(columns) \(joined)"

    static func decode(_ row: SQLRow) throws -> Invite {
        guard let state = InviteState(rawValue: try row.string("state")) else { throw StorageError.decoding(column: "state") }
        return Invite(
            id: try row.uuid("id"), orgID: try row.uuid("org_id"), orgName: try row.string("org_name"), email: try row.string("email"),
            role: try SQLTenancyStore.decodeRole(row), storedState: state, dormant: try row.bool("dormant"),
            inviterID: try row.optionalUUID("inviter_id"), platformInviteID: try row.optionalUUID("platform_invite_id"),
            createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"))
    }

    /// SQL for a state filter on table alias `t`; `expired` and `pending` are told apart by
    /// `expires_at` at `$n`. Org invites (`dormant` column) do not expire while dormant;
    /// platform invites have no such column.
    static func stateFilter(_ state: InviteState?, now n: Int, table t: String = "i", dormancy: Bool = true) -> String {
        let asleep = dormancy ? "\(t).dormant = TRUE OR " : ""
        let awake = dormancy ? " AND \(t).dormant = FALSE" : ""
        switch state {
        case nil: return ""
        case .pending: return " AND \(t).state = 'pending' AND (\(asleep)\(t).expires_at > $\(n))"
        case .expired: return " AND \(t).state = 'pending'\(awake) AND \(t).expires_at <= $\(n)"
        case let s?: return " AND \(t).state = '\(s.rawValue)'"
        }
    }

    public func invites(orgID: UUID, state: InviteState?, now: Date, limit: Int, offset: Int) async throws -> ([Invite], Int) {
        try await invites(where: "WHERE i.org_id = $1", orgID.sqlValue, state: state, now: now, limit: limit, offset: offset)
    }

    public func invites(email: String, state: InviteState?, now: Date, limit: Int, offset: Int) async throws -> ([Invite], Int) {
        try await invites(where: "WHERE i.email = $1 AND i.dormant = FALSE", email.sqlValue, state: state, now: now, limit: limit, offset: offset)
    }

    /// Invites matching `condition` on `$1`, in any state or in `state` as of `now` (`$2`, bound
    /// even when no state asks for it so both statements number alike), newest first.
    private func invites(
        where condition: String, _ value: SQLValue, state: InviteState?, now: Date, limit: Int, offset: Int
    ) async throws -> ([Invite], Int) {
        try await db.page(
            select: Self.columns, "\(Self.joined) \(condition)\(Self.stateFilter(state, now: 2)) AND $2 = $2",
            orderBy: "i.created_at DESC, i.id", [value, now.sqlValue], limit: limit, offset: offset, Self.decode)
    }

    public func invite(id: UUID) async throws -> Invite? {
        try await Writer(tx: db).invite(id: id)
    }

    public func invite(tokenHash: String) async throws -> Invite? {
        try await Writer(tx: db).invite(tokenHash: tokenHash)
    }

    public func platformInvites(state: InviteState?, now: Date, limit: Int, offset: Int) async throws -> ([PlatformInvite], Int) {
        let filter = "WHERE $1 = $1" + Self.stateFilter(state, now: 1, table: "p", dormancy: false)
        let (ids, total) = try await db.page(
            select: "p.id", "FROM platform_invites p \(filter)", orderBy: "p.created_at DESC, p.id", [now.sqlValue], limit: limit, offset: offset) {
            try $0.uuid("id")
        }
        var out: [PlatformInvite] = []
        for id in ids { if let p = try await Writer(tx: db).platformInvite(id: id) { out.append(p) } }
        return (out, total)
    }

    public func platformInvite(id: UUID) async throws -> PlatformInvite? {
        try await Writer(tx: db).platformInvite(id: id)
    }

    public func writeInvites<T: Sendable>(lockingOrg orgID: UUID?, _ body: @escaping @Sendable (any TenancyWriter, any InviteWriter) async throws -> T) async throws -> T {
        try await SQLTenancyStore.write(db, observer: observer, lockingOrg: orgID) { tx in
            try await body(SQLTenancyStore.Writer(tx: tx), Writer(tx: tx))
        }
    }

    public func signup(_ credentials: UserCredentials, inviteTokenHash: String, now: Date, inviteLifetime: TimeInterval) async throws -> Int64? {
        do {
            return try await write { tx in
                let email = credentials.user.email
                guard try await Self.spendSignupInvite(tx, tokenHash: inviteTokenHash, email: email, now: now) else { return nil }
                try await SQLIdentityStore.insertUser(tx, credentials)
                try await Self.wakeDormantInvites(tx, email: email, now: now, lifetime: inviteLifetime)
                return try await ChangeLog.append(tx, .userCreated(credentials.user.id), at: now)
            }
        } catch StorageError.uniqueViolation {
            throw IdentityError.emailTaken
        }
    }

    /// Whether an invite token lets `email` sign up: a platform invite's token (spent here), or a
    /// pending org invite's (accepted later, from the account). Either proves the address.
    static func spendSignupInvite(_ tx: any SQLExecutor, tokenHash: String, email: String, now: Date) async throws -> Bool {
        if let p = try await tx.queryFirst(
            "SELECT id FROM platform_invites WHERE token_hash = $1 AND email = $2 AND state = 'pending' AND expires_at > $3", tokenHash, email, now) {
            try await tx.execute("UPDATE platform_invites SET state = 'accepted' WHERE id = $1", try p.uuid("id"))
            return true
        }
        return try await tx.queryFirst(
            "SELECT id FROM invites WHERE token_hash = $1 AND email = $2 AND state = 'pending' AND (dormant = TRUE OR expires_at > $3)",
            tokenHash, email, now) != nil
    }

    /// Dormant invites for a now-proven address become pending, with a fresh expiry.
    static func wakeDormantInvites(_ tx: any SQLExecutor, email: String, now: Date, lifetime: TimeInterval) async throws {
        try await tx.execute(
            "UPDATE invites SET dormant = FALSE, expires_at = $2 WHERE email = $1 AND dormant = TRUE AND state = 'pending'",
            email, now.addingTimeInterval(lifetime))
    }

    struct Writer: InviteWriter {
        let tx: any SQLExecutor

        func invite(id: UUID) async throws -> Invite? {
            try await tx.queryFirst("\(SQLInviteStore.select) WHERE i.id = $1", id).map(SQLInviteStore.decode)
        }

        func invite(tokenHash: String) async throws -> Invite? {
            try await tx.queryFirst("\(SQLInviteStore.select) WHERE i.token_hash = $1", tokenHash).map(SQLInviteStore.decode)
        }

        func livePendingInvite(orgID: UUID, email: String, now: Date) async throws -> Invite? {
            try await tx.queryFirst(
                "\(SQLInviteStore.select) WHERE i.org_id = $1 AND i.email = $2\(SQLInviteStore.stateFilter(.pending, now: 3))",
                orgID, email, now
            ).map(SQLInviteStore.decode)
        }

        func insertInvite(_ i: Invite, tokenHash: String) async throws {
            try await tx.execute(
                """
                INSERT INTO invites (id, org_id, email, role, state, dormant, token_hash, inviter_id, platform_invite_id, created_at, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                """,
                i.id, i.orgID, i.email, i.role.rawValue, i.storedState.rawValue, i.dormant, tokenHash, i.inviterID, i.platformInviteID, i.createdAt, i.expiresAt)
        }

        func setState(inviteID: UUID, _ state: InviteState) async throws {
            try await tx.execute("UPDATE invites SET state = $2 WHERE id = $1", inviteID, state.rawValue)
        }

        func renew(inviteID: UUID, tokenHash: String, expiresAt: Date) async throws {
            try await tx.execute("UPDATE invites SET token_hash = $2, expires_at = $3, state = 'pending' WHERE id = $1", inviteID, tokenHash, expiresAt)
        }

        func platformInvite(id: UUID) async throws -> PlatformInvite? {
            guard let row = try await tx.queryFirst(
                "SELECT id, email, state, inviter_id, created_at, expires_at FROM platform_invites WHERE id = $1", id) else { return nil }
            guard let state = InviteState(rawValue: try row.string("state")) else { throw StorageError.decoding(column: "state") }
            let attached = try await tx.query("\(SQLInviteStore.select) WHERE i.platform_invite_id = $1 ORDER BY i.created_at, i.id", id).map(SQLInviteStore.decode)
            return PlatformInvite(
                id: try row.uuid("id"), email: try row.string("email"), storedState: state, inviterID: try row.optionalUUID("inviter_id"),
                createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"), orgInvites: attached)
        }

        func livePendingPlatformInvite(email: String, now: Date) async throws -> PlatformInvite? {
            // PostgreSQL: two creates for one address queue here, so the second sees the first's
            // invite (SQLite runs one write transaction at a time anyway).
            if tx.dialect == .postgres {
                try await tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "platform_invite:" + email)
            }
            let live = SQLInviteStore.stateFilter(.pending, now: 2, table: "p", dormancy: false)
            guard let row = try await tx.queryFirst(
                "SELECT p.id FROM platform_invites p WHERE p.email = $1\(live) ORDER BY p.created_at DESC LIMIT 1", email, now)
            else { return nil }
            return try await platformInvite(id: try row.uuid("id"))
        }

        func insertPlatformInvite(_ p: PlatformInvite, tokenHash: String) async throws {
            try await tx.execute(
                "INSERT INTO platform_invites (id, email, state, token_hash, inviter_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                p.id, p.email, p.storedState.rawValue, tokenHash, p.inviterID, p.createdAt, p.expiresAt)
        }

        func setPlatformState(id: UUID, _ state: InviteState) async throws {
            try await tx.execute("UPDATE platform_invites SET state = $2 WHERE id = $1", id, state.rawValue)
        }

        func enqueue(_ mail: OutgoingMail, at: Date) async throws {
            try await SQLOutbox.enqueue(tx, mail, at: at)
        }
    }
}
