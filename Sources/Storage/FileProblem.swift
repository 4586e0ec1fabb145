import Foundation

/// The reason a file operation failed, in the words an operator needs ("permission denied",
/// "… is a file, not a directory"), not Foundation's error domains and codes.
public enum FileProblem {
    public static func reason(_ error: any Error, path: String) -> String {
        let ns = error as NSError
        let posix = (ns.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap { $0.domain == NSPOSIXErrorDomain ? $0.code : nil }
            ?? (ns.domain == NSPOSIXErrorDomain ? ns.code : nil)
        // "File exists" / "not a directory": a regular file stands where a directory is needed.
        let exists = posix == Int(EEXIST) || posix == Int(ENOTDIR)
            || (ns.domain == NSCocoaErrorDomain && ns.code == CocoaError.fileWriteFileExists.rawValue)
        if exists, let culprit = fileInTheWay(of: path, includingItself: true) {
            return "\(culprit) is a file, not a directory"
        }
        switch posix.map(Int32.init) {
        case EACCES?, EPERM?: return "permission denied"
        case EROFS?: return "read-only file system"
        case ENOSPC?: return "no space left on the device"
        case ENOENT?: return "no such file or directory"
        case EISDIR?: return "it is a directory"
        case let code?: return String(cString: strerror(code))
        case nil: return ns.localizedDescription
        }
    }

    /// The nearest ancestor of `path` (with `includingItself`, the path too) that exists as a
    /// regular file where a directory is needed: Foundation reports that case as "file exists".
    public static func fileInTheWay(of path: String, includingItself: Bool = false) -> String? {
        var url = URL(fileURLWithPath: path)
        if !includingItself { url.deleteLastPathComponent() }
        while url.path != "/" && !url.path.isEmpty {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
                return isDirectory.boolValue ? nil : url.path
            }
            url.deleteLastPathComponent()
        }
        return nil
    }
}
