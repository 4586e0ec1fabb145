import Authority
import Foundation
import Tenancy

extension KeyScopes {
    /// Parses `org:<id>`, `role:<role>`, `authz:check`; unknown or malformed scopes are errors.
    public static func parse(_ scopes: [String]) throws(PolicyError) -> KeyScopes {
        var orgs: Set<UUID>?
        var cap: Role?
        var check = false
        for scope in scopes {
            if scope == "authz:check" {
                check = true
            } else if scope.hasPrefix("org:"), let id = UUIDText.parse(String(scope.dropFirst(4))) {
                orgs = (orgs ?? []).union([id])
            } else if scope.hasPrefix("role:"), let role = Role(rawValue: String(scope.dropFirst(5))) {
                cap = min(cap ?? role, role)
            } else {
                throw .invalidSubject("unknown scope \"\(scope.prefix(80))\" (use org:<org_id>, role:<role> or authz:check)")
            }
        }
        return KeyScopes(orgs: orgs, roleCap: cap, authzCheck: check)
    }
}
