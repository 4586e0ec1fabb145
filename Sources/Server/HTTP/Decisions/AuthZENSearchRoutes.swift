import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// AuthZEN 1.0's search APIs over the same engine: which subjects may do an action on a
/// resource, which resources (of a type) a subject may act on, and which actions a subject may
/// take on a resource. Every result, fed back into `/access/v1/evaluation`, answers true.
extension AuthZENRoutes {
    /// `page` of a search request: the `next_token` of the previous answer (`token` is taken
    /// too), and an optional `limit` (default 100, at most 1000).
    struct PageRequest: Decodable, Sendable {
        let nextToken: String?
        let token: String?
        let limit: Int?
    }

    struct EntityResult: Encodable, Sendable {
        let type: String
        let id: String
    }

    struct ActionResult: Encodable, Sendable {
        let name: String
    }

    struct PageResponse: Encodable, Sendable {
        let nextToken: String
    }

    struct SearchResponse<Item: Encodable & Sendable>: Encodable, Sendable {
        let results: [Item]
        let page: PageResponse
    }

    static let defaultPage = 100
    static let maxPage = 1000

    /// One page of `all`, with the token of the next one ("" at the end). The token is the
    /// offset, opaque to clients.
    static func page<Item: Encodable & Sendable>(_ all: [Item], _ request: PageRequest?) throws -> SearchResponse<Item> {
        let limit = request?.limit ?? defaultPage
        guard (1...maxPage).contains(limit) else { throw Problem.badRequest("page.limit must be 1...\(maxPage)") }
        var offset = 0
        if let token = request?.nextToken ?? request?.token, !token.isEmpty {
            guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8), text.hasPrefix("o:"),
                  let n = Int(text.dropFirst(2)), (0...1_000_000_000).contains(n) else {
                throw Problem.badRequest("page.next_token is not a token this server gave")
            }
            offset = n
        }
        let start = min(offset, all.count)
        let end = min(all.count, start + limit)
        let items = Array(all[start..<end])
        let next = end < all.count ? Data("o:\(end)".utf8).base64EncodedString() : ""
        return SearchResponse(results: items, page: PageResponse(nextToken: next))
    }

    /// `POST /access/v1/search/subject`: `subject.type` (user or service_account; an id is
    /// ignored), `action`, and a `resource` with its id.
    @Sendable func searchSubject(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (body, caller) = try await read(request, context)
        guard let type = body.subject?.type else { throw Problem.badRequest("subject needs a type") }
        guard type == "user" || type == "service_account" else { throw Problem.badRequest("subject.type must be user or service_account") }
        let object = try object(body.resource, field: "resource")
        let required = try action(body.action, field: "action")
        let holders = try await authorizer.holders(of: object, holding: required, type: type, by: caller.asker)
        return try JSONBody.response(Self.page(holders.map { EntityResult(type: type, id: $0.principal.id.lowercasedString) }, body.page))
    }

    /// `POST /access/v1/search/resource`: `subject`, `action`, and `resource.type` (an id is
    /// ignored). Type `org` gives the orgs; another type, the objects of it bound to the subject.
    @Sendable func searchResource(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (body, caller) = try await read(request, context)
        let subject = try subject(body.subject, field: "subject")
        guard let type = body.resource?.type, type == "org" || ObjectRef.isValidType(type) else {
            throw Problem.badRequest("resource needs a type: org, or an object type (lowercase letters, digits, _ and -)")
        }
        let required = try action(body.action, field: "action")
        let items = try await authorizer.lookup(of: subject, holding: required, type: type == "org" ? nil : type, by: caller.asker)
        let results = items.map { item in
            item.object.path.isEmpty
                ? EntityResult(type: "org", id: item.object.orgID.lowercasedString)
                : EntityResult(type: type, id: item.object.string)
        }
        return try JSONBody.response(Self.page(results, body.page))
    }

    /// `POST /access/v1/search/action`: `subject` and `resource`; the answer names every role up
    /// to the subject's effective role there, then every permission that role holds.
    @Sendable func searchAction(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (body, caller) = try await read(request, context)
        let subject = try subject(body.subject, field: "subject")
        let object = try object(body.resource, field: "resource")
        let capability = try await authorizer.capabilities(of: subject, on: [object], consistency: .cached, atLeast: nil, by: caller.asker).first
        var names: [String] = []
        if let role = capability?.role {
            names = Role.allCases.filter { $0 <= role }.map(\.rawValue) + (capability?.permissions ?? [])
        }
        return try JSONBody.response(Self.page(names.map(ActionResult.init), body.page))
    }
}
