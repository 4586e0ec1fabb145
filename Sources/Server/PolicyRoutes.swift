import Foundation
import HTTPTypes
import Hummingbird
import Identity
import NIOCore
import Policy
import Storage
import Tenancy

/// The decision API: authorize (single, batch, explain), capabilities, lookup, identify,
/// the permission table, and the change stream.
struct PolicyRoutes {
    let services: AppServices
    let authenticator: Authenticator

    static let batchLimit = 1000
    /// Batches carry up to 1000 checks (SPEC §11).
    static let batchBodyLimit = 1024 * 1024

    var policy: PolicyService { services.policy }

    func register(_ routes: RouteTable) {
        routes.on(.post, "/v1/authorize", use: authorize)
        routes.on(.post, "/v1/authorize/batch", use: batch)
        routes.on(.post, "/v1/authorize/explain", use: explain)
        routes.on(.post, "/v1/capabilities", use: capabilities)
        routes.on(.post, "/v1/lookup", use: lookup)
        routes.on(.post, "/v1/identify", use: identify)
        routes.on(.get, "/v1/permissions", use: permissions)
        routes.on(.get, "/v1/watch", use: watch)
    }

    // MARK: Shared steps

    /// A subject as asked about: resolved, or a token that did not verify (which is a denial, not an error).
    enum ResolvedSubject: Sendable {
        case subject(Subject)
        case invalidToken
    }

    /// Field checks of a subject (400), then whether the caller may ask about it (403).
    func resolve(_ body: SubjectBody?, caller: Caller) async throws -> ResolvedSubject {
        guard let body else { return .subject(caller.subject) }
        let given = [body.userId != nil, body.token != nil, body.serviceAccountId != nil].filter { $0 }.count
        guard given == 1 else { throw Problem.badRequest("subject must have exactly one of user_id, token, service_account_id") }
        if let text = body.userId {
            guard let id = UUID(uuidString: text) else { throw Problem.badRequest("subject.user_id must be a UUID") }
            if id == caller.user.id { return .subject(caller.subject) }
            try requireCheckOthers(caller)
            return .subject(.user(id))
        }
        if let text = body.serviceAccountId {
            guard let id = UUID(uuidString: text) else { throw Problem.badRequest("subject.service_account_id must be a UUID") }
            try requireCheckOthers(caller)
            return .subject(Subject(principal: .serviceAccount(id)))
        }
        let token = body.token ?? ""
        guard !token.isEmpty, token.utf8.count <= 8192 else { throw Problem.badRequest("subject.token must be a non-empty token") }
        try requireCheckOthers(caller)
        guard let resolved = try? await authenticator.resolve(token: token) else { return .invalidToken }
        return .subject(resolved.subject)
    }

    func requireCheckOthers(_ caller: Caller) throws {
        guard caller.mayCheckOthers else {
            throw Problem.forbidden("asking about another subject needs the root admin or a key with the authz:check scope")
        }
    }

    static func consistency(_ text: String?) throws -> Consistency {
        guard let text else { return .cached }
        guard let c = Consistency(rawValue: text) else { throw Problem.badRequest("consistency must be cached or strong") }
        return c
    }

    static func object(_ text: String, field: String = "object") throws -> ObjectRef {
        do { return try ObjectRef.parse(text) } catch { throw Problem.badRequest("\(field): \(error.message)") }
    }

    func requirement(_ action: String, field: String = "action") throws -> Requirement {
        do { return try policy.requirement(action) } catch { throw Problem.badRequest("\(field): \(error.message)") }
    }

    /// `at_least` (body) or the `Portcullis-Revision` request header: never answer from a state
    /// older than that revision. Catches up from the change log at once; if the log has no such
    /// revision yet, the answer reads through the database.
    func settle(_ consistency: Consistency, atLeast body: Int64?, _ request: Request) async throws -> Consistency {
        var wanted = body
        if wanted == nil, let header = request.headers[.portcullisRevision] {
            guard let n = Int64(header) else { throw Problem.badRequest("Portcullis-Revision must be an integer") }
            wanted = n
        }
        guard let n = wanted, consistency == .cached else { return consistency }
        guard n >= 0 else { throw Problem.badRequest("at_least must not be negative") }
        return try await services.changes.reach(n) ? .cached : .strong
    }

