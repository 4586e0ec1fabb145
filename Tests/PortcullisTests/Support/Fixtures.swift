import Foundation
import Testing

/// The setup most suites start from, typed once: Alice signs up and owns an org "Acme"; Bob
/// signs up and, when `bobRole` is given, is added to it with that role.
extension APIClient {
    func aliceAndBob(bobRole: String? = nil) async throws -> (alice: Tokens, bob: Tokens, org: String) {
        let alice = try await signupAndLogin("alice@example.com")
        let bob = try await signupAndLogin("bob@example.com")
        let org = try await createOrg(alice.access)
        if let bobRole { try await addMember(alice.access, org: org, email: "bob@example.com", role: bobRole) }
        return (alice, bob, org)
    }
}

/// The package's root directory (this file is Tests/PortcullisTests/Support/Fixtures.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
