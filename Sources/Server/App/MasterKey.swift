import Foundation
import Storage

/// The master key that seals signing keys at rest: `PORTCULLIS_MASTER_KEY` (base64), or the file
/// `PORTCULLIS_MASTER_KEY_FILE`, created (mode 0600) on the first start. Every failure names the
/// variable, the path and the reason.
public enum MasterKey {
    /// `create`: make the file when it is missing (`serve`, `migrate`, `restore`); commands that
    /// act on an existing instance must find it, or they would seal keys nobody can open.
    public static func load(base64: String?, file: String, create: Bool = true) throws(ConfigError) -> Data {
        if let base64 {
            guard let data = decode(base64) else {
                throw ConfigError(variable: "PORTCULLIS_MASTER_KEY", message: "must be the base64 encoding of 32 random bytes (e.g. openssl rand -base64 32)")
            }
            return data
        }
        func failure(_ message: String) -> ConfigError { ConfigError(variable: "PORTCULLIS_MASTER_KEY_FILE", message: message) }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) {
            guard !isDirectory.boolValue else { throw failure("\(file) is a directory; name the key file itself") }
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw failure("cannot read \(file): \(FileProblem.reason(error, path: file))")
            }
            guard let data = decode(text) else {
                throw failure("\(file) does not hold a master key (the base64 encoding of 32 bytes); restore the right file, or move this one away to start afresh without the old signing keys")
            }
            return data
        }
        guard create else {
            throw failure("\(file) does not exist; run this command where the instance's master key is (or set PORTCULLIS_MASTER_KEY or PORTCULLIS_MASTER_KEY_FILE)")
        }
        let directory = (file as NSString).deletingLastPathComponent
        do {
            if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        } catch {
            throw failure("cannot create the directory \(directory) for \(file): \(FileProblem.reason(error, path: directory))")
        }
        var generator = SystemRandomNumberGenerator()
        let data = Data((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
        guard FileManager.default.createFile(atPath: file, contents: Data((data.base64EncodedString() + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            let reason = FileProblem.fileInTheWay(of: file).map { "\($0) is a file, not a directory" }
                ?? (FileManager.default.isWritableFile(atPath: directory.isEmpty ? "." : directory) ? "the file cannot be written" : "permission denied")
            throw failure("cannot create \(file): \(reason)")
        }
        return data
    }

    static func decode(_ text: String) -> Data? {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else { return nil }
        return data
    }
}
