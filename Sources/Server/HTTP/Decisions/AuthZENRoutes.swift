import Foundation
import Hummingbird
import Policy
import Tenancy

/// OpenID AuthZEN Authorization API 1.0 (evaluation, evaluations, PDP metadata), mapped onto
/// the same decisions as `/v1/authorize`:
/// - subject `{type: "user" | "service_account", id}`;
/// - resource `{type: "org", id: <org_id>}`, or `{type, id, properties: {org_id}}` for an object
///   inside an org (`org:<org_id>/<type>:<id>`), or any type with `id` a full object string;
/// - action `{name}`: a role name or a permission.
struct AuthZENRoutes {
    let authorizer: Authorizer
    let publicURL: String

    var fields: DecisionFields { DecisionFields(policy: authorizer.policy) }

    struct Entity: Decodable, Sendable {
        let type: String?
        let id: String?
        let properties: [String: JSONValue]?
    }

    struct ActionBody: Decodable, Sendable {
        let name: String?
    }

    /// Every AuthZEN request body: one evaluation, the defaults and items of `/evaluations`
    /// (whose items are bodies again), or a search with its `page`. Each route reads the fields
    /// its API defines.
    struct AuthZENBody: Decodable, Sendable {
        let subject: Entity?
        let resource: Entity?
        let action: ActionBody?
        let context: JSONValue?
        let evaluations: [AuthZENBody]?
        let options: Options?
        let page: PageRequest?
    }

    struct Options: Decodable, Sendable {
        let evaluationsSemantic: String?
    }

    /// Why: the reason and effective role of a decision, or (in `/evaluations`) the error of
    /// one evaluation that could not be decided.
    struct DecisionContext: Encodable, Sendable {
        var reason: String?
        var role: OrNull<String>?
        var error: ItemError?
    }

    /// AuthZEN's per-evaluation error: the HTTP status the evaluation alone would have had.
    struct ItemError: Encodable, Sendable {
        let status: Int
        let code: String
        let message: String
    }

    struct EvaluationResponse: Encodable, Sendable {
        let decision: Bool
        let context: DecisionContext
    }

    func subject(_ e: Entity?, field: String) throws -> SubjectRef {
        guard let e, let type = e.type, let id = e.id else { throw Problem.badRequest("\(field) needs type and id") }
        switch type {
        case "user": return try DecisionFields.subject(SubjectBody(userId: id, token: nil, serviceAccountId: nil, groupId: nil))
        case "service_account": return try DecisionFields.subject(SubjectBody(userId: nil, token: nil, serviceAccountId: id, groupId: nil))
        default: throw Problem.badRequest("\(field).type must be user or service_account")
        }
    }

    func object(_ e: Entity?, field: String) throws -> ObjectRef {
        guard let e, let type = e.type, let id = e.id else { throw Problem.badRequest("\(field) needs type and id") }
        if id.hasPrefix("org:") { return try DecisionFields.object(id, field: "\(field).id") }
        if type == "org" { return try DecisionFields.object("org:" + id, field: "\(field).id") }
        guard case .string(let org)? = e.properties?["org_id"] else {
            throw Problem.badRequest("\(field): give properties.org_id, or an id of the form org:<org_id>/\(type):<id>")
        }
        return try DecisionFields.object("org:\(org)/\(type):\(id)", field: field)
    }

    func action(_ a: ActionBody?, field: String) throws -> Requirement {
        guard let name = a?.name else { throw Problem.badRequest("\(field) needs a name") }
        return try fields.requirement(name, field: "\(field).name")
    }

    static func response(_ d: Decision) -> EvaluationResponse {
        EvaluationResponse(decision: d.allowed, context: DecisionContext(reason: d.reason, role: OrNull(d.role?.rawValue)))
    }

    /// The request's body and the caller, checked in the API's order: media type and JSON
    /// syntax (415, 400), then the credential (401), then the fields (400).
    func read(_ request: Request, _ context: AppRequestContext, limit: Int = JSONBody.defaultLimit) async throws -> (AuthZENBody, Caller) {
        let unchecked = try await JSONBody.read(AuthZENBody.self, from: request, limit: limit)
        let caller = try await context.caller(atLeast: nil)
        return (try unchecked.fields(), caller)
    }

    /// An evaluation that could not be decided is closed (`decision: false`) with its error.
    static func response(_ problem: Problem) -> EvaluationResponse {
        EvaluationResponse(decision: false, context: DecisionContext(
            error: ItemError(status: Int(problem.status.code), code: problem.code, message: problem.detail)))
    }

