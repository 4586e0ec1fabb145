import Authority
import Foundation
import Tenancy
import Memberwise

extension Actor {
    /// May ask about subjects other than itself (SPEC §5): root, or a key with `authz:check`.
    public var mayAskAboutOthers: Bool { isRoot || subject.scopes?.authzCheck == true }
}

/// The subject a question is about, as the request named it.
public enum SubjectRef: Sendable, Hashable {
    /// The asker itself (no subject given).
    case asker
    case user(UUID)
    case serviceAccount(UUID)
    /// A bearer token (access token or API key); an API key is narrowed by its scopes.
    case token(String)
}

/// Turns a bearer token into the subject it stands for. The Authenticator implements it, so a
/// token asked about is checked exactly as a caller's token is.
public protocol TokenSubjects: Sendable {
    /// nil when the token does not verify (a denial, not an error).
    func subject(ofToken token: String) async throws -> Subject?
}

/// How current this node's memory is. The change applier implements it.
public protocol RevisionGate: Sendable {
    /// True when the memory may be older than the staleness bound (SPEC §18): answer from the database.
    var isStale: Bool { get }
    /// True once revision `n` is applied here (catching up first); false when the log has no such revision yet.
    func reach(_ revision: Int64) async throws -> Bool
}

/// Everything a principal holds across orgs, read from the database (for lookup). What its
/// groups hold is listed apart: it counts only in orgs where the principal is a current member.
public struct Holdings: Sendable {
    public var memberships: [(UUID, MemberGrant)] = []
    public var bindings: [(UUID, BindingGrant)] = []
    public var overrides: [(UUID, OverrideGrant)] = []
    /// Bindings and overrides of the groups it is in (nested too), each expiring no later than
    /// the principal's own membership of the group.
    public var groupBindings: [(UUID, BindingGrant)] = []
    public var groupOverrides: [(UUID, OverrideGrant)] = []

    public init() {}
}

public protocol HoldingsReader: Sendable {
    func holdings(of principal: Principal) async throws -> Holdings
}

/// Why a question may not be asked (403 at the HTTP edge).
public enum AuthorizerError: Error, Sendable, Equatable {
    /// Asking about another subject needs root or a key with `authz:check`.
    case mayNotAskAboutOthers
    /// Asking about others in an org needs the asker's own role there (after its scopes) to be at least admin.
    case notAdministered
}

/// One question of a check or batch.
@PublicInit
public struct Question: Sendable {
    public var subject: SubjectRef
    public var object: ObjectRef
    public var requirement: Requirement
    public var consistency: Consistency = .cached
}

/// One object's answer to `capabilities`.
public struct Capability: Sendable, Equatable {
    public var object: ObjectRef
    public var role: Role?
    public var permissions: [String]
}

/// The one decision use case (SPEC §5): check, batch, explain, capabilities and lookup, for
/// the HTTP API and AuthZEN alike. It owns the rules around the engine: who the subject is,
/// who may ask about whom, and which state answers (`at_least`, staleness, `strong`).
public struct Authorizer: Sendable {
    public let policy: PolicyService
    let tokens: any TokenSubjects
    let revisions: any RevisionGate
    let holdings: any HoldingsReader
    /// Sees every decision made (metrics).
    let decided: @Sendable (Decision) -> Void

    /// A token subject that does not verify is a denial, not an error.
    public static let invalidToken = Decision(allowed: false, role: nil, reason: "the subject's token is not valid")

    public init(
        policy: PolicyService, tokens: any TokenSubjects, revisions: any RevisionGate, holdings: any HoldingsReader,
        decided: @escaping @Sendable (Decision) -> Void = { _ in }
    ) {
        self.policy = policy
        self.tokens = tokens
        self.revisions = revisions
        self.holdings = holdings
        self.decided = decided
    }

    // MARK: Questions

    public func check(_ question: Question, atLeast: Int64?, by asker: Actor) async throws -> Decision {
        var asking = Asking(asker)
        let subject = try await resolve(question.subject, for: question.object.orgID, &asking)
        let consistency = try await settle(question.consistency, atLeast: atLeast)
        guard let subject else { return Self.invalidToken }
        let d = try await policy.decide(subject, question.object, question.requirement, consistency: consistency)
        decided(d)
        return d
    }

