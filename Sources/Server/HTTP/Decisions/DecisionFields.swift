import Authority
import Foundation
import Hummingbird
import Policy
import Tenancy

/// Field checks shared by the decision routes and AuthZEN: request text becomes Policy values,
/// or a 400 that names the field. Nothing here decides anything.
struct DecisionFields: Sendable {
    let policy: PolicyService

    /// Batches carry up to 1000 checks (SPEC §11) in at most 1 MiB.
    static let batchLimit = 1000
    static let batchBodyLimit = 1024 * 1024

    /// The subject a body names; none is the caller itself.
    static func subject(_ body: SubjectBody?) throws -> SubjectRef {
        guard let body else { return .asker }
        if body.groupId != nil { throw Problem.badRequest("a group is never the subject of a decision: ask about one of its members") }
        let given = [body.userId != nil, body.token != nil, body.serviceAccountId != nil].filter { $0 }.count
        guard given == 1 else { throw Problem.badRequest("subject must have exactly one of user_id, token, service_account_id") }
        if let text = body.userId {
            guard let id = UUIDText.parse(text) else { throw Problem.badRequest("subject.user_id must be a UUID") }
            return .user(id)
        }
        if let text = body.serviceAccountId {
            guard let id = UUIDText.parse(text) else { throw Problem.badRequest("subject.service_account_id must be a UUID") }
            return .serviceAccount(id)
        }
        let token = body.token ?? ""
        guard !token.isEmpty, token.utf8.count <= 8192 else { throw Problem.badRequest("subject.token must be a non-empty token") }
        return .token(token)
    }

    /// `field` is only spelled out for an error: a valid batch builds no names.
    static func object(_ text: String, field: @autoclosure () -> String = "object") throws -> ObjectRef {
        do { return try ObjectRef.parse(text) } catch { throw Problem.badRequest("\(field()): \(error.message)") }
    }

    func requirement(_ action: String, field: @autoclosure () -> String = "action") throws -> Requirement {
        do { return try policy.requirement(action) } catch { throw Problem.badRequest("\(field()): \(error.message)") }
    }

    static func consistency(_ text: String?) throws -> Consistency {
        guard let text else { return .cached }
        guard let c = Consistency(rawValue: text) else { throw Problem.badRequest("consistency must be cached or strong") }
        return c
    }

    /// `at_least` from the body, else the `Portcullis-Revision` request header. Both are
    /// checked, even when the body's value is the one used.
    static func atLeast(_ body: Int64?, _ request: Request) throws -> Int64? {
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
}

extension Caller {
    /// The caller as the asker of decision questions (a service account's own grant is not
    /// needed there: decisions read it from the org's grants).
    var asker: Actor { Actor(subject: subject, isRoot: isRoot) }
}

extension Authenticator: TokenSubjects {
    func subject(ofToken token: String) async throws -> Subject? {
        try? await resolve(token: token).subject
    }

    /// The caller, as of the revision a request asks for (`at_least` in the body, else the
    /// `Portcullis-Revision` header); a malformed value is left for the field checks.
    func authenticate(_ request: Request, atLeast body: Int64?) async throws -> Caller {
        try await authenticate(request, reaching: (try? DecisionFields.atLeast(body, request)) ?? nil)
    }
}
