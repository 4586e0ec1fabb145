import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IP address or CIDR range, e.g. `127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
public struct IPRange: Sendable, Equatable {
    let bytes: [UInt8]
    let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPRange.parse(String(parts[0])) else { return nil }
        var prefix = address.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...address.count * 8).contains(p) else { return nil }
            prefix = p
        }
        self.bytes = address
        self.prefix = prefix
    }

    public func contains(_ address: String) -> Bool {
        guard let candidate = IPRange.parse(address), candidate.count == bytes.count else { return false }
        var remaining = prefix
        for (a, b) in zip(candidate, bytes) where remaining > 0 {
            let bits = min(8, remaining)
            let mask: UInt8 = bits == 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if a & mask != b & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// 4 bytes for IPv4 (also when written as IPv4-mapped IPv6), 16 for IPv6; nil when not an address.
    static func parse(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 45 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, trimmed, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, trimmed, &v6) == 1 {
            let raw = withUnsafeBytes(of: &v6) { Array($0) }
            if raw[0..<10].allSatisfy({ $0 == 0 }), raw[10] == 0xFF, raw[11] == 0xFF { return Array(raw[12..<16]) }
            return raw
        }
        return nil
    }
}

/// Which address a request comes from. `X-Forwarded-For` is believed only from a trusted
/// proxy, and then the right-most hop that is not itself a trusted proxy is the client:
/// everything left of it could have been written by the client.
public struct ClientAddress: Sendable {
    public let trustedProxies: [IPRange]

    public init(trustedProxies: [IPRange]) { self.trustedProxies = trustedProxies }

    public func resolve(peer: String, forwardedFor: [String]) -> String {
        guard !trustedProxies.isEmpty, isTrusted(peer), !forwardedFor.isEmpty else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { Self.address(of: $0.trimmingCharacters(in: .whitespaces)) }
        for hop in hops.reversed() {
            guard IPRange.parse(hop) != nil else { return peer }
            if !isTrusted(hop) { return hop }
        }
        return hops.first ?? peer
    }

    /// Some proxies write `ip:port` or `[v6]:port`; the address is what counts.
    static func address(of hop: String) -> String {
        if hop.hasPrefix("["), let close = hop.firstIndex(of: "]") {
            return String(hop[hop.index(after: hop.startIndex)..<close])
        }
        let colons = hop.filter { $0 == ":" }.count
        if colons == 1, let colon = hop.firstIndex(of: ":") { return String(hop[..<colon]) }
        return hop
    }

    private func isTrusted(_ address: String) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }
}
