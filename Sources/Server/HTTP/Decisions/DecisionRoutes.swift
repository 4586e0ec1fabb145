import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// The decision API (SPEC §5): authorize (single, batch, explain), capabilities and lookup.
/// Each handler maps the request onto one `Authorizer` call, in the contract's order: body
/// (415/400), caller (401), fields (400), then the authorizer's rules (403).
struct DecisionRoutes {
    let authorizer: Authorizer
    let tenancy: TenancyService

    var fields: DecisionFields { DecisionFields(policy: authorizer.policy) }

    /// One question from a check body, with the revision it must be answered at.
    func question(_ request: Request, _ context: AppRequestContext) async throws -> (Caller, Question, Int64?) {
        let unchecked = try await JSONBody.read(CheckBody.self, from: request)
        let caller = try await context.caller(atLeast: unchecked.ifValid?.atLeast)
        let body = try unchecked.fields()
        let object = try DecisionFields.object(body.object)
        let required = try fields.requirement(body.action)
        let consistency = try DecisionFields.consistency(body.consistency)
        let atLeast = try DecisionFields.atLeast(body.atLeast, request)
        let subject = try DecisionFields.subject(body.subject)
        return (caller, Question(subject: subject, object: object, requirement: required, consistency: consistency), atLeast)
    }

    @Sendable func authorize(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (caller, question, atLeast) = try await question(request, context)
        return JSONBody.response(json: DecisionResponse.json(try await authorizer.check(question, atLeast: atLeast, by: caller.asker)))
    }

    @Sendable func batch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(BatchBody.self, from: request, limit: DecisionFields.batchBodyLimit)
        let caller = try await context.caller(atLeast: unchecked.ifValid.flatMap { $0.atLeast ?? $0.checks.compactMap(\.atLeast).max() })
        let body = try unchecked.fields()
        guard body.checks.count <= DecisionFields.batchLimit else { throw Problem.badRequest("a batch holds at most \(DecisionFields.batchLimit) checks") }
        let consistency = try DecisionFields.consistency(body.consistency)
        var atLeast = try DecisionFields.atLeast(body.atLeast, request)
        var questions: [Question] = []
        questions.reserveCapacity(body.checks.count)
        for (i, c) in body.checks.enumerated() {
            let object = try DecisionFields.object(c.object, field: "checks[\(i)].object")
            let required = try fields.requirement(c.action, field: "checks[\(i)].action")
            let own = c.consistency == nil ? consistency : try DecisionFields.consistency(c.consistency)
            if let n = c.atLeast {
                guard n >= 0 else { throw Problem.badRequest("checks[\(i)].at_least must not be negative") }
                atLeast = max(atLeast ?? n, n)
            }
            questions.append(Question(subject: try DecisionFields.subject(c.subject), object: object, requirement: required, consistency: own))
        }
        let decisions = try await authorizer.batch(questions, atLeast: atLeast, by: caller.asker)
        return JSONBody.response(json: DecisionResponse.json(results: decisions))
    }

    struct GrantResponse: Encodable {
        let kind: String
        let role: OrNull<String>
        let resource: String
        let bindingId: OrNull<String>
        /// A group's binding or override: the group, and the chain from the subject's own group up to it.
        let groupId: OrNull<String>
        let groupName: OrNull<String>
        let via: [String]
        let overrideId: OrNull<String>
        let effect: OrNull<String>
        let permission: OrNull<String>
        let overrideReason: OrNull<String>
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
        let (caller, question, atLeast) = try await question(request, context)
        guard let explanation = try await authorizer.explain(question, atLeast: atLeast, by: caller.asker) else {
            return try JSONBody.response(ExplainResponse(
                allowed: false, role: OrNull(nil), reason: Authorizer.invalidToken.reason, requiredRole: question.requirement.role.rawValue, grants: []))
        }
        // The audit events themselves are shown only to callers who may read the org's audit log.
        let events = try await tenancy.auditEvents(
            explanation.grants.compactMap(\.auditEventID), orgID: question.object.orgID, visibleTo: try await context.actor())
        let grants = explanation.grants.map { g in
            GrantResponse(
                kind: g.kind.rawValue, role: OrNull(g.role?.rawValue), resource: g.resource, bindingId: OrNull(g.bindingID?.lowercasedString),
                groupId: OrNull(g.groupID?.lowercasedString), groupName: OrNull(g.groupID.flatMap { explanation.groupNames[$0] }), via: g.via.map(\.lowercasedString), overrideId: OrNull(g.overrideID?.lowercasedString),
                effect: OrNull(g.effect?.rawValue), permission: OrNull(g.permission), overrideReason: OrNull(g.reason),
                expiresAt: OrNull(g.expiresAt.isFinite ? Date(timeIntervalSince1970: g.expiresAt) : nil), decisive: g.decisive,
                auditEventId: OrNull(g.auditEventID?.lowercasedString), auditEvent: OrNull(g.auditEventID.flatMap { events[$0] }.map(AuditEventResponse.init)))
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
        let unchecked = try await JSONBody.read(CapabilitiesBody.self, from: request, limit: DecisionFields.batchBodyLimit)
        let caller = try await context.caller(atLeast: unchecked.ifValid?.atLeast)
        let body = try unchecked.fields()
        guard body.objects.count <= DecisionFields.batchLimit else { throw Problem.badRequest("at most \(DecisionFields.batchLimit) objects") }
        let objects = try body.objects.enumerated().map { try DecisionFields.object($1, field: "objects[\($0)]") }
        let consistency = try DecisionFields.consistency(body.consistency)
        let atLeast = try DecisionFields.atLeast(body.atLeast, request)
        let subject = try DecisionFields.subject(body.subject)
        let results = try await authorizer.capabilities(of: subject, on: objects, consistency: consistency, atLeast: atLeast, by: caller.asker)
        return try JSONBody.response(CapabilitiesResponse(results: results.map {
            CapabilityResponse(object: $0.object.string, role: OrNull($0.role?.rawValue), permissions: $0.permissions)
        }))
    }

    struct LookupItemResponse: Encodable {
        let object: String
        /// Null where only an override allows the permission.
        let role: OrNull<String>
    }

    struct LookupResponse: Encodable {
        let items: [LookupItemResponse]
        let total: Int
        let limit: Int
        let offset: Int
    }

    @Sendable func lookup(_ request: Request, context: AppRequestContext) async throws -> Response {
        let unchecked = try await JSONBody.read(LookupBody.self, from: request)
        let caller = try await context.caller()
        let body = try unchecked.fields()
        let required = try fields.requirement(body.permission, field: "permission")
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
        let subject = try DecisionFields.subject(body.subject)
        let found = try await authorizer.lookup(of: subject, holding: required, type: body.type, by: caller.asker)
        let items = found.dropFirst(page.offset).prefix(page.limit).map { LookupItemResponse(object: $0.object.string, role: OrNull($0.role?.rawValue)) }
        return try JSONBody.response(LookupResponse(items: Array(items), total: found.count, limit: page.limit, offset: page.offset))
    }
}