    @Sendable func evaluation(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (body, caller) = try await read(request, context)
        let subject = try subject(body.subject, field: "subject")
        let object = try object(body.resource, field: "resource")
        let required = try action(body.action, field: "action")
        let atLeast = try DecisionFields.atLeast(nil, request)
        let d = try await authorizer.check(Question(subject: subject, object: object, requirement: required), atLeast: atLeast, by: caller.asker)
        return try JSONBody.response(Self.response(d))
    }

    struct EvaluationsResponse: Encodable, Sendable {
        let evaluations: [EvaluationResponse]
    }

    @Sendable func evaluations(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (body, caller) = try await read(request, context, limit: DecisionFields.batchBodyLimit)
        let semantic = body.options?.evaluationsSemantic ?? "execute_all"
        guard ["execute_all", "deny_on_first_deny", "permit_on_first_permit"].contains(semantic) else {
            throw Problem.badRequest("options.evaluations_semantic must be execute_all, deny_on_first_deny or permit_on_first_permit")
        }
        // Without `evaluations` (or with none) the request is one evaluation of the defaults.
        let given = body.evaluations ?? []
        let items = given.isEmpty ? [AuthZENBody(subject: nil, resource: nil, action: nil, context: nil, evaluations: nil, options: nil, page: nil)] : given
        let atLeast = try DecisionFields.atLeast(nil, request)
        // Defaults are checked even when every evaluation overrides them: a malformed request is a 400.
        if let s = body.subject { _ = try subject(s, field: "subject") }
        if let r = body.resource { _ = try object(r, field: "resource") }
        if let a = body.action { _ = try action(a, field: "action") }
        guard items.count <= DecisionFields.batchLimit else { throw Problem.badRequest("at most \(DecisionFields.batchLimit) evaluations") }
        // An evaluation that does not parse, or asks what the caller may not ask, fails alone
        // (AuthZEN 1.0: errors of individual evaluations are carried in their context).
        var questions: [Question?] = []
        var unparsed: [Int: Problem] = [:]
        for (i, item) in items.enumerated() {
            let field = "evaluations[\(i)]"
            do {
                questions.append(Question(
                    subject: try subject(item.subject ?? body.subject, field: "\(field).subject"),
                    object: try object(item.resource ?? body.resource, field: "\(field).resource"),
                    requirement: try action(item.action ?? body.action, field: "\(field).action")))
            } catch let problem as Problem {
                questions.append(nil)
                unparsed[i] = problem
            }
        }
        let answers = try await authorizer.batchEach(questions, atLeast: atLeast, by: caller.asker, stop: { d in
            // An error is a denial for the short-circuit semantics.
            switch semantic {
            case "deny_on_first_deny": return !(d?.allowed ?? false)
            case "permit_on_first_permit": return d?.allowed ?? false
            default: return false
            }
        })
        let evaluations = answers.enumerated().map { i, answer -> EvaluationResponse in
            switch answer {
            case .success(let d)?: return Self.response(d)
            case .failure(let error)?: return Self.response(Problem.from(error) ?? .forbidden("not allowed"))
            case nil: return Self.response(unparsed[i] ?? .badRequest("the evaluation does not parse"))
            }
        }
        return try JSONBody.response(EvaluationsResponse(evaluations: evaluations))
    }

    /// PDP metadata. `policy_decision_point` is `PORTCULLIS_PUBLIC_URL`: the URL clients fetch
    /// this document under, which AuthZEN requires them to compare with it.
    struct Metadata: Encodable {
        let policyDecisionPoint: String
        let accessEvaluationEndpoint: String
        let accessEvaluationsEndpoint: String
        let searchSubjectEndpoint: String
        let searchResourceEndpoint: String
        let searchActionEndpoint: String
    }

    @Sendable func metadata(_ request: Request, context: AppRequestContext) async throws -> Response {
        let base = publicURL
        return try JSONBody.response(Metadata(
            policyDecisionPoint: base, accessEvaluationEndpoint: base + "/access/v1/evaluation",
            accessEvaluationsEndpoint: base + "/access/v1/evaluations", searchSubjectEndpoint: base + "/access/v1/search/subject",
            searchResourceEndpoint: base + "/access/v1/search/resource", searchActionEndpoint: base + "/access/v1/search/action"))
    }
}
