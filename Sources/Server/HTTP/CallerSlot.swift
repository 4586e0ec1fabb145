import Foundation
import Hummingbird
import Synchronization
import Tenancy

/// The caller of one request, resolved from its bearer token the first time a handler asks and
/// kept for the rest of the request. Handlers read their body first and ask after, which keeps
/// the contract's order: 415, then 400 for a body that does not parse, then 401.
final class CallerSlot: Sendable {
    let authenticator: Authenticator
    let request: Request
    private let resolved = Mutex<Caller?>(nil)

    init(authenticator: Authenticator, request: Request) {
        self.authenticator = authenticator
        self.request = request
    }

    func caller() async throws -> Caller {
        if let known = resolved.withLock({ $0 }) { return known }
        let caller = try await authenticator.authenticate(request)
        resolved.withLock { $0 = caller }
        return caller
    }

    /// The caller as of at least revision `atLeast` (see `Authenticator.authenticate(_:reaching:)`).
    func caller(atLeast body: Int64?) async throws -> Caller {
        let caller = try await authenticator.authenticate(request, atLeast: body)
        resolved.withLock { $0 = caller }
        return caller
    }

    /// The caller as an org actor (a service account's role read from its org's grants).
    func actor() async throws -> Actor {
        try await authenticator.actor(try await caller())
    }

    func requireRoot() async throws -> Caller {
        let caller = try await caller()
        guard caller.isRoot else { throw Problem.forbidden("only the platform administrator may do this") }
        return caller
    }
}

/// Gives every request its `CallerSlot`; nothing is resolved until a handler asks.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.callerSlot = CallerSlot(authenticator: authenticator, request: request)
        return try await next(request, context)
    }
}

extension AppRequestContext {
    private var slot: CallerSlot {
        get throws {
            // Installed for every route by `buildApplication`; a route table without it answers 401.
            guard let callerSlot else { throw Problem.unauthenticated() }
            return callerSlot
        }
    }

    func caller() async throws -> Caller { try await slot.caller() }
    func caller(atLeast: Int64?) async throws -> Caller { try await slot.caller(atLeast: atLeast) }
    func actor() async throws -> Actor { try await slot.actor() }
    func requireRoot() async throws -> Caller { try await slot.requireRoot() }
}
