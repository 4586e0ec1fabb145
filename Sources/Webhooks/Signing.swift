import Crypto
import Foundation
import Memberwise

/// A webhook endpoint's signing secret in the Standard Webhooks form: `whsec_` and the base64 of
/// the key. Shown once when made; only the sealed key is kept.
@PublicInit
public struct WebhookSecret: Sendable, Equatable {
    public static let prefix = "whsec_"
    public let key: Data

    /// A new secret: 32 random bytes.
    public static func mint() -> WebhookSecret {
        WebhookSecret(key: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    /// `whsec_<base64>`, as the receiver configures it.
    public var text: String { Self.prefix + key.base64EncodedString() }

    /// Reads `whsec_<base64>` (or bare base64, as the libraries accept it).
    public init?(text: String) {
        let body = text.hasPrefix(Self.prefix) ? String(text.dropFirst(Self.prefix.count)) : text
        guard let key = Data(base64Encoded: body), (16...64).contains(key.count) else { return nil }
        self.key = key
    }
}

/// Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per
/// current secret, separated by spaces (during a rotation the old and the new secret both sign).
public enum WebhookSignature {
    /// The three headers of a delivery.
    public static func headers(id: String, timestamp: Date, body: Data, secrets: [WebhookSecret]) -> [(name: String, value: String)] {
        let seconds = Int64(timestamp.timeIntervalSince1970)
        return [
            ("webhook-id", id),
            ("webhook-timestamp", String(seconds)),
            ("webhook-signature", secrets.map { sign(id: id, timestamp: seconds, body: body, secret: $0) }.joined(separator: " ")),
        ]
    }

    public static func sign(id: String, timestamp: Int64, body: Data, secret: WebhookSecret) -> String {
        var message = Data("\(id).\(timestamp).".utf8)
        message.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret.key))
        return "v1," + Data(mac).base64EncodedString()
    }
}
