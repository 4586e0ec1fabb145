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
}

public enum KeySealerError: Error, Equatable, CustomStringConvertible {
    case badMasterKey
    case cannotSeal
    case cannotOpen

    public var description: String {
        switch self {
        case .badMasterKey: return "PORTCULLIS_MASTER_KEY must be the base64 encoding of 32 bytes"
        case .cannotSeal: return "cannot seal key material"
        case .cannotOpen: return "a signing key cannot be decrypted with this master key (PORTCULLIS_MASTER_KEY differs from the one that sealed it)"
        }
    }
}
