import Authority
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
    public var string: String { "org:" + orgID.lowercasedString + path }

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
    /// Reads the UTF-8 bytes once, without Foundation: this runs for every check (issue 18).
    public static func parse(_ text: String) throws(PolicyError) -> ObjectRef {
        let utf8 = text.utf8
        guard utf8.count <= maxLength else { throw .invalidObject("object is longer than \(maxLength) characters") }
        guard utf8.count >= 40, utf8.starts(with: "org:".utf8) else {
            throw .invalidObject("object must look like org:<org_id> or org:<org_id>/<type>:<id>")
        }
        if let parsed = utf8.withContiguousStorageIfAvailable({ bytes -> Result<ObjectRef, PolicyError> in
            parse(bytes, text)
        }) {
            return try parsed.get()
        }
        var copy = text
        return try copy.withUTF8 { parse($0, text) }.get()
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>, _ text: String) -> Result<ObjectRef, PolicyError> {
        let idEnd = min(40, bytes.count)
        guard let orgID = UUIDText.parse(UnsafeBufferPointer(rebasing: bytes[4..<idEnd])) else {
            return .failure(.invalidObject("the org id in the object is not a UUID"))
        }
        if bytes.count == 40 { return .success(ObjectRef(orgID: orgID)) }
        guard bytes[40] == UInt8(ascii: "/") else { return .failure(.invalidObject("the org id in the object is not a UUID")) }
        var depth = 0
        var start = 41
        while true {
            depth += 1
            guard depth <= maxDepth else { return .failure(.invalidObject("object is nested deeper than \(maxDepth) levels")) }
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "/") { end += 1 }
            let segment = UnsafeBufferPointer(rebasing: bytes[start..<end])
            guard let colon = segment.firstIndex(of: UInt8(ascii: ":")) else {
                return .failure(.invalidObject("each part after the org must be <type>:<id>"))
            }
            let type = UnsafeBufferPointer(rebasing: segment[..<colon])
            guard isType(type) else {
                let shown = String(decoding: type, as: UTF8.self).prefix(64)
                return .failure(.invalidObject("object type \"\(shown)\" must be 1-64 of a-z, 0-9, _ and -, starting with a letter"))
            }
            guard isID(UnsafeBufferPointer(rebasing: segment[(colon + 1)...])) else {
                return .failure(.invalidObject("object id must be 1-256 of letters, digits and . _ ~ @ + = - :"))
            }
            guard end < bytes.count else { break }
            start = end + 1
        }
        // The path is the text after the org id: ASCII only by now, so byte offset 40 is a character boundary.
        return .success(ObjectRef(orgID: orgID, path: String(decoding: UnsafeBufferPointer(rebasing: bytes[40...]), as: UTF8.self)))
    }

    public static func isValidType(_ s: String) -> Bool { isType(Array(s.utf8)) }

    static func isType<C: Collection<UInt8>>(_ s: C) -> Bool {
        guard (1...64).contains(s.count), let first = s.first, first >= 97, first <= 122 else { return false }
        return s.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
    }

    static func isID<C: Collection<UInt8>>(_ s: C) -> Bool {
        guard (1...256).contains(s.count) else { return false }
        return s.allSatisfy { c in
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
