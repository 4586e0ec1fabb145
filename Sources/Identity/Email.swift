import Foundation

/// E-mail addresses are compared and stored in one canonical form (SPEC §12): trimmed, Unicode
/// NFC, lowercased. Two addresses with one canonical form are one account, one invite, one
/// platform invite. Every store and every lookup of an address goes through `canonical`.
public enum Email {
    /// At most 254 Unicode scalars (local part 64, domain 253): counting scalars, not
    /// Characters, so a "character" with a thousand combining marks is not short.
    public static let maxLength = 254

    /// The comparison key of an address, whether or not it is valid: trimmed, NFC, lowercased.
    /// Lowercasing can undo NFC (J + combining caron has no precomposed capital, but its
    /// lowercase composes to U+01F0), so NFC runs again after it; the result is a fixed point.
    public static func folded(_ raw: String) -> String {
        raw.trimmingCharacters(in: .whitespacesAndNewlines)
            .precomposedStringWithCanonicalMapping
            .lowercased()
            .precomposedStringWithCanonicalMapping
    }

    /// The canonical form (`folded`), or nil when it is not a plausible address: exactly one
    /// `@`, a non-empty local part, a dotless-or-dotted domain, no spaces, separators or
    /// control characters (nothing that could split an SMTP command), within the lengths above.
    /// Compare results by their scalars (or let the database compare bytes): Swift's `==` on
    /// `String` already treats NFC and NFD as equal, which is what hid this rule's absence.
    public static func canonical(_ raw: String) -> String? {
        let address = folded(raw)
        let scalars = address.unicodeScalars
        guard !scalars.isEmpty, scalars.count <= maxLength else { return nil }
        // Split on the scalar: "@" followed by a combining mark is one Character, not an "@".
        guard let at = scalars.firstIndex(of: "@") else { return nil }
        let local = scalars[..<at], domain = scalars[scalars.index(after: at)...]
        guard !domain.contains("@") else { return nil }
        guard !local.isEmpty, local.count <= 64, !domain.isEmpty, domain.count <= 253 else { return nil }
        guard domain.first != ".", domain.last != ".", !zip(domain, domain.dropFirst()).contains(where: { $0 == "." && $1 == "." }) else { return nil }
        for scalar in scalars {
            if scalar.value < 0x21 || scalar.value == 0x7F { return nil }
            if "()<>,;:\\\"[]".unicodeScalars.contains(scalar) { return nil }
            switch scalar.properties.generalCategory {
            case .control, .spaceSeparator, .lineSeparator, .paragraphSeparator: return nil
            default: break
            }
        }
        return address
    }
}