    /// Decides questions in order: each distinct subject resolved once, each org's
    /// administration checked once, each org read through at most once, the loop paced so a
    /// client that goes away stops it. `stop` ends it early after a decision it accepts. A
    /// question the asker may not ask fails the whole batch, before anything is decided.
    public func batch(_ questions: [Question], atLeast: Int64?, by asker: Actor, stop: (Decision) -> Bool = { _ in false }) async throws -> [Decision] {
        try await decideInOrder(questions.map(Optional.some), atLeast: atLeast, by: asker, refusalsFailAlone: false, stop: { $0.map(stop) ?? false })
            .compactMap { try $0?.get() }
    }

    /// Like `batch`, for callers whose protocol answers each question on its own (AuthZEN's
    /// evaluations): a question the asker may not ask is refused alone, and a nil question (one
    /// the caller could not parse) is passed over with a nil answer. `stop` sees each decision,
    /// and nil for a refusal or a passed-over question.
    public func batchEach(
        _ questions: [Question?], atLeast: Int64?, by asker: Actor, stop: (Decision?) -> Bool = { _ in false }
    ) async throws -> [Result<Decision, AuthorizerError>?] {
        try await decideInOrder(questions, atLeast: atLeast, by: asker, refusalsFailAlone: true, stop: stop)
    }

    /// The one batch loop behind `batch` and `batchEach`: subjects resolved (and refusals found)
    /// first, then each run of decidable questions decided in one pass.
    func decideInOrder(
        _ questions: [Question?], atLeast: Int64?, by asker: Actor, refusalsFailAlone: Bool, stop: (Decision?) -> Bool
    ) async throws -> [Result<Decision, AuthorizerError>?] {
        var asking = Asking(asker)
        var subjects = [Subject?](repeating: nil, count: questions.count)
        var refused: [Int: AuthorizerError] = [:]
        for (i, q) in questions.enumerated() {
            guard let q else { continue }
            do {
                subjects[i] = try await resolve(q.subject, for: q.object.orgID, &asking)
            } catch let error as AuthorizerError where refusalsFailAlone {
                refused[i] = error
            }
        }
        // The batch waits once for the highest revision asked for; strong questions stay strong.
        let settled = try await settle(.cached, atLeast: atLeast)
        var answers: [Result<Decision, AuthorizerError>?] = []
        answers.reserveCapacity(questions.count)
        var pacer = Pacer()
        var stopped = false
        func stopping(_ d: Decision?) -> Bool {
            let s = stop(d)
            stopped = stopped || s
            return s
        }
        var start = 0
        while start < questions.count {
            // A run of questions to decide, up to the next one that is refused or passed over.
            var end = start
            var checks: [PolicyService.Check] = []
            while end < questions.count, let q = questions[end], refused[end] == nil {
                checks.append(PolicyService.Check(
                    subject: subjects[end], object: q.object, requirement: q.requirement, consistency: q.consistency == .strong ? .strong : settled))
                end += 1
            }
            if !checks.isEmpty {
                let results = try await policy.decide(batch: checks, stop: { stopping($0 ?? Self.invalidToken) }, pacer: &pacer, decided: decided)
                answers += results.map { .success($0 ?? Self.invalidToken) }
                if stopped { return answers }
            }
            guard end < questions.count else { break }
            answers.append(refused[end].map { .failure($0) })
            if stopping(nil) { return answers }
            start = end + 1
        }
        return answers
    }

    /// The decision with the grants on its path; nil when the subject's token did not verify.
    public func explain(_ question: Question, atLeast: Int64?, by asker: Actor) async throws -> Explanation? {
        var asking = Asking(asker)
        let subject = try await resolve(question.subject, for: question.object.orgID, &asking)
        // Settled for `at_least` alone: explain reads the database whatever the consistency.
        _ = try await settle(question.consistency, atLeast: atLeast)
        guard let subject else { return nil }
        return try await policy.explain(subject, question.object, question.requirement)
    }

