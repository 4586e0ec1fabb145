import CArgon2
import Foundation
import NIOPosix
import Memberwise

/// Hashes and checks passwords. Implementations must not block the caller's executor.
public protocol PasswordHasher: Sendable {
    func hash(_ password: String) async throws -> String
    /// True when `password` matches `encoded`. A malformed or untrusted hash is a mismatch.
    func verify(_ password: String, against encoded: String) async -> Bool
    /// A hash of a random password, checked against when the account does not exist so that
    /// "unknown e-mail" costs the same time as "wrong password".
    var decoyHash: String { get }
}

/// argon2id from the reference implementation, in PHC string form.
public struct Argon2idHasher: PasswordHasher {
    @PublicInit
    public struct Parameters: Sendable, Equatable {
        /// Memory in KiB.
        public var memory: UInt32
        public var iterations: UInt32
        public var parallelism: UInt32

        /// OWASP's first recommended configuration: m = 19 MiB, t = 2, p = 1.
        public static let owasp = Parameters(memory: 19_456, iterations: 2, parallelism: 1)
    }

    public let parameters: Parameters
    public let decoyHash: String
    private let pool: NIOThreadPool

    /// Stored hashes asking for more than this are refused before verification: argon2 trusts
    /// the parameters written in the hash, so a planted hash could otherwise exhaust memory.
    static let maximumMemory: UInt32 = 1 << 20
    static let maximumIterations: UInt32 = 16
    static let maximumParallelism: UInt32 = 16

    public init(parameters: Parameters = .owasp, pool: NIOThreadPool = .singleton) throws {
        self.parameters = parameters
        self.pool = pool
        self.decoyHash = try Self.hashSync(Secrets.token(), parameters: parameters)
    }

    public func hash(_ password: String) async throws -> String {
        let parameters = self.parameters
        return try await pool.runIfActive { try Self.hashSync(password, parameters: parameters) }
    }

    public func verify(_ password: String, against encoded: String) async -> Bool {
        guard Self.isTrusted(encoded) else { return false }
        return (try? await pool.runIfActive { Self.verifySync(password, encoded: encoded) }) ?? false
    }

    /// Whether a stored hash was made with other parameters than the current ones.
    public func needsRehash(_ encoded: String) -> Bool {
        Self.parse(encoded) != parameters
    }

    static func hashSync(_ password: String, parameters: Parameters) throws -> String {
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let hashLength = 32
        let encodedLength = argon2_encodedlen(
            parameters.iterations, parameters.memory, parameters.parallelism,
            UInt32(salt.count), UInt32(hashLength), Argon2_id)
        var encoded = [CChar](repeating: 0, count: encodedLength)
        let pwd = Array(password.utf8)
        let result = argon2id_hash_encoded(
            parameters.iterations, parameters.memory, parameters.parallelism,
            pwd, pwd.count, salt, salt.count, hashLength, &encoded, encodedLength)
        guard result == ARGON2_OK.rawValue else {
            throw PasswordHashError(code: result)
        }
        return String(decoding: encoded.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func verifySync(_ password: String, encoded: String) -> Bool {
        let pwd = Array(password.utf8)
        return argon2id_verify(encoded, pwd, pwd.count) == ARGON2_OK.rawValue
    }

    static func isTrusted(_ encoded: String) -> Bool {
        guard let p = parse(encoded) else { return false }
        return p.memory <= maximumMemory && p.iterations <= maximumIterations
            && p.parallelism >= 1 && p.parallelism <= maximumParallelism
    }

    /// Reads `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
    static func parse(_ encoded: String) -> Parameters? {
        let fields = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard fields.count == 6, fields[0].isEmpty, fields[1] == "argon2id", fields[2] == "v=19" else { return nil }
        var m: UInt32?, t: UInt32?, p: UInt32?
        for pair in fields[3].split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let value = UInt32(kv[1]) else { return nil }
            switch kv[0] {
            case "m": m = value
            case "t": t = value
            case "p": p = value
            default: return nil
            }
        }
        guard let m, let t, let p else { return nil }
        return Parameters(memory: m, iterations: t, parallelism: p)
    }
}

public struct PasswordHashError: Error, CustomStringConvertible {
    public let code: Int32
    public var description: String { "argon2 failed: \(String(cString: argon2_error_message(code)))" }
}
