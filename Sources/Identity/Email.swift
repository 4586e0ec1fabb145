/// E-mail addresses are compared and stored in one canonical form.
public enum Email {
    public static let maxLength = 254

    /// Trims surrounding whitespace and lowercases; returns nil when the result is not a
    /// plausible address (one `@`, non-empty local part, a dotless-or-dotted domain without
    /// spaces or control characters, at most 254 characters).
    public static func canonical(_ raw: String) -> String? {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        guard !trimmed.isEmpty, trimmed.count <= maxLength else { return nil }
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let local = parts[0], domain = parts[1]
        guard !local.isEmpty, local.count <= 64, !domain.isEmpty, domain.count <= 253 else { return nil }
        guard !domain.hasPrefix("."), !domain.hasSuffix("."), !domain.contains("..") else { return nil }
        for scalar in trimmed.unicodeScalars {
            if scalar.value < 0x21 || scalar.value == 0x7F { return nil }
            if "()<>,;:\\\"[]".unicodeScalars.contains(scalar) { return nil }
        }
        return trimmed
    }
}

import Foundation
