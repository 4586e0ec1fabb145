import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle
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
    /// A token subject that does not verify is a denial, not an error.
    static let invalidToken = Decision(allowed: false, role: nil, reason: "the subject's token is not valid")
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

    /// A non-root caller with `authz:check` asks about others only inside orgs it administers
    /// (its own role there, after its scopes, at least admin): a key cannot read the grants of
    /// orgs its owner does not run.
    func requireAdministers(_ caller: Caller, _ org: UUID) async throws {
        guard !caller.isRoot else { return }
        let d = try await policy.decide(caller.subject, ObjectRef(orgID: org), Requirement(action: "admin", role: .admin))
        guard d.allowed else {
            throw Problem.forbidden("with authz:check you may ask about other subjects only in orgs where you are an admin or owner")
        }
    }

    func isSelf(_ subject: ResolvedSubject, _ caller: Caller) -> Bool {
        if case .subject(let s) = subject { return s.principal == caller.principal }
        return false
    }

    /// Field checks of a subject (400), then whether the caller may ask about it (403).
    func resolve(_ body: SubjectBody?, caller: Caller) async throws -> ResolvedSubject {
        guard let body else { return .subject(caller.subject) }
        let given = [body.userId != nil, body.token != nil, body.serviceAccountId != nil].filter { $0 }.count
        guard given == 1 else { throw Problem.badRequest("subject must have exactly one of user_id, token, service_account_id") }
        if let text = body.userId {
            guard let id = UUID(uuidString: text) else { throw Problem.badRequest("subject.user_id must be a UUID") }
            if caller.principal == .user(id) { return .subject(caller.subject) }
            try requireCheckOthers(caller)
            return .subject(.user(id))
        }
        if let text = body.serviceAccountId {
            guard let id = UUID(uuidString: text) else { throw Problem.badRequest("subject.service_account_id must be a UUID") }
            if caller.principal == .serviceAccount(id) { return .subject(caller.subject) }
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

    /// `at_least` from the body, else the `Portcullis-Revision` request header (field validation).
    static func atLeast(_ body: Int64?, _ request: Request) throws -> Int64? {
        // Both are checked, even when the body's value is the one used.
        var header: Int64?
        if let text = request.headers[.portcullisRevision] {
            guard let n = Int64(text), n >= 0 else { throw Problem.badRequest("the Portcullis-Revision header must be a non-negative integer") }
            header = n
        }
        if let body {
            guard body >= 0 else { throw Problem.badRequest("at_least must not be negative") }
            return body
        }
        return header
    }

    /// The caller, as of the revision a request asks for (`at_least` in the body, else the
    /// `Portcullis-Revision` header): see `Authenticator.authenticate(_:reaching:)`.
    func authenticate(_ request: Request, atLeast body: Int64?) async throws -> Caller {
        try await authenticator.authenticate(request, reaching: (try? Self.atLeast(body, request)) ?? nil)
    }

    /// Never answer from a state older than revision `atLeast`: catch up from the change log at
    /// once; if the log has no such revision yet, read through the database. A node whose
    /// memory may be behind (SPEC §18) reads through the database too.
    func settle(_ consistency: Consistency, atLeast: Int64?) async throws -> Consistency {
        guard consistency == .cached else { return consistency }
        if services.freshness.isStale { return .strong }
        guard let n = atLeast else { return .cached }
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
            return Self.invalidToken
        case .subject(let subject):
            let decision = try await policy.decide(subject, check.object, check.requirement, consistency: consistency)
            services.metrics.decision(allowed: decision.allowed)
            return decision
        }
    }

    /// Decides checks in order through one read-through per request (each org loaded at most
    /// once), pacing the loop so a client that goes away stops it; `stop` ends it early.
    func decide(_ checks: [Check], consistency: (Int) -> Consistency, stop: (Decision) -> Bool = { _ in false }) async throws -> [Decision] {
        let batch = checks.enumerated().map { i, c in
            let subject: Subject? = if case .subject(let s) = c.subject { s } else { nil }
            return PolicyService.Check(subject: subject, object: c.object, requirement: c.requirement, consistency: consistency(i))
        }
        var pacer = Pacer()
        let metrics = services.metrics
        let results = try await policy.decide(batch: batch, stop: { stop($0 ?? Self.invalidToken) }, pacer: &pacer) { metrics.decision(allowed: $0.allowed) }
        return results.map { $0 ?? Self.invalidToken }
    }

    // MARK: Handlers

    /// One check from a request, in the contract's order: body (400), caller (401), fields
    /// (400), may-ask-about-subject (403); then the consistency it is answered at.
    func check(_ request: Request) async throws -> (Caller, Check, Consistency) {
        let unchecked = try await JSONBody.read(CheckBody.self, from: request)
        let caller = try await authenticate(request, atLeast: unchecked.ifValid?.atLeast)
        let body = try unchecked.fields()
        let object = try Self.object(body.object)
        let required = try requirement(body.action)
        let consistency = try Self.consistency(body.consistency)
        let atLeast = try Self.atLeast(body.atLeast, request)
        let subject = try await resolve(body.subject, caller: caller)
        if body.subject != nil, !isSelf(subject, caller) { try await requireAdministers(caller, object.orgID) }
        let settled = try await settle(consistency, atLeast: atLeast)
        return (caller, Check(subject: subject, object: object, requirement: required), settled)
    }

    @Sendable func authorize(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (_, check, consistency) = try await check(request)
        return try JSONBody.response(DecisionResponse(try await decide(check, consistency)))
    }

    struct BatchResponse: Encodable { let results: [DecisionResponse] }

    @Sendable func batch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(BatchBody.self, from: request, limit: Self.batchBodyLimit)
        let caller = try await authenticate(request, atLeast: unchecked.ifValid.flatMap { $0.atLeast ?? $0.checks.compactMap(\.atLeast).max() })
        let body = try unchecked.fields()
        guard body.checks.count <= Self.batchLimit else { throw Problem.badRequest("a batch holds at most \(Self.batchLimit) checks") }
        let consistency = try Self.consistency(body.consistency)
        var atLeast = try Self.atLeast(body.atLeast, request)
        var checks: [Check] = []
        var strong: [Bool] = []
        checks.reserveCapacity(body.checks.count)
        var subjects: [String: ResolvedSubject] = [:]
        var administered = Set<UUID>()
        for (i, c) in body.checks.enumerated() {
            let object = try Self.object(c.object, field: "checks[\(i)].object")
            let required = try requirement(c.action, field: "checks[\(i)].action")
            let own = c.consistency == nil ? consistency : try Self.consistency(c.consistency)
            if let n = c.atLeast {
                guard n >= 0 else { throw Problem.badRequest("checks[\(i)].at_least must not be negative") }
                atLeast = max(atLeast ?? n, n)
            }
            strong.append(own == .strong)
            // One resolution per distinct subject; "self" cannot collide with any given subject.
            let key = c.subject.map { "u:\($0.userId ?? "-")|t:\($0.token ?? "-")|s:\($0.serviceAccountId ?? "-")" } ?? "self"
            let subject: ResolvedSubject
            if let known = subjects[key] { subject = known } else {
                subject = try await resolve(c.subject, caller: caller)
                subjects[key] = subject
            }
            if c.subject != nil, !isSelf(subject, caller), administered.insert(object.orgID).inserted {
                try await requireAdministers(caller, object.orgID)
            }
            checks.append(Check(subject: subject, object: object, requirement: required))
        }
        // The batch waits once for the highest revision asked for. Strong checks, and every check
        // when that revision is beyond the log, read through the database: each org once per batch.
        let settled = try await settle(.cached, atLeast: atLeast)
        let decisions = try await decide(checks, consistency: { strong[$0] ? .strong : settled })
        return try JSONBody.response(BatchResponse(results: decisions.map(DecisionResponse.init)))
    }

    struct GrantResponse: Encodable {
        let kind: String
        let role: String
        let resource: String
        let bindingId: OrNull<String>
        let expiresAt: OrNull<Date>
        let decisive: Bool
        let auditEventId: OrNull<String>
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
        let (caller, check, settled) = try await check(request)
        let (object, required) = (check.object, check.requirement)
        guard case .subject(let subject) = check.subject else {
            return try JSONBody.response(ExplainResponse(
                allowed: false, role: OrNull(nil), reason: Self.invalidToken.reason, requiredRole: required.role.rawValue, grants: []))
        }
        let explanation = try await policy.explain(subject, object, required, consistency: settled)
        // The audit events themselves are shown only to callers who may read the org's audit log.
        let actor = try await authenticator.actor(caller)
        let mayReadAudit = (try? await services.tenancy.access(Permission.auditRead, actor: actor, orgID: object.orgID)) != nil
        var grants: [GrantResponse] = []
        for g in explanation.grants {
            let event = mayReadAudit ? try await g.auditEventID.asyncMap { try await services.tenancy.store.auditEvent(id: $0) } ?? nil : nil
            grants.append(GrantResponse(
                kind: g.kind.rawValue, role: g.role.rawValue, resource: g.resource, bindingId: OrNull(g.bindingID?.lowercasedString),
                expiresAt: OrNull(g.expiresAt.isFinite ? Date(timeIntervalSince1970: g.expiresAt) : nil), decisive: g.decisive,
                auditEventId: OrNull(g.auditEventID?.lowercasedString), auditEvent: OrNull(event.map(AuditEventResponse.init))))
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
        let unchecked = try await JSONBody.read(CapabilitiesBody.self, from: request, limit: Self.batchBodyLimit)
        let caller = try await authenticate(request, atLeast: unchecked.ifValid?.atLeast)
        let body = try unchecked.fields()
        guard body.objects.count <= Self.batchLimit else { throw Problem.badRequest("at most \(Self.batchLimit) objects") }
        let objects = try body.objects.enumerated().map { try Self.object($1, field: "objects[\($0)]") }
        let consistency = try Self.consistency(body.consistency)
        let atLeast = try Self.atLeast(body.atLeast, request)
        let resolved = try await resolve(body.subject, caller: caller)
        if body.subject != nil, !isSelf(resolved, caller) {
            for org in Set(objects.map(\.orgID)) { try await requireAdministers(caller, org) }
        }
        let settled = try await settle(consistency, atLeast: atLeast)
        var results: [CapabilityResponse] = []
        var pacer = Pacer()
        var reads = ReadThrough()
        for object in objects {
            try await pacer.step()
            guard case .subject(let subject) = resolved else {
                results.append(CapabilityResponse(object: object.string, role: OrNull(nil), permissions: []))
                continue
            }
            let (role, permissions) = try await policy.capabilities(subject, object, consistency: settled, reads: &reads)
            results.append(CapabilityResponse(object: object.string, role: OrNull(role?.rawValue), permissions: permissions))
        }
        return try JSONBody.response(CapabilitiesResponse(results: results))
    }

    struct LookupItem: Encodable {
        let object: String
        let role: String
    }

    struct LookupResponse: Encodable {
        let items: [LookupItem]
        let total: Int
        let limit: Int
        let offset: Int
    }

    /// Reads through the database: it answers "where?", not "may I?", and is off the hot path.
    /// One pass over what the subject holds (`Lookup.run`), then a page of the matches.
    @Sendable func lookup(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(LookupBody.self, from: request)
        let caller = try await authenticator.authenticate(request)
        let body = try unchecked.fields()
        let required = try requirement(body.permission, field: "permission")
        if let type = body.type, type != "org", !ObjectRef.isValidType(type) {
            throw Problem.badRequest("type must be org or an object type (a-z, 0-9, _ and -)")
        }
        var page = try Page(from: request)
        if let n = body.limit {
            guard (1...Page.maxLimit).contains(n) else { throw Problem.badRequest("limit must be an integer from 1 to \(Page.maxLimit)") }
            page.limit = n
        }
        if let n = body.offset {
            guard n >= 0, n <= 1_000_000_000 else { throw Problem.badRequest("offset must be an integer from 0 to 1000000000") }
            page.offset = n
        }
        let resolved = try await resolve(body.subject, caller: caller)
        guard case .subject(let subject) = resolved else {
            return try JSONBody.response(LookupResponse(items: [], total: 0, limit: page.limit, offset: page.offset))
        }
        let foreign = body.subject != nil && !isSelf(resolved, caller) && !caller.isRoot
        let (memberships, bindings) = try await services.policyStore.grants(of: subject.principal)
        // Asking about another subject shows only orgs the caller administers: one check per org, not per object.
        var visible = Set<UUID>()
        if foreign {
            var pacer = Pacer()
            for org in Set(memberships.map(\.0) + bindings.map(\.0)) {
                try await pacer.step()
                if (try? await requireAdministers(caller, org)) != nil { visible.insert(org) }
            }
        }
        var pacer = Pacer()
        let result = try await Lookup.run(
            memberships: memberships, bindings: bindings, scopes: subject.scopes, type: body.type, required: required.role,
            now: Date().instant, includeOrg: { !foreign || visible.contains($0) }, pacer: &pacer)
        let items = result.items.dropFirst(page.offset).prefix(page.limit).map {
            LookupItem(object: $0.object.string, role: $0.role.rawValue)
        }
        return try JSONBody.response(LookupResponse(items: Array(items), total: result.items.count, limit: page.limit, offset: page.offset))
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
        let unchecked = try await JSONBody.read(IdentifyBody.self, from: request)
        _ = try await authenticator.authenticate(request)
        let body = try unchecked.fields()
        guard !body.token.isEmpty, body.token.utf8.count <= 8192, let resolved = try? await authenticator.resolve(token: body.token) else {
            throw Problem.unauthenticated("the token is not valid")
        }
        let c = resolved.caller
        let response: IdentifyResponse
        switch c.credential {
        case .session:
            response = IdentifyResponse(
                type: "user", userId: OrNull(c.user?.id.lowercasedString), email: OrNull(c.user?.email), keyId: OrNull(nil),
                serviceAccountId: OrNull(nil), orgId: OrNull(nil), expiresAt: OrNull(resolved.expiresAt))
        case .userKey(let key):
            response = IdentifyResponse(
                type: "api_key", userId: OrNull(c.user?.id.lowercasedString), email: OrNull(c.user?.email), keyId: OrNull(key.id.lowercasedString),
                serviceAccountId: OrNull(nil), orgId: OrNull(nil), expiresAt: OrNull(key.expiresAt))
        case .serviceAccountKey(let key, let account, let org):
            response = IdentifyResponse(
                type: "service_account", userId: OrNull(nil), email: OrNull(nil), keyId: OrNull(key.id.lowercasedString),
                serviceAccountId: OrNull(account.lowercasedString), orgId: OrNull(org.lowercasedString), expiresAt: OrNull(key.expiresAt))
        }
        return try JSONBody.response(response)
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
        // A reconnecting EventSource sends Last-Event-ID: it resumes there, not at `since`.
        var since: Int64
        var query: Int64?
        if let text = try request.singleQuery("since") {
            guard let n = Int64(text), n >= 0 else { throw Problem.badRequest("since must be a non-negative integer") }
            query = n
        }
        if let last = request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard let n = Int64(last), n >= 0 else { throw Problem.badRequest("Last-Event-ID must be a non-negative integer") }
            since = n
        } else if let query {
            since = query
        } else {
            since = try await services.changeFeed.latestRevision()
        }
        // The change log names every org and user: only the root (or its unscoped key) may follow it.
        guard caller.isRoot || (caller.user?.isRoot == true && caller.scopes?.authzCheck == true) else {
            throw Problem.forbidden("only the platform administrator may watch the change log")
        }
        let feed = services.changeFeed
        let start = since
        // Subscribed before the backlog is read, so nothing committed meanwhile is missed.
        let live: AsyncStream<WatchHub.Event>
        do {
            live = try services.watch.subscribe()
        } catch {
            throw Problem(.serviceUnavailable, code: "unavailable",
                          detail: "this node serves at most \(services.watch.capacity) watch streams; try again later or on another node",
                          headers: [.retryAfter: "5"])
        }
        let body = ResponseBody { writer in
            var cursor = start
            func send(_ change: Change) async throws {
                let data = try JSONBody.encoder.encode(WatchEvent(revision: change.revision, kind: change.kind, subject: change.subject, at: change.at))
                try await writer.write(ByteBuffer(string: "id: \(change.revision)\nevent: \(change.kind)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"))
                cursor = change.revision
            }
            try await writer.write(ByteBuffer(string: ": watching from revision \(cursor)\n\n"))
            // The backlog since `since`, a page at a time: read once, not polled.
            while true {
                let batch = try await feed.changes(after: cursor, limit: 500)
                for change in batch { try await send(change) }
                if batch.count < 500 { break }
            }
            // Then what the node's follower reads. The stream ends on shutdown, or when this
            // reader falls too far behind; either way the client resumes with Last-Event-ID.
            // On SIGTERM every stream ends at once, so draining in-flight requests does not wait
            // for followers; they reconnect to another node with Last-Event-ID.
            try await withGracefulShutdownHandler {
                for await event in live {
                    switch event {
                    case .keepAlive:
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    case .changes(let batch):
                        for change in batch where change.revision > cursor { try await send(change) }
                    }
                }
            } onGracefulShutdown: { [hub = services.watch] in
                hub.close()
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
