import Foundation

/// Validation of org fields (SPEC §10): name 1..200, description ≤ 1024, metadata a JSON object ≤ 16 KiB.
public enum OrgFields {
    public static let maxName = 200
    public static let maxDescription = 1024
    public static let maxMetadataBytes = 16 * 1024
    public static let maxMetadataDepth = 16

    public static func name(_ raw: String) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw TenancyError.invalid("name must not be empty") }
        guard name.unicodeScalars.count <= maxName else { throw TenancyError.invalid("name must be at most \(maxName) characters") }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw TenancyError.invalid("name must not contain control characters")
        }
        return name
    }

    public static func description(_ raw: String) throws -> String {
        guard raw.unicodeScalars.count <= maxDescription else { throw TenancyError.invalid("description must be at most \(maxDescription) characters") }
        // Line breaks and tabs are text; other control characters (NUL above all, which
        // PostgreSQL cannot store and SQLite would cut at) are not.
        guard !raw.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && !["\n", "\r", "\t"].contains($0) }) else {
            throw TenancyError.invalid("description must not contain control characters other than line breaks and tabs")
        }
        return raw
    }

    public static func metadata(_ value: JSONValue) throws -> [String: JSONValue] {
        guard case .object(let object) = value else { throw TenancyError.invalid("metadata must be a JSON object") }
        guard value.depth <= maxMetadataDepth else { throw TenancyError.invalid("metadata is nested deeper than \(maxMetadataDepth) levels") }
        guard value.canonicalJSON.utf8.count <= maxMetadataBytes else {
            throw TenancyError.invalid("metadata must be at most \(maxMetadataBytes) bytes of JSON")
        }
        return object
    }

    /// `settings.max_key_ttl`: one minute to ten years.
    public static func maxKeyTTL(_ seconds: Int?) throws -> Int? {
        guard let seconds else { return nil }
        guard (60...(10 * 365 * 86_400)).contains(seconds) else { throw TenancyError.invalid("settings.max_key_ttl must be from 60 seconds to 10 years") }
        return seconds
    }

    /// A `?name=` filter: trimmed, at most 200 characters.
    public static func nameFilter(_ raw: String?) throws -> String? {
        guard let raw else { return nil }
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.unicodeScalars.count <= maxName else { throw TenancyError.invalid("name filter must be at most \(maxName) characters") }
        return text.isEmpty ? nil : text
    }
}
