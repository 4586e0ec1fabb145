import Federation
import Foundation
import HTTPTypes
import Hummingbird
import Identity
import Invites
import Keys
import OpenID
import Policy
import NIOCore
import Storage
import Tenancy
import Webhooks

/// An RFC 9457 problem response with a stable snake_case `code`.
public struct Problem: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var detail: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String? = nil, detail: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code ?? Self.genericCode(status)
        self.detail = detail
        self.headers = headers
    }

    public static func badRequest(_ detail: String, code: String = "invalid_request") -> Problem { Problem(.badRequest, code: code, detail: detail) }
    public static func unauthenticated(_ detail: String = "authentication required") -> Problem {
        Problem(.unauthorized, code: "unauthenticated", detail: detail, headers: [.wwwAuthenticate: "Bearer"])
    }
    public static func forbidden(_ detail: String) -> Problem { Problem(.forbidden, code: "forbidden", detail: detail) }
    public static func notFound(_ detail: String = "no such resource") -> Problem { Problem(.notFound, code: "not_found", detail: detail) }
    static let alreadyMember = Problem(.conflict, code: "already_member", detail: "the user is already a member of this org")

    static func genericCode(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: return "invalid_request"
        case 401: return "unauthenticated"
        case 403: return "forbidden"
        case 404: return "not_found"
        case 405: return "method_not_allowed"
        case 409: return "conflict"
        case 410: return "gone"
        case 413: return "payload_too_large"
        case 415: return "unsupported_media_type"
        case 408: return "request_timeout"
        case 429: return "rate_limited"
        case 503: return "unavailable"
        default: return status.code >= 500 ? "internal_error" : "error"
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = ProblemBody(
            type: "https://portcullis.dev/problems/\(code)", title: status.reasonPhrase,
            status: status.code, detail: detail, code: code)
        let data = try JSONBody.encoder.encode(body)
        var fields = headers
        fields[.contentType] = "application/problem+json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension Problem {
    /// Maps domain and storage errors to problems; anything unknown is a 500 without details.
    static func from(_ error: any Error) -> Problem? {
        switch error {
        case let p as Problem:
            return p
        case let e as IdentityError:
            switch e {
            case .invalidEmail: return .badRequest("email is not a valid e-mail address")
            case .invalidName(let m): return .badRequest(m)
            case .weakPassword(let m): return Problem(.badRequest, code: "weak_password", detail: m)
            case .emailTaken: return Problem(.conflict, code: "email_taken", detail: "an account with this e-mail already exists")
            case .signupDisabled: return Problem(.forbidden, code: "signup_disabled", detail: "self-signup is disabled; an invitation is required")
            case .invalidCredentials: return .unauthenticated("invalid e-mail or password")
            case .invalidRefreshToken: return .unauthenticated("invalid refresh token")
            case .unauthenticated: return .unauthenticated("invalid or expired credentials")
            case .forbidden(let m): return .forbidden(m)
            case .notFound: return .notFound()
            case .invalidToken: return .badRequest("the token is invalid, used or expired", code: "invalid_token")
            case .invalidCode: return Problem(.unauthorized, code: "invalid_code", detail: "the code is wrong, used or expired; ask for a new one")
            }
        case let e as InviteError:
            switch e {
            case .expired: return Problem(.gone, code: "invite_expired", detail: "the invite has expired; ask for it to be resent")
            case .notPending(let state): return Problem(.conflict, code: "conflict", detail: "the invite is \(state.rawValue), not pending")
            case .invalid(let m): return .badRequest(m)
            case .forbidden(let m): return .forbidden(m)
            case .notFound(let m): return .notFound(m)
            case .conflict(let m): return Problem(.conflict, code: "conflict", detail: m)
            case .alreadyMember: return Self.alreadyMember
            case .dormant:
                return Problem(.conflict, code: "invite_dormant",
                               detail: "the invite waits until your e-mail address is verified: confirm it (POST /v1/auth/verify-email/request sends a new link), then accept")
            case .invalidToken(let m): return .badRequest(m, code: "invalid_invite_token")
            }
        case let e as BindingError:
            switch e {
            case .invalid(let m): return .badRequest(m)
            case .forbidden(let m): return .forbidden(m)
            case .notFound(let m): return .notFound(m)
            case .quotaExceeded(let m): return Problem(.conflict, code: "quota_exceeded", detail: m)
            }
        case let e as GroupError:
            switch e {
            case .invalid(let m): return .badRequest(m)
            case .forbidden(let m): return .forbidden(m)
            case .notFound(let m): return .notFound(m)
            case .conflict(let code, let m): return Problem(.conflict, code: code, detail: m)
            case .quotaExceeded(let m): return Problem(.conflict, code: "quota_exceeded", detail: m)
            }
        case let e as FederationError:
            switch e {
            case .invalid(let m): return .badRequest(m)
            case .forbidden(let m): return .forbidden(m)
            case .notFound(let m): return .notFound(m)
            case .conflict(let code, let m): return Problem(.conflict, code: code, detail: m)
            case .upstream(let m): return .badRequest(m, code: "upstream_refused")
            case .unreachable(let m): return Problem(.badGateway, code: "upstream_unavailable", detail: m)
            case .reauthenticate(let m): return Problem(.forbidden, code: "reauthentication_required", detail: m)
            case .linkRequired(let email, let provider):
                return Problem(.conflict, code: "link_required", detail: "an account already uses \(email): sign in to it first, then link \(provider) from your account page")
            }
        case let e as KeyError:
            switch e {
            case .invalid(let m): return .badRequest(m)
            case .forbidden(let m): return .forbidden(m)
            case .notFound(let m): return .notFound(m)
            }
        case let e as ClientError:
            switch e {
            case .invalid(let m): return .badRequest(m)
            case .forbidden(let m): return .forbidden(m)
            case .notFound(let m): return .notFound(m)
            }
        case let e as WebhookError:
            switch e {
            case .invalid(let m): return .badRequest(m)
            case .forbidden(let m): return .forbidden(m)
            case .notFound(let m): return .notFound(m)
            case .quotaExceeded(let m): return Problem(.conflict, code: "quota_exceeded", detail: m)
            case .conflict(let m): return Problem(.conflict, code: "conflict", detail: m)
            }
        case let e as BackupError:
            switch e {
            case .invalid(let m): return .badRequest(m)
            case .conflict(let m): return Problem(.conflict, code: "conflict", detail: m)
            }
        case let e as PolicyError:
            return .badRequest(e.message)
        case let e as AuthorizerError:
            switch e {
            case .mayNotAskAboutOthers:
                return .forbidden("asking about another subject needs the root admin or a key with the authz:check scope")
            case .notAdministered:
                return .forbidden("with authz:check you may ask about other subjects only in orgs where you are an admin or owner")
            }
        case let e as TenancyError:
            switch e {
            case .invalid(let m): return .badRequest(m)
            case .notFound(let m): return .notFound(m)
            case .forbidden(let m): return .forbidden(m)
            case .lastOwner: return Problem(.conflict, code: "last_owner", detail: "an org must keep at least one owner whose membership does not expire")
            case .alreadyMember: return Self.alreadyMember
            case .conflict(let m): return Problem(.conflict, code: "conflict", detail: m)
            case .quotaExceeded(let m): return Problem(.conflict, code: "quota_exceeded", detail: m)
            case .addressNotProven:
                return Problem(.conflict, code: "address_not_proven", detail: "no account with a verified address has this e-mail; invite it instead")
            }
        case let e as StorageError:
            switch e {
            case .unavailable: return Problem(.serviceUnavailable, code: "unavailable", detail: "the database is unavailable; try again", headers: [.retryAfter: "1"])
            case .conflict: return Problem(.serviceUnavailable, code: "unavailable", detail: "too much contention; try again", headers: [.retryAfter: "1"])
            case .invalidText(let m): return .badRequest(m)
            default: return nil
            }
        case let e as AbuseLimits.Refusal:
            return Problem(.tooManyRequests, code: "rate_limited", detail: "too many attempts; try again in \(e.retryAfter) s",
                           headers: [.retryAfter: String(e.retryAfter)])
        case is CancellationError:
            return Problem(.serviceUnavailable, code: "unavailable", detail: "the request was cancelled; try again", headers: [.retryAfter: "1"])
        case let e as HTTPError:
            switch e.status {
            case .contentTooLarge: return Problem(.contentTooLarge, detail: "request body is larger than allowed")
            case .notFound: return .notFound()
            default: return Problem(e.status, detail: e.body ?? e.status.reasonPhrase)
            }
        default:
            return nil
        }
    }
}

struct ProblemBody: Encodable {
    let type: String, title: String, status: Int, detail: String, code: String
}
