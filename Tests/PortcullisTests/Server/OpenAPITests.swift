import Foundation
import Server
import Testing

@Suite("docs/openapi.yaml matches the routes")
struct OpenAPITests {
    /// Paths and methods of docs/openapi.yaml: path keys at two spaces, methods at four.
    static func documented() throws -> Set<String> {
        let url = repositoryRoot.appendingPathComponent("docs/openapi.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        var inPaths = false
        var current: String?
        var result: Set<String> = []
        let methods: Set<String> = ["get", "put", "post", "patch", "delete", "head", "options"]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("paths:") { inPaths = true; continue }
            if inPaths, let first = line.first, first != " ", first != "#" { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), !line.hasPrefix("   ") {
                current = String(line.dropFirst(2).dropLast(line.hasSuffix(":") ? 1 : 0)).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let current {
                let key = line.trimmingCharacters(in: .whitespaces).dropLast()
                if methods.contains(String(key)) { result.insert("\(key.uppercased()) \(current)") }
            }
        }
        return result
    }

    @Test("every route is documented, and every documented operation exists")
    func routesDocumented() async throws {
        let documented = try Self.documented()
        #expect(!documented.isEmpty)
        try await withServices(.sqlite) { services in
            let routes = Set(RouteTable.all(services: services).routes.map { "\($0.method.rawValue) \($0.path)" })
            let missing = routes.subtracting(documented)
            let extra = documented.subtracting(routes)
            #expect(missing.isEmpty, "routes missing from docs/openapi.yaml: \(missing.sorted())")
            #expect(extra.isEmpty, "documented but not served: \(extra.sorted())")
        }
    }
}
