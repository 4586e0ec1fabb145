import Foundation
import Identity

/// E-mail sign-in codes (SPEC §15).
extension SQLIdentityStore {
    public func saveSignInCode(_ code: SignInCode) async throws {
        // Codes are swept a day after they expire, by whoever asks next: their misses count
        // against their address for that day.
        try await db.execute("DELETE FROM sign_in_codes WHERE expires_at <= $1", code.createdAt.addingTimeInterval(-86_400))
        try await db.execute(
            "INSERT INTO sign_in_codes (flow_hash, email, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            code.flowHash, code.email, code.codeHash, code.createdAt, code.expiresAt)
    }

    public func mailSignInCode(email: String, _ mail: @escaping @Sendable (User) -> OutgoingMail, now: Date) async throws {
        try await db.transaction { tx in
            guard let row = try await tx.queryFirst("SELECT \(Self.userColumns) FROM users WHERE email = $1", email) else { return }
            let user = try Self.decodeUser(row).user
            // Only a proven address: a code must not open an account somebody squatted on.
            guard user.emailVerified else { return }
            try await SQLOutbox.enqueue(tx, mail(user), at: now)
        }
    }

    public func spendSignInCode(flowHash: String, email: String, codeHash: String, maxTries: Int, maxMissesPerDay: Int, now: Date) async throws -> UUID? {
        try await db.transaction { tx in
            let lock = tx.dialect == .postgres ? " FOR UPDATE" : ""
            guard let row = try await tx.queryFirst(
                "SELECT email, code_hash, tries FROM sign_in_codes WHERE flow_hash = $1 AND used_at IS NULL AND expires_at > $2\(lock)", flowHash, now),
                try row.int("tries") < maxTries else { return nil }
            let missed = try await tx.queryFirst(
                "SELECT COALESCE(SUM(tries), 0) AS n FROM sign_in_codes WHERE email = $1 AND created_at > $2", email, now.addingTimeInterval(-86_400))?.int("n") ?? 0
            guard missed < maxMissesPerDay else { return nil }
            // The address is part of the proof; a different one counts as a miss like a wrong code.
            let stored = try row.string("code_hash"), asked = try row.string("email")
            let matches = Secrets.constantTimeEquals(stored, codeHash) && asked == email
            guard matches else {
                try await tx.execute("UPDATE sign_in_codes SET tries = tries + 1 WHERE flow_hash = $1", flowHash)
                return nil
            }
            try await tx.execute("UPDATE sign_in_codes SET used_at = $2 WHERE flow_hash = $1", flowHash, now)
            guard let user = try await tx.queryFirst("SELECT id, email_verified FROM users WHERE email = $1", email),
                  try user.bool("email_verified") else { return nil }
            return try user.uuid("id")
        }
    }
}
