import HTTPTypes
import Hummingbird

/// Registers routes on the router and remembers them, so that a wrong method on a known path
/// answers 405 with `Allow`, and tests can check every route against docs/openapi.yaml.
public final class RouteTable: @unchecked Sendable {
    // Only mutated while the application is being built, before it serves.
    public private(set) var routes: [(method: HTTPRequest.Method, path: String)] = []
    let router: Router<AppRequestContext>

    init(router: Router<AppRequestContext>) {
        self.router = router
    }

    func on(
        _ method: HTTPRequest.Method, _ path: String,
        use handler: @escaping @Sendable (Request, AppRequestContext) async throws -> Response
    ) {
        routes.append((method, path))
        router.on(RouterPath(path), method: method, use: handler)
    }

    /// Methods registered for a concrete request path (`{param}` segments match anything).
    func methods(matching path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        // A literal segment wins over a parameter, as in the router: `/v1/invites/claim` is
        // the claim route, not an invite whose id is "claim".
        let matches = routes.compactMap { route -> (HTTPRequest.Method, Int)? in
            let pattern = route.path.split(separator: "/", omittingEmptySubsequences: true)
            guard pattern.count == segments.count,
                  zip(pattern, segments).allSatisfy({ p, s in p.hasPrefix("{") || p == s }) else { return nil }
            return (route.method, pattern.filter { !$0.hasPrefix("{") }.count)
        }
        let best = matches.map(\.1).max() ?? 0
        return matches.filter { $0.1 == best }.map(\.0)
    }
}
