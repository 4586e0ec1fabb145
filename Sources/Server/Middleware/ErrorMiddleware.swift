import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Turns every failure into a problem response: unknown routes 404, known paths with another
/// method 405 (+ `Allow`), domain errors their mapped status, and anything else a logged 500
/// whose body says nothing about internals.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            // Handlers throw `Problem`s; a bare HTTPError 404 comes only from the router's
            // not-found responder, i.e. no route matched this method and path.
            if (error as? HTTPError)?.status == .notFound {
                return try notFound(request, context: context)
            }
            if let problem = Problem.from(error) {
                if problem.status.code >= 500 {
                    context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                return try problem.response(from: request, context: context)
            }
            context.logger.error("unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            return try Problem(.internalServerError, detail: "internal error; the server log has details")
                .response(from: request, context: context)
        }
    }

    private func notFound(_ request: Request, context: Context) throws -> Response {
        let allowed = routes.methods(matching: request.uri.path)
        if !allowed.isEmpty {
            let allow = Set(allowed.map(\.rawValue)).sorted().joined(separator: ", ")
            return try Problem(.methodNotAllowed, detail: "\(request.method.rawValue) is not allowed here", headers: [.allow: allow])
                .response(from: request, context: context)
        }
        return try Problem.notFound("no route for \(request.method.rawValue) \(request.uri.path)").response(from: request, context: context)
    }
}

/// Headers every response carries.
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.cacheControl] = response.headers[.cacheControl] ?? "no-store"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return response
    }
}
