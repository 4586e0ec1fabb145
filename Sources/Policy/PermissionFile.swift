import Authority
import Foundation
import Tenancy

/// Custom permissions from `PORTCULLIS_POLICY_FILE`: a flat map of permission → least role, as
/// JSON (`{"permissions": {"things.read": "viewer"}}` or the bare map) or the matching YAML
/// subset (`permissions:` then indented `things.read: viewer` lines; `#` comments).
public enum PermissionFile {
    public static func load(path: String) throws(PolicyError) -> [String: Role] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .invalidPolicyFile("cannot read \(path)")
        }
        return try parse(text)
    }

    public static func parse(_ text: String) throws(PolicyError) -> [String: Role] {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let pairs: [(String, String)]
        if trimmed.hasPrefix("{") {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
                throw .invalidPolicyFile("not valid JSON")
            }
            let map = (object["permissions"] as? [String: Any]) ?? object
            var out: [(String, String)] = []
            for (key, value) in map {
                guard let role = value as? String else { throw .invalidPolicyFile("\(key): the least role must be a string") }
                out.append((key, role))
            }
            pairs = out
        } else {
            pairs = try yamlPairs(trimmed)
        }
        var table: [String: Role] = [:]
        for (name, roleName) in pairs {
            guard isPermissionName(name) else {
                throw .invalidPolicyFile("\"\(name)\" is not a permission name (lowercase words joined by dots, e.g. things.read)")
            }
            guard Role(rawValue: name) == nil else { throw .invalidPolicyFile("\"\(name)\" is a role name, not a permission") }
            guard PermissionTable.builtIn.role(for: name) == nil else { throw .invalidPolicyFile("\"\(name)\" is built in and cannot be redefined") }
            guard let role = Role(rawValue: roleName) else {
                throw .invalidPolicyFile("\(name): \"\(roleName)\" is not a role (viewer, editor, admin, owner)")
            }
            guard table.updateValue(role, forKey: name) == nil else { throw .invalidPolicyFile("\"\(name)\" is defined twice") }
        }
        return table
    }

    static func yamlPairs(_ text: String) throws(PolicyError) -> [(String, String)] {
        var pairs: [(String, String)] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let content = line.trimmingCharacters(in: .whitespaces)
            if content.isEmpty || content == "---" { continue }
            if content == "permissions:" && !raw.hasPrefix(" ") { continue }
            guard let colon = content.firstIndex(of: ":") else { throw .invalidPolicyFile("line \(number + 1): expected <permission>: <role>") }
            let key = unquote(content[..<colon].trimmingCharacters(in: .whitespaces))
            let value = unquote(content[content.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            guard !value.isEmpty else { throw .invalidPolicyFile("line \(number + 1): \(key) has no role") }
            pairs.append((key, value))
        }
        return pairs
    }

    static func unquote(_ s: String) -> String {
        if s.count >= 2, let f = s.first, let l = s.last, f == l, f == "\"" || f == "'" { return String(s.dropFirst().dropLast()) }
        return s
    }

    static func isPermissionName(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard s.utf8.count <= 128, parts.count >= 2 else { return false }
        return parts.allSatisfy { part in
            guard let first = part.utf8.first, first >= 97, first <= 122 else { return false }
            return part.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
        }
    }
}

extension PermissionTable {
    /// The built-in table with custom permissions added.
    public static func withCustom(_ custom: [String: Role]) -> PermissionTable {
        PermissionTable(leastRole: builtIn.leastRole.merging(custom) { builtIn, _ in builtIn })
    }

    /// A role name means "at least this role"; a permission maps to its least role.
    public func requirement(for action: String) throws(PolicyError) -> Requirement {
        if let role = Role(rawValue: action) { return Requirement(action: action, role: role) }
        if let role = role(for: action) { return Requirement(action: action, role: role) }
        throw .unknownAction("unknown action \"\(action.prefix(128))\": use a role name or a permission from GET /v1/permissions")
    }
}
