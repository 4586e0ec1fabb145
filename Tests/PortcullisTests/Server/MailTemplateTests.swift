import Foundation
@testable import Server
@testable import Storage
import Testing

@Suite("Mail templates")
struct MailTemplateTests {
    func invite(_ extra: [String: String]) throws -> RenderedMail {
        let variables = ["org_name": "Acme", "role": "editor", "inviter_name": "Ada", "email": "bo@example.com",
                         "link": "https://id.example/x?token=t", "expires_at": "2026-12-09T00:00:00Z"].merging(extra) { $1 }
        let message = OutboxMessage(id: UUID(), createdAt: Date(), recipient: "bo@example.com", template: "invite", variables: variables,
                                    attempts: 0, nextAttemptAt: Date(), sentAt: nil, lastError: nil)
        return try #require(try MailTemplates.load(directory: nil).render(message))
    }

    @Test("the invite mail fits the recipient: account, no account, or an address still to confirm")
    func inviteVariants() throws {
        let verified = try invite(["has_account": "yes"])
        #expect(verified.text.contains("Accept the invitation:") && !verified.text.contains("not confirmed"))
        let none = try invite([:])
        #expect(none.text.contains("Create your account to accept:") && !none.text.contains("Accept the invitation"))
        let unproven = try invite(["needs_verification": "yes"])
        #expect(unproven.text.contains("An account with bo@example.com exists, but the address is not confirmed yet"))
        // Whoever did not make the account is told not to confirm it (that would hand the invite
        // to a squatter) but to reset its password, which proves the address and ends the squatter's access.
        #expect(unproven.text.contains("do not confirm it. Reset its password instead"))
        #expect(!unproven.text.contains("Create your account"))
        #expect(unproven.html.contains("not confirmed yet") && unproven.html.contains(">Accept the invitation</a>"))
    }
}
