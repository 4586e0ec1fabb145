import Crypto
import Foundation

/// Seals private key material at rest with a 256-bit master key (AES-GCM).
public struct KeySealer: Sendable {
    private let key: SymmetricKey

    public init(masterKey: Data) throws {
        guard masterKey.count == 32 else { throw KeySealerError.badMasterKey }
        key = SymmetricKey(data: masterKey)
    }

    public func seal(_ plaintext: Data) throws -> String {
        let box = try AES.GCM.seal(plaintext, using: key)
        guard let combined = box.combined else { throw KeySealerError.cannotSeal }
        return combined.base64EncodedString()
    }

    public func open(_ sealed: String) throws -> Data {
        guard let data = Data(base64Encoded: sealed) else { throw KeySealerError.cannotOpen }
        do {
            return try AES.GCM.open(AES.GCM.SealedBox(combined: data), using: key)
        } catch {
            throw KeySealerError.cannotOpen
        }
    }

    /// Reads the master key from base64 text, or from a file created (mode 0600) when missing.
    public static func masterKey(base64: String?, file: String) throws -> Data {
        if let base64 {
            guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw KeySealerError.badMasterKey
            }
            return data
        }
        let url = URL(fileURLWithPath: file)
        if let text = try? String(contentsOf: url, encoding: .utf8) {
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw KeySealerError.badMasterKeyFile(file)
            }
            return data
        }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let data = Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let created = FileManager.default.createFile(
            atPath: file, contents: Data((data.base64EncodedString() + "\n").utf8),
            attributes: [.posixPermissions: 0o600])
        guard created else { throw KeySealerError.badMasterKeyFile(file) }
        return data
    }
}

public enum KeySealerError: Error, Equatable, CustomStringConvertible {
    case badMasterKey
    case badMasterKeyFile(String)
    case cannotSeal
    case cannotOpen

    public var description: String {
        switch self {
        case .badMasterKey: return "PORTCULLIS_MASTER_KEY must be the base64 encoding of 32 bytes"
        case .badMasterKeyFile(let f): return "PORTCULLIS_MASTER_KEY_FILE (\(f)) must hold the base64 encoding of 32 bytes and be writable on first start"
        case .cannotSeal: return "cannot seal key material"
        case .cannotOpen: return "a signing key cannot be decrypted with this master key (PORTCULLIS_MASTER_KEY differs from the one that sealed it)"
        }
    }
}
