import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a webhook may be sent (SSRF guard): https URLs (http only when private targets are
/// allowed, for tests and closed networks), no user information, and, at send time, only to
/// public addresses: the name is resolved and every address it resolves to is checked (DNS can
/// change after registration, so registration alone proves nothing).
public struct WebhookDestination: Sendable, Equatable {
    public let url: URL
    public let host: String
    public let port: Int

    public static let maxURLLength = 2000

    public init(_ text: String, allowPrivate: Bool) throws {
        guard text.utf8.count <= Self.maxURLLength, let url = URL(string: text), let scheme = url.scheme?.lowercased(),
              let host = url.host, !host.isEmpty else {
            throw WebhookError.invalid("the URL must be an absolute URL")
        }
        guard scheme == "https" || (scheme == "http" && allowPrivate) else { throw WebhookError.invalid("the URL must be https") }
        guard url.user == nil, url.password == nil else { throw WebhookError.invalid("the URL must not carry user information") }
        guard url.fragment == nil else { throw WebhookError.invalid("the URL must not have a fragment") }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if !allowPrivate, let literal = IPAddress(bare), !literal.isPublic {
            throw WebhookError.invalid("the URL points at a private, loopback or link-local address")
        }
        self.url = url
        self.host = bare
        self.port = url.port ?? (scheme == "https" ? 443 : 80)
    }
}

/// An IPv4 or IPv6 address, classified for the SSRF guard.
public enum IPAddress: Sendable, Equatable {
    case v4(UInt32)
    case v6([UInt8])

    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// Reachable on the public internet: not loopback, private, link-local (cloud metadata lives
    /// at 169.254.169.254), shared (100.64/10), unspecified, multicast or reserved.
    public var isPublic: Bool {
        switch self {
        case .v4(let a):
            func within(_ net: UInt32, _ bits: UInt32) -> Bool { bits == 0 || a >> (32 - bits) == net >> (32 - bits) }
            let blocked: [(UInt32, UInt32)] = [
                (0x0000_0000, 8), (0x0A00_0000, 8), (0x6440_0000, 10), (0x7F00_0000, 8), (0xA9FE_0000, 16), (0xAC10_0000, 12),
                (0xC000_0000, 24), (0xC000_0200, 24), (0xC0A8_0000, 16), (0xC612_0000, 15), (0xC633_6400, 24), (0xCB00_7100, 24),
                (0xE000_0000, 4), (0xF000_0000, 4),
            ]
            return !blocked.contains { within($0.0, $0.1) }
        case .v6(let b):
            // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::/96) carry an IPv4 address: judge that.
            let mapped = b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xFF && b[11] == 0xFF
            let nat64 = b[0..<12] == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0]
            if mapped || nat64 {
                return IPAddress.v4(UInt32(b[12]) << 24 | UInt32(b[13]) << 16 | UInt32(b[14]) << 8 | UInt32(b[15])).isPublic
            }
            if b[0..<15].allSatisfy({ $0 == 0 }) { return false }       // :: and ::1
            if b[0] & 0xFE == 0xFC { return false }                       // fc00::/7, unique local
            if b[0] == 0xFE, b[1] & 0xC0 == 0x80 { return false }        // fe80::/10, link-local
            if b[0] == 0xFF { return false }                              // multicast
            if b[0] == 0x20, b[1] == 0x01, b[2] == 0x0D, b[3] == 0xB8 { return false } // 2001:db8::/32, documentation
            return true
        }
    }
}
