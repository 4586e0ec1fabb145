import Foundation

/// An object string: `org:<uuid>` or `org:<uuid>/<type>:<id>[/<type>:<id>…]`.
/// Parsed once per request; the decision works on the org id and the path below it.
public struct ObjectRef: Sendable, Hashable {
    public let orgID: UUID
    /// Everything after `org:<uuid>`: empty for the org itself, else `/<type>:<id>…`.
    public let path: String

    public static let maxLength = 1024
    public static let maxDepth = 16

    public init(orgID: UUID, path: String = "") {
        self.orgID = orgID
        self.path = path
    }

    /// The canonical string (lowercase org id).
    public var string: String { "org:" + orgID.uuidString.lowercased() + path }

    /// The last segment's type (`org` for the org itself).
    public var type: String {
        guard let last = path.split(separator: "/").last, let colon = last.firstIndex(of: ":") else { return "org" }
        return String(last[..<colon])
    }

    /// Whether `self` is `other` or lies under it (`org:a/doc:1` is under `org:a`, not under `org:a/doc:10`).
    public func isWithin(_ ancestorPath: String) -> Bool {
        ObjectRef.path(path, isWithin: ancestorPath)
    }

    @inline(__always)
    static func path(_ path: String, isWithin ancestor: String) -> Bool {
        if ancestor.isEmpty { return true }
        let p = path.utf8, a = ancestor.utf8
        guard p.count >= a.count, p.starts(with: a) else { return false }
        return p.count == a.count || p[p.index(p.startIndex, offsetBy: a.count)] == UInt8(ascii: "/")
    }

    /// Parses an object string; anything malformed is `PolicyError.invalidObject`.
    public static func parse(_ text: String) throws(PolicyError) -> ObjectRef {
        let bytes = text.utf8
        guard bytes.count <= maxLength else { throw .invalidObject("object is longer than \(maxLength) characters") }
        guard bytes.count >= 40, bytes.starts(with: "org:".utf8) else {
            throw .invalidObject("object must look like org:<org_id> or org:<org_id>/<type>:<id>")
        }
        let idStart = text.index(text.startIndex, offsetBy: 4)
        let idEnd = text.index(idStart, offsetBy: 36, limitedBy: text.endIndex) ?? text.endIndex
        guard let orgID = UUID(uuidString: String(text[idStart..<idEnd])) else {
            throw .invalidObject("the org id in the object is not a UUID")
        }
        let rest = text[idEnd...]
        if rest.isEmpty { return ObjectRef(orgID: orgID) }
        guard rest.first == "/" else { throw .invalidObject("the org id in the object is not a UUID") }
        var depth = 0
        for segment in rest.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            depth += 1
            guard depth <= maxDepth else { throw .invalidObject("object is nested deeper than \(maxDepth) levels") }
            guard let colon = segment.firstIndex(of: ":") else { throw .invalidObject("each part after the org must be <type>:<id>") }
            let type = segment[..<colon], id = segment[segment.index(after: colon)...]
            guard isType(type) else { throw .invalidObject("object type \"\(type.prefix(64))\" must be 1-64 of a-z, 0-9, _ and -, starting with a letter") }
            guard isID(id) else { throw .invalidObject("object id must be 1-256 of letters, digits and . _ ~ @ + = - :") }
        }
        return ObjectRef(orgID: orgID, path: String(rest))
    }

    public static func isValidType(_ s: String) -> Bool { isType(Substring(s)) }

    static func isType(_ s: Substring) -> Bool {
        guard (1...64).contains(s.utf8.count), let first = s.utf8.first, first >= 97, first <= 122 else { return false }
        return s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
    }

    static func isID(_ s: Substring) -> Bool {
        guard (1...256).contains(s.utf8.count) else { return false }
        return s.utf8.allSatisfy { c in
            (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57)
                || c == 46 || c == 95 || c == 126 || c == 64 || c == 43 || c == 61 || c == 45 || c == 58
        }
    }
}

/// Failures of policy input, mapped to 400 (or 404) at the HTTP edge.
public enum PolicyError: Error, Sendable, Equatable {
    case invalidObject(String)
    case unknownAction(String)
    case invalidSubject(String)
    case invalidPolicyFile(String)

    public var message: String {
        switch self {
        case .invalidObject(let m), .unknownAction(let m), .invalidSubject(let m), .invalidPolicyFile(let m): return m
        }
    }
}
