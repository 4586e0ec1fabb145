import Foundation
import Identity

/// Migrations written in Swift, for rules SQL cannot state the same way on both dialects.
/// They take version numbers between the SQL files' and run in the same transaction as those.
enum DataMigrations {
    static let all: [Migration] = [
        Migration(version: 6, name: "email_nfc", sql: "", step: canonicalEmails),
    ]

    /// Rewrites every stored address to its canonical form, which gained Unicode NFC in this
    /// version (SPEC §12). Two accounts whose addresses become one cannot be merged by a program:
    /// the migration is refused, naming both, and changes nothing.
    @Sendable static func canonicalEmails(_ tx: any SQLExecutor) async throws {
        // Keys are folded (NFC), so the dictionary's canonical-equivalence compare is a byte compare.
        var owners: [String: (id: UUID, email: String)] = [:]
        var rewrites: [(id: UUID, email: String)] = []
        for row in try await tx.query("SELECT id, email FROM users ORDER BY created_at, id") {
            let id = try row.uuid("id"), email = try row.string("email")
            let folded = Email.folded(email)
            if let other = owners[folded] {
                throw StorageError.migrationRefused(
                    "users \(other.id.uuidString.lowercased()) (\(shown(other.email))) and \(id.uuidString.lowercased()) (\(shown(email))) "
                    + "have one e-mail address under the comparison rule (trimmed, Unicode NFC, lowercase); "
                    + "give one of them another address (UPDATE users SET email = '…' WHERE id = '…') or delete it, then start again")
            }
            owners[folded] = (id, email)
            if !folded.unicodeScalars.elementsEqual(email.unicodeScalars) { rewrites.append((id, folded)) }
        }
        // Only after every collision is ruled out: a rewrite can then never meet the unique index.
        for r in rewrites { try await tx.execute("UPDATE users SET email = $1 WHERE id = $2", r.email, r.id) }
        for table in ["invites", "platform_invites"] {
            for row in try await tx.query("SELECT id, email FROM \(table)") {
                let email = try row.string("email")
                let folded = Email.folded(email)
                if !folded.unicodeScalars.elementsEqual(email.unicodeScalars) {
                    try await tx.execute("UPDATE \(table) SET email = $1 WHERE id = $2", folded, try row.uuid("id"))
                }
            }
        }
    }

    /// An address as an operator can tell two look-alikes apart: non-ASCII as `\u{…}`.
    static func shown(_ email: String) -> String {
        email.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : "\\u{\(String($0.value, radix: 16, uppercase: true))}" }.joined()
    }
}
