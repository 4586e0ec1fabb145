import Foundation
import Testing
import Webhooks

/// The pieces of webhook delivery that need no network: signatures, filters, retries, and the
/// SSRF guard's address rules (SPEC §16).
@Suite("Webhook rules")
struct WebhookRulesTests {
    @Test("signatures match the Standard Webhooks test vector; during a rotation both secrets sign")
    func signature() throws {
        let secret = try #require(WebhookSecret(text: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let body = Data(#"{"test": 2432232314}"#.utf8)
        #expect(WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body, secret: secret)
            == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let next = WebhookSecret.mint()
        let headers = WebhookSignature.headers(
            id: "msg_1", timestamp: Date(timeIntervalSince1970: 1_614_265_330), body: body, secrets: [secret, next])
        #expect(headers.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
        #expect(headers[1].value == "1614265330")
        let signatures = headers[2].value.split(separator: " ")
        #expect(signatures.count == 2 && signatures.allSatisfy { $0.hasPrefix("v1,") })
        #expect(WebhookSecret(text: next.text) == next)
        #expect(next.text.hasPrefix("whsec_") && next.key.count == 32)
        #expect(WebhookSecret(text: "whsec_not base64!") == nil)
    }

    @Test("event filters: exact types, families and everything; unknown families refused")
    func filters() throws {
        let filter = try EventFilter(["member.*", "invite.accepted", "member.*"])
        #expect(filter.patterns == ["member.*", "invite.accepted"])
        #expect(filter.matches("member.added") && filter.matches("member.role_changed"))
        #expect(filter.matches("invite.accepted") && !filter.matches("invite.created"))
        #expect(!filter.matches("members.added") && !filter.matches("key.created"))
        #expect(try EventFilter(["*"]).matches("org.deleted"))
        for bad in [[], ["widget.*"], ["member"], ["member."], ["*.added"], ["member.a-b"]] {
            #expect(throws: WebhookError.self) { try EventFilter(bad) }
        }
    }

    @Test("retries back off from 5 s to 6 h a wait, jittered, and give up after about three days")
    func retries() {
        let schedule = RetrySchedule()
        #expect(schedule.wait(after: 1, unit: 0.999_999)! <= 5 && schedule.wait(after: 1, unit: 0)! == 2.5)
        #expect(schedule.wait(after: 2, unit: 0)! == 5)
        #expect(schedule.wait(after: 20, unit: 0.999_999)! <= 6 * 3600)
        #expect(schedule.wait(after: schedule.attempts, unit: 0.5) == nil)
        #expect((2.5 * 86_400...3.5 * 86_400).contains(schedule.longestSpan))
    }

    @Test("destinations: https only, no user information, no private, loopback, link-local or metadata literals", arguments: [
        "http://example.com/hook", "https://user:pw@example.com/hook", "https://127.0.0.1/hook", "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/hook", "https://[::1]/hook", "https://[fe80::1]/hook", "https://[::ffff:127.0.0.1]/hook", "https://[fd00::1]/h",
        "https://100.64.0.1/hook", "https://0.0.0.0/hook", "https://192.168.1.1/hook", "https://172.16.0.1/hook", "not a url",
    ])
    func refusedDestinations(_ url: String) {
        #expect(throws: WebhookError.self) { try WebhookDestination(url, allowPrivate: false) }
    }

    @Test("public destinations pass; with private targets allowed, loopback http passes for tests")
    func allowedDestinations() throws {
        #expect(try WebhookDestination("https://hooks.example.com:8443/in", allowPrivate: false).port == 8443)
        #expect(try WebhookDestination("https://93.184.216.34/in", allowPrivate: false).host == "93.184.216.34")
        #expect(try WebhookDestination("https://[2606:4700::1111]/in", allowPrivate: false).host == "2606:4700::1111")
        #expect(try WebhookDestination("http://127.0.0.1:9000/in", allowPrivate: true).port == 9000)
        #expect(IPAddress("172.32.0.1")?.isPublic == true)
        #expect(IPAddress("172.31.255.255")?.isPublic == false)
        #expect(IPAddress("64:ff9b::a00:1")?.isPublic == false)
        #expect(IPAddress("8.8.8.8")?.isPublic == true)
    }
}
