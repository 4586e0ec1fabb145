import HTTPTypes
import Hummingbird

/// Cross-origin access for the browser origins in `PORTCULLIS_CORS_ORIGINS`, and none for any
/// other. Credentials travel in the Authorization header, never cookies, so no
/// `Allow-Credentials`. Without configured origins this middleware is not installed at all.
struct CORSAllowList: RouterMiddleware {
    typealias Context = AppRequestContext
    let origins: Set<String>
    static let allowMethods = "GET, POST, PUT, PATCH, DELETE"
    static let allowHeaders = "Authorization, Content-Type, Portcullis-Revision, X-Request-ID"
    static let exposeHeaders = "Portcullis-Revision, Retry-After, X-Request-ID, Location"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], origins.contains(origin) else {
            var response = try await next(request, context)
            if request.headers[.origin] != nil { response.headers[values: .vary].append("Origin") }
            return response
        }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            return Response(status: .noContent, headers: [
                .accessControlAllowOrigin: origin,
                .accessControlAllowMethods: Self.allowMethods,
                .accessControlAllowHeaders: Self.allowHeaders,
                .accessControlMaxAge: "600",
                .vary: "Origin",
            ])
        }
        var response = try await next(request, context)
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.accessControlExposeHeaders] = Self.exposeHeaders
        response.headers[values: .vary].append("Origin")
        return response
    }
}
