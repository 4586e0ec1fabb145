/// Length rules for passwords (NIST 800-63B style: length, not composition).
public enum PasswordPolicy {
    public static let minLength = 8
    public static let maxLength = 256

    public static func validate(_ password: String) throws {
        // Code points, as JSON Schema's maxLength counts them (a grapheme may hide any number).
        let count = password.unicodeScalars.count
        if count < minLength {
            throw IdentityError.weakPassword("password must be at least \(minLength) characters")
        }
        if count > maxLength {
            throw IdentityError.weakPassword("password must be at most \(maxLength) characters")
        }
    }
}

/// Display names: at most 200 characters, no control characters.
public enum DisplayName {
    public static let maxLength = 200

    public static func validate(_ name: String) throws -> String {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.unicodeScalars.count > maxLength {
            throw IdentityError.invalidName("name must be at most \(maxLength) characters")
        }
        if trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw IdentityError.invalidName("name must not contain control characters")
        }
        return trimmed
    }
}

import Foundation
