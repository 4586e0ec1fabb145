import Foundation

/// A URL that may carry a user name and password (`PORTCULLIS_DATABASE_URL`, `PORTCULLIS_SMTP_URL`),
/// parsed strictly. Lenient parsing is how a password leaks: an unencoded `/`, `?` or `#` in it
/// ends the host early, and its tail is taken for a database name or a query — which then shows
/// up in a "cannot connect to …" line. Whoever reports a malformed one names the variable and the
/// expected shape, never the value: any part of it may be the password.
public enum CredentialURL {
    /// The parts of `text` if it is `scheme://[user[:password]@]host[:port][/path][?query]` with one of
    /// `schemes`, a host (unless `hostOptional`), a numeric port if any, no `@` after the host, and
    /// no whitespace or control characters; nil otherwise.
    public static func parse(_ text: String, schemes: Set<String>, hostOptional: Bool = false) -> URLComponents? {
        guard !text.unicodeScalars.contains(where: { CharacterSet.whitespacesAndNewlines.contains($0) || CharacterSet.controlCharacters.contains($0) }),
              let separator = text.range(of: "://") else { return nil }
        let rest = text[separator.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        // One `@` at most, and only in the authority: an `@` further on means the user info
        // held an unencoded delimiter.
        guard rest[..<authorityEnd].filter({ $0 == "@" }).count <= 1, !rest[authorityEnd...].contains("@") else { return nil }
        guard let parts = URLComponents(string: text), let scheme = parts.scheme?.lowercased(), schemes.contains(scheme),
              hostOptional || !(parts.host ?? "").isEmpty else { return nil }
        // A port that is there must be a number (not left nil by a lenient parser).
        let hostAndPort = rest[..<authorityEnd].split(separator: "@", omittingEmptySubsequences: false).last ?? ""
        if !hostAndPort.hasSuffix("]"), hostAndPort.contains(":"), parts.port == nil { return nil }
        return parts
    }

    /// How to write the user info so that the URL parses (for error messages).
    public static let encodingHint = "percent-encode @ : / ? # % and spaces in the user name and password; the value is not shown, it may hold a password"
}
