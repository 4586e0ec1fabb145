import Foundation

/// The HTTP contract, shipped with the binary and served at `/openapi.yaml`.
public enum APIDocs {
    public static func openAPIYAML() -> Data? {
        Bundle.module.url(forResource: "openapi", withExtension: "yaml").flatMap { try? Data(contentsOf: $0) }
    }
}