    /// For each object, the subject's effective role there and every permission it holds.
    public func capabilities(
        of ref: SubjectRef, on objects: [ObjectRef], consistency: Consistency, atLeast: Int64?, by asker: Actor
    ) async throws -> [Capability] {
        var asking = Asking(asker)
        var subject: Subject?
        if objects.isEmpty {
            subject = try await resolve(ref, for: nil, &asking)
        }
        for org in Set(objects.map(\.orgID)) {
            subject = try await resolve(ref, for: org, &asking)
        }
        let settled = try await settle(consistency, atLeast: atLeast)
        var results: [Capability] = []
        results.reserveCapacity(objects.count)
        var pacer = Pacer()
        var reads = ReadThrough()
        for object in objects {
            try await pacer.step()
            guard let subject else {
                results.append(Capability(object: object, role: nil, permissions: []))
                continue
            }
            let (role, permissions) = try await policy.capabilities(subject, object, consistency: settled, reads: &reads)
            results.append(Capability(object: object, role: role, permissions: permissions))
        }
        return results
    }

    // MARK: The rules around the engine

    /// What one request has learnt about its subjects and the orgs the asker administers.
    struct Asking {
        let asker: Actor
        var resolved: [SubjectRef: Subject?] = [:]
        var administered = Set<UUID>()
        /// Orgs where asking about others was refused: refused again without a second look.
        var notAdministered = Set<UUID>()

        init(_ asker: Actor) { self.asker = asker }

        /// Whether the answer is about someone other than the asker.
        func foreign(_ ref: SubjectRef, _ subject: Subject) -> Bool {
            ref != .asker && subject.principal != asker.subject.principal
        }
    }

    /// The subject `ref` names, after the may-ask-about-others rules; nil for a token that does
    /// not verify. With `org`, asking about another subject there needs the asker to administer it.
    func resolve(_ ref: SubjectRef, for org: UUID?, _ asking: inout Asking) async throws -> Subject? {
        let asker = asking.asker
        // The common case, the asker itself: nothing to check or remember.
        if case .asker = ref { return asker.subject }
        let subject: Subject?
        if let known = asking.resolved[ref] {
            subject = known
        } else {
            subject = try await named(ref, by: asker)
            asking.resolved[ref] = subject
        }
        if let org, let subject, asking.foreign(ref, subject), !asker.isRoot, !asking.administered.contains(org) {
            guard !asking.notAdministered.contains(org), try await administers(asker, org) else {
                asking.notAdministered.insert(org)
                throw AuthorizerError.notAdministered
            }
            asking.administered.insert(org)
        }
        return subject
    }

    /// The subject a request names, once the asker may ask about it.
    func named(_ ref: SubjectRef, by asker: Actor) async throws -> Subject? {
        let principal: Principal
        switch ref {
        case .asker: return asker.subject
        case .user(let id): principal = .user(id)
        case .serviceAccount(let id): principal = .serviceAccount(id)
        case .token(let token):
            guard asker.mayAskAboutOthers else { throw AuthorizerError.mayNotAskAboutOthers }
            return try await tokens.subject(ofToken: token)
        }
        // Asking about oneself by id is asking as oneself: with one's own scopes.
        if principal == asker.subject.principal { return asker.subject }
        guard asker.mayAskAboutOthers else { throw AuthorizerError.mayNotAskAboutOthers }
        return Subject(principal: principal)
    }

    /// The asker's own membership role in `org`, after its scopes, is at least admin: an
    /// `authz:check` key cannot read the grants of orgs its owner does not run. Membership, not
    /// a binding on the org object: the same answer the org's own routes give (TenancyService).
    func administers(_ asker: Actor, _ org: UUID) async throws -> Bool {
        guard let role = try await policy.membershipRole(of: asker.subject, in: org) else { return false }
        return RankRules.atLeast(role, .admin)
    }

    /// The state a question is answered from: never older than revision `atLeast` (caught up
    /// from the change log at once, else read through the database), and read through whenever
    /// this node's memory may be stale.
    func settle(_ consistency: Consistency, atLeast: Int64?) async throws -> Consistency {
        guard consistency == .cached else { return consistency }
        if revisions.isStale { return .strong }
        guard let n = atLeast else { return .cached }
        return try await revisions.reach(n) ? .cached : .strong
    }
}