    struct Check: Sendable {
        let subject: ResolvedSubject
        let object: ObjectRef
        let requirement: Requirement
    }

    func decide(_ check: Check, _ consistency: Consistency) async throws -> Decision {
        switch check.subject {
        case .invalidToken:
            return Decision(allowed: false, role: nil, reason: "the subject's token is not valid")
        case .subject(let subject):
            return try await policy.decide(subject, check.object, check.requirement, consistency: consistency)
        }
    }

    // MARK: Handlers

    @Sendable func authorize(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(CheckBody.self, from: request)
        let caller = try await authenticator.authenticate(request)
        let object = try Self.object(body.object)
        let required = try requirement(body.action)
        let consistency = try Self.consistency(body.consistency)
        let subject = try await resolve(body.subject, caller: caller)
        let settled = try await settle(consistency, atLeast: body.atLeast, request)
        let decision = try await decide(Check(subject: subject, object: object, requirement: required), settled)
        return try JSONBody.response(DecisionResponse(decision))
    }

    struct BatchResponse: Encodable { let results: [DecisionResponse] }

    @Sendable func batch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(BatchBody.self, from: request, limit: Self.batchBodyLimit)
        let caller = try await authenticator.authenticate(request)
        guard body.checks.count <= Self.batchLimit else { throw Problem.badRequest("a batch holds at most \(Self.batchLimit) checks") }
        let consistency = try Self.consistency(body.consistency)
        var checks: [Check] = []
        checks.reserveCapacity(body.checks.count)
        var subjects: [String: ResolvedSubject] = [:]
        for (i, c) in body.checks.enumerated() {
            let object = try Self.object(c.object, field: "checks[\(i)].object")
            let required = try requirement(c.action, field: "checks[\(i)].action")
            if c.consistency != nil { _ = try Self.consistency(c.consistency) }
            let key = [c.subject?.userId, c.subject?.token, c.subject?.serviceAccountId].map { $0 ?? "" }.joined(separator: "\u{0}")
            let subject: ResolvedSubject
            if let known = subjects[key] { subject = known } else {
                subject = try await resolve(c.subject, caller: caller)
                subjects[key] = subject
            }
            checks.append(Check(subject: subject, object: object, requirement: required))
        }
        let strongest = body.checks.contains { $0.consistency == "strong" } ? Consistency.strong : consistency
        let settled = try await settle(strongest, atLeast: body.atLeast ?? body.checks.compactMap(\.atLeast).max(), request)
        var results: [DecisionResponse] = []
        results.reserveCapacity(checks.count)
        for (i, check) in checks.enumerated() {
            let own = body.checks[i].consistency.flatMap(Consistency.init(rawValue:))
            results.append(DecisionResponse(try await decide(check, own == .strong ? .strong : settled)))
        }
        return try JSONBody.response(BatchResponse(results: results))
    }

    struct GrantResponse: Encodable {
        let kind: String
        let role: String
        let resource: String
        let bindingId: OrNull<String>
        let expiresAt: OrNull<Date>
        let decisive: Bool
        let auditEvent: OrNull<AuditEventResponse>
    }

    struct ExplainResponse: Encodable {
        let allowed: Bool
        let role: OrNull<String>
        let reason: String
        let requiredRole: String
        let grants: [GrantResponse]
    }

    @Sendable func explain(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(CheckBody.self, from: request)
        let caller = try await authenticator.authenticate(request)
        let object = try Self.object(body.object)
        let required = try requirement(body.action)
        let consistency = try Self.consistency(body.consistency)
        let resolved = try await resolve(body.subject, caller: caller)
        let settled = try await settle(consistency, atLeast: body.atLeast, request)
        guard case .subject(let subject) = resolved else {
            let d = Decision(allowed: false, role: nil, reason: "the subject's token is not valid")
            return try JSONBody.response(ExplainResponse(allowed: false, role: OrNull(nil), reason: d.reason, requiredRole: required.role.rawValue, grants: []))
        }
        let explanation = try await policy.explain(subject, object, required, consistency: settled)
        var grants: [GrantResponse] = []
        for g in explanation.grants {
            let event = try await g.auditEventID.asyncMap { try await services.tenancy.store.auditEvent(id: $0) } ?? nil
            grants.append(GrantResponse(
                kind: g.kind.rawValue, role: g.role.rawValue, resource: g.resource, bindingId: OrNull(g.bindingID?.lowercasedString),
                expiresAt: OrNull(g.expiresAt.isFinite ? Date(timeIntervalSince1970: g.expiresAt) : nil), decisive: g.decisive,
                auditEvent: OrNull(event.map(AuditEventResponse.init))))
        }
        let d = explanation.decision
        return try JSONBody.response(ExplainResponse(
            allowed: d.allowed, role: OrNull(d.role?.rawValue), reason: d.reason, requiredRole: explanation.requiredRole.rawValue, grants: grants))
    }

    struct CapabilityResponse: Encodable {
        let object: String
        let role: OrNull<String>
        let permissions: [String]
    }

    struct CapabilitiesResponse: Encodable { let results: [CapabilityResponse] }

    @Sendable func capabilities(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(CapabilitiesBody.self, from: request, limit: Self.batchBodyLimit)
        let caller = try await authenticator.authenticate(request)
        guard body.objects.count <= Self.batchLimit else { throw Problem.badRequest("at most \(Self.batchLimit) objects") }
        let objects = try body.objects.enumerated().map { try Self.object($1, field: "objects[\($0)]") }
        let consistency = try Self.consistency(body.consistency)
        let resolved = try await resolve(body.subject, caller: caller)
        let settled = try await settle(consistency, atLeast: body.atLeast, request)
        var results: [CapabilityResponse] = []
        for object in objects {
            guard case .subject(let subject) = resolved else {
                results.append(CapabilityResponse(object: object.string, role: OrNull(nil), permissions: []))
                continue
            }
            let (role, permissions) = try await policy.capabilities(subject, object, consistency: settled)
            results.append(CapabilityResponse(object: object.string, role: OrNull(role?.rawValue), permissions: permissions))
        }
        return try JSONBody.response(CapabilitiesResponse(results: results))
    }

    struct LookupItem: Encodable {
        let object: String
        let role: String
    }

    struct LookupResponse: Encodable { let items: [LookupItem] }

    /// Reads through the database: it answers "where?", not "may I?", and is off the hot path.
    @Sendable func lookup(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(LookupBody.self, from: request)
        let caller = try await authenticator.authenticate(request)
        let required = try requirement(body.permission, field: "permission")
        if let type = body.type, type != "org", !ObjectRef.isValidType(type) {
            throw Problem.badRequest("type must be org or an object type (a-z, 0-9, _ and -)")
        }
        guard case .subject(let subject) = try await resolve(body.subject, caller: caller) else {
            return try JSONBody.response(LookupResponse(items: []))
        }
        let now = Date().instant
        let (memberships, bindings) = try await services.policyStore.grants(of: subject.principal)
        var items: [LookupItem] = []
        func add(_ object: ObjectRef, _ held: Role) {
            guard let role = subject.scopes.map({ $0.narrow(held, in: object.orgID) }) ?? held, role >= required.role else { return }
            items.append(LookupItem(object: object.string, role: role.rawValue))
        }
        if body.type == nil || body.type == "org" {
            var best: [UUID: Role] = [:]
            for (org, grant) in memberships where grant.expiresAt > now { best[org] = max(best[org] ?? grant.role, grant.role) }
            for (org, grant) in bindings where grant.expiresAt > now && grant.path.isEmpty { best[org] = max(best[org] ?? grant.role, grant.role) }
            for (org, role) in best.sorted(by: { $0.key.uuidString < $1.key.uuidString }) { add(ObjectRef(orgID: org), role) }
        } else if let type = body.type {
            for (org, grant) in bindings where grant.expiresAt > now {
                let object = ObjectRef(orgID: org, path: grant.path)
                // The binding's own role, or the org membership's if higher: both reach this object.
                let viaMembership = memberships.first { $0.0 == org && $0.1.expiresAt > now }?.1.role
                if object.type == type { add(object, max(grant.role, viaMembership ?? grant.role)) }
            }
        }
        return try JSONBody.response(LookupResponse(items: items))
    }

    struct IdentifyResponse: Encodable {
        let type: String
        let userId: OrNull<String>
        let email: OrNull<String>
        let keyId: OrNull<String>
        let serviceAccountId: OrNull<String>
        let orgId: OrNull<String>
        let expiresAt: OrNull<Date>
    }

    @Sendable func identify(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await JSONBody.decode(IdentifyBody.self, from: request)
        _ = try await authenticator.authenticate(request)
        guard !body.token.isEmpty, body.token.utf8.count <= 8192, let resolved = try? await authenticator.resolve(token: body.token) else {
            throw Problem.unauthenticated("the token is not valid")
        }
        return try JSONBody.response(IdentifyResponse(
            type: "user", userId: OrNull(resolved.user.id.lowercasedString), email: OrNull(resolved.user.email),
            keyId: OrNull(nil), serviceAccountId: OrNull(nil), orgId: OrNull(nil), expiresAt: OrNull(resolved.expiresAt)))
    }

    struct PermissionsResponse: Encodable {
        let roles: [String]
        let permissions: [String: String]
    }

    @Sendable func permissions(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try await authenticator.authenticate(request)
        return try JSONBody.response(PermissionsResponse(
            roles: Role.ranked.map(\.rawValue), permissions: policy.permissions.leastRole.mapValues(\.rawValue)))
    }

    /// Server-sent events of the change log from `since` on: `id` is the revision, `event` the kind,
    /// `data` `{"revision", "kind", "subject", "at"}`. Sidecars use it to keep their own caches exact.
    @Sendable func watch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let caller = try await authenticator.authenticate(request)
        var since: Int64
        if let text = try request.singleQuery("since") {
            guard let n = Int64(text), n >= 0 else { throw Problem.badRequest("since must be a non-negative integer") }
            since = n
        } else if let last = request.headers[HTTPField.Name("Last-Event-ID")!], let n = Int64(last), n >= 0 {
            since = n
        } else {
            since = try await services.changeFeed.latestRevision()
        }
        try requireCheckOthers(caller)
        let feed = services.changeFeed
        let start = since
        let body = ResponseBody { writer in
            var cursor = start
            var idle = Duration.zero
            try await writer.write(ByteBuffer(string: ": watching from revision \(cursor)\n\n"))
            while !Task.isCancelled {
                let batch = try await feed.changes(after: cursor, limit: 500)
                for change in batch {
                    let data = try JSONBody.encoder.encode(WatchEvent(revision: change.revision, kind: change.kind, subject: change.subject, at: change.at))
                    try await writer.write(ByteBuffer(string: "id: \(change.revision)\nevent: \(change.kind)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"))
                    cursor = change.revision
                }
                if batch.isEmpty {
                    try await Task.sleep(for: feed.interval)
                    idle += feed.interval
                    // A comment now and then keeps proxies from closing an idle stream and finds gone clients.
                    if idle >= .seconds(15) {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        idle = .zero
                    }
                } else {
                    idle = .zero
                }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    struct WatchEvent: Encodable {
        let revision: Int64
        let kind: String
        let subject: String
        let at: Date
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
