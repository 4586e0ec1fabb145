import Foundation
import Hummingbird
import Tenancy
import Memberwise

/// `?limit=` (1...100, default 20) and `?offset=` (≥ 0); a repeated key is an error.
@PublicInit
public struct Page: Sendable, Equatable {
    public var limit: Int = defaultLimit
    public var offset: Int = 0

    public static let defaultLimit = 20
    public static let maxLimit = 100

    public init(from request: Request) throws {
        func single(_ name: String) throws -> String? { try request.singleQuery(name) }
        limit = Self.defaultLimit
        offset = 0
        if let text = try single("limit") {
            guard let n = Int(text), (1...Self.maxLimit).contains(n) else {
                throw Problem.badRequest("limit must be an integer from 1 to \(Self.maxLimit)")
            }
            limit = n
        }
        if let text = try single("offset") {
            guard let n = Int(text), n >= 0, n <= 1_000_000_000 else {
                throw Problem.badRequest("offset must be an integer from 0 to 1000000000")
            }
            offset = n
        }
    }
}

/// A page of items: `{items, total, limit, offset}`.
public struct ListResponse<Item: Encodable & Sendable>: Encodable, Sendable {
    public var items: [Item]
    public var total: Int
    public var limit: Int
    public var offset: Int

    public init(items: [Item], total: Int, page: Page) {
        self.items = items
        self.total = total
        self.limit = page.limit
        self.offset = page.offset
    }

    /// The answer of a list route: the page the query asks for (400 when malformed), the records
    /// `fetch` reads for it, each mapped to its response type.
    static func page<Record>(
        _ request: Request, _ map: (Record) -> Item, _ fetch: (Page) async throws -> ([Record], Int)
    ) async throws -> Response {
        let page = try Page(from: request)
        let (records, total) = try await fetch(page)
        return try JSONBody.response(ListResponse(items: records.map(map), total: total, page: page))
    }

    /// A list under `/v1/orgs/{org_id}`: the acting caller (401 before anything else), the org
    /// from the path, and one page.
    static func orgPage<Record>(
        _ request: Request, _ context: AppRequestContext, _ map: (Record) -> Item,
        _ fetch: (Actor, UUID, Page) async throws -> ([Record], Int)
    ) async throws -> Response {
        let actor = try await context.actor()
        return try await page(request, map) { try await fetch(actor, try TenancyRoutes.pathID(context, "org_id", "org"), $0) }
    }
}

extension Request {
    /// One query parameter's value; a repeated key is a 400 (SPEC §11).
    func singleQuery(_ name: String) throws -> String? {
        let values = uri.queryParameters.getAll(name)
        guard values.count <= 1 else { throw Problem.badRequest("query parameter \(name) is repeated") }
        return values.first
    }
}
