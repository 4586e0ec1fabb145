import Crypto
import Foundation

/// What a browser's session cookie holds (SPEC §13): the session's id and its user's id, with a
/// MAC under a key derived from the master key, so every node of an instance reads it and nobody
/// without the key can name a session. The session itself stays server-side, in the sessions
/// table: revoking it (logout, "sign out everywhere", a password reset) ends the cookie too.
public struct SessionCookie: Sendable {
    private let key: SymmetricKey

    public init(masterKey: Data) {
        key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: masterKey), info: Data("portcullis browser session cookie v1".utf8), outputByteCount: 32)
    }

    public func value(sessionID: UUID, userID: UUID) -> String {
        let ids = Self.bytes(sessionID) + Self.bytes(userID)
        return Secrets.base64url(ids) + "." + Secrets.base64url(Array(HMAC<SHA256>.authenticationCode(for: ids, using: key)))
    }

    /// The ids a cookie names, or nil for anything not made by `value` under this key.
    public func open(_ value: String) -> (sessionID: UUID, userID: UUID)? {
        guard value.utf8.count <= 128 else { return nil }
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let ids = Secrets.base64urlDecode(String(parts[0])).map(Array.init), ids.count == 32,
              let mac = Secrets.base64urlDecode(String(parts[1])),
              HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: ids, using: key) else { return nil }
        return (Self.uuid(ids[0..<16]), Self.uuid(ids[16..<32]))
    }

    /// The form token of a signed-in session: bound to the session, so a cookie planted by
    /// someone else (a sibling subdomain, a plain-http man in the middle) cannot stand in for it.
    public func formToken(sessionID: UUID) -> String {
        Secrets.base64url(Array(HMAC<SHA256>.authenticationCode(for: Data("form:".utf8) + Self.bytes(sessionID), using: key)))
    }

    /// A short text sealed with the key (the pages' one-time notices): `open` gives it back only
    /// unchanged, so nobody else can put words on a page.
    public func seal(_ text: String) -> String {
        let bytes = Array(text.utf8.prefix(400))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("notice:".utf8) + bytes, using: key)
        return Secrets.base64url(bytes) + "." + Secrets.base64url(Array(mac))
    }

    public func unseal(_ value: String) -> String? {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard value.utf8.count <= 1024, parts.count == 2, let bytes = Secrets.base64urlDecode(String(parts[0])),
              let mac = Secrets.base64urlDecode(String(parts[1])),
              HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data("notice:".utf8) + bytes, using: key) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func bytes(_ id: UUID) -> [UInt8] { withUnsafeBytes(of: id.uuid) { Array($0) } }

    static func uuid(_ bytes: ArraySlice<UInt8>) -> UUID {
        var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        return UUID(uuid: raw)
    }
}
