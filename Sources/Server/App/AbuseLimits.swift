import Foundation
import Identity
import Synchronization

/// Throttles the endpoints that guess or spend credentials: login, signup, password reset,
/// e-mail verification and invite claims.
///
/// - Per client IP, a token bucket shared by those endpoints (burst, then a steady rate).
/// - Per account, at most `accountFailuresPerHour` failed logins in any hour. Past that, logins
///   for the account are refused before the password is looked at — except from an address that
///   has signed in to the account before, so an attacker cannot lock the owner out.
///   Unknown e-mails count exactly like known ones: the limit says nothing about existence.
/// - Per account, a few password-reset mails an hour (no mail bombing through the reset form).
///
/// State lives in this node's memory. Behind a load balancer each node keeps its own counts,
/// so the cluster-wide limit is the per-node limit times the number of nodes.
public final class AbuseLimits: Sendable {
    public struct Settings: Sendable {
        /// Requests a client IP may make at once; 0 turns per-IP throttling off.
        public var ipBurst = 50
        /// Requests per minute an IP regains after its burst; 0 turns per-IP throttling off.
        public var ipPerMinute = 60
        public var accountFailuresPerHour = 100
        public var resetMailsPerHour = 5
        /// Sign-in code mails one address may be sent in an hour.
        public var codeMailsPerHour = 5
        /// Invite mails (create and resend) an org may send in an hour.
        public var inviteMailsPerOrgPerHour = 200
        /// Invite mails one address may receive in an hour, from every org together.
        public var inviteMailsPerRecipientPerHour = 10
        /// Wrong `current_password` answers one session may give in an hour.
        public var passwordGuessesPerSessionPerHour = 5
        /// Wrong `current_password` answers an account may take in an hour, over all sessions.
        public var passwordGuessesPerAccountPerHour = 20
        /// Writes one user (or service account) may make in a minute, at once or spread out;
        /// 0 turns the quota off. The root is not counted.
        public var writesPerUserPerMinute = 600
        public init() {}
    }

    /// How long to wait before trying again.
    public struct Refusal: Error, Sendable {
        public let retryAfter: Int
    }

    let settings: Settings
    private let buckets = Mutex<[String: Bucket]>([:])
    private let accounts = Mutex<[String: Account]>([:])
    /// Hourly budgets (reset mails, invite mails, password guesses), keyed by kind and subject.
    private let resets = Mutex<[String: [Date]]>([:])
    private let throttled = Atomic<Int>(0)
    private let loginFailures = Atomic<Int>(0)
    static let window: TimeInterval = 3600
    /// Bounds on remembered clients and accounts; beyond them the stalest entries go.
    static let maxEntries = 100_000
    static let maxKnownAddresses = 16

    struct Bucket {
        var tokens: Double
        var updated: Date
    }

    struct Account {
        var failures: [Date] = []
        var knownAddresses: [String] = []
        var touched: Date
    }

    public init(settings: Settings) {
        self.settings = settings
    }

    public var throttledCount: Int { throttled.load(ordering: .relaxed) }
    public var loginFailureCount: Int { loginFailures.load(ordering: .relaxed) }

    /// Takes one request from the IP's bucket, or says when the next one is due.
    public func spend(ip rawIP: String, now: Date) throws(Refusal) {
        guard settings.ipBurst > 0, settings.ipPerMinute > 0 else { return }
        try spendBucket(Self.clientKey(rawIP), capacity: settings.ipBurst, perMinute: settings.ipPerMinute, now: now)
    }

    /// One write by `principal` (SPEC §18: writes per user per minute).
    public func spendWrite(principal: UUID, now: Date) throws(Refusal) {
        guard settings.writesPerUserPerMinute > 0 else { return }
        try spendBucket("write:" + principal.uuidString, capacity: settings.writesPerUserPerMinute, perMinute: settings.writesPerUserPerMinute, now: now)
    }

    /// A token bucket of `capacity`, refilled at `perMinute`.
    func spendBucket(_ ip: String, capacity whole: Int, perMinute: Int, now: Date) throws(Refusal) {
        let capacity = Double(whole)
        let perSecond = Double(perMinute) / 60
        let wait: Double? = buckets.withLock { buckets in
            var bucket = buckets[ip] ?? Bucket(tokens: capacity, updated: now)
            bucket.tokens = min(capacity, bucket.tokens + max(0, now.timeIntervalSince(bucket.updated)) * perSecond)
            bucket.updated = now
            defer {
                if buckets.count >= Self.maxEntries, buckets[ip] == nil {
                    // A bucket that has refilled anyway carries nothing worth keeping.
                    Self.bound(&buckets, stale: { $0.tokens + now.timeIntervalSince($0.updated) * perSecond >= capacity }, newest: \.updated)
                }
                buckets[ip] = bucket
            }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / perSecond }
            bucket.tokens -= 1
            return nil
        }
        if let wait { throw refuse(wait) }
    }

    /// Before a login is checked: refuses when the account has used up its failures, unless the
    /// address has signed in to it before. Otherwise it reserves one failure at once, so logins
    /// sent in parallel cannot all pass before the first one fails; `loginSucceeded` or
    /// `loginEnded` hands the reservation back.
    public func checkLogin(account rawAccount: String, ip rawIP: String, now: Date) throws(Refusal) -> Reservation {
        let account = Self.accountKey(rawAccount), ip = Self.clientKey(rawIP)
        let wait: Double? = accounts.withLock { accounts in
            if accounts.count >= Self.maxEntries, accounts[account] == nil {
                Self.bound(&accounts, stale: { now.timeIntervalSince($0.touched) >= Self.window }, newest: \.touched)
            }
            var entry = accounts[account] ?? Account(touched: now)
            entry.failures.removeAll { now.timeIntervalSince($0) >= Self.window }
            if entry.failures.count >= settings.accountFailuresPerHour, !entry.knownAddresses.contains(ip) {
                accounts[account] = entry
                return Self.window - now.timeIntervalSince(entry.failures[0])
            }
            // Only the newest `limit` failures matter for the decision; keep memory bounded.
            if entry.failures.count >= settings.accountFailuresPerHour { entry.failures.removeFirst() }
            entry.failures.append(now)
            entry.touched = now
            accounts[account] = entry
            return nil
        }
        if let wait { throw refuse(wait) }
        return Reservation(account: account, at: now)
    }

    /// A failure counted in advance by `checkLogin`.
    public struct Reservation: Sendable {
        let account: String
        let at: Date
    }

    /// The login failed on its credentials: the reserved failure stays.
    public func loginFailed(_ reservation: Reservation) {
        loginFailures.add(1, ordering: .relaxed)
    }

    /// The login ended without a verdict on the password (bad input, database down): no failure.
    public func loginEnded(_ reservation: Reservation) {
        release(reservation)
    }

    public func loginSucceeded(_ reservation: Reservation, ip rawIP: String, now: Date) {
        let ip = Self.clientKey(rawIP)
        release(reservation)
        accounts.withLock { accounts in
            guard var entry = accounts[reservation.account] else { return }
            entry.knownAddresses.removeAll { $0 == ip }
            entry.knownAddresses.append(ip)
            if entry.knownAddresses.count > Self.maxKnownAddresses { entry.knownAddresses.removeFirst() }
            entry.touched = now
            accounts[reservation.account] = entry
        }
    }

    private func release(_ reservation: Reservation) {
        accounts.withLock { accounts in
            guard var entry = accounts[reservation.account], let i = entry.failures.lastIndex(of: reservation.at) else { return }
            entry.failures.remove(at: i)
            accounts[reservation.account] = entry
        }
    }

    /// Accounts are keyed by a hash of what was typed: fixed size whatever the input.
    static func accountKey(_ account: String) -> String { Secrets.hash(account) }

    /// IPv6 clients are counted per /64, the block one subscriber or server usually holds:
    /// otherwise every address of it would be a fresh client.
    static func clientKey(_ ip: String) -> String {
        guard let bytes = IPRange.parse(ip) else { return String(ip.prefix(64)) }
        guard bytes.count == 16 else { return ip }
        return bytes[0..<8].map { String($0, radix: 16) }.joined(separator: ".") + "/64"
    }

    /// A password-reset mail for the address (whether or not it has an account).
    public func spendResetMail(account rawAccount: String, now: Date) throws(Refusal) {
        try spendHourly("reset:" + rawAccount, limit: settings.resetMailsPerHour, now: now)
    }

    /// One sign-in code request for the address (whether or not it has an account).
    public func spendCodeMail(account rawAccount: String, now: Date) throws(Refusal) {
        try spendHourly("code:" + rawAccount, limit: settings.codeMailsPerHour, now: now)
    }

    /// An invite mail from `org` to `recipient` (created or resent): both have an hourly budget,
    /// so neither an org nor a crowd of orgs can flood one inbox.
    public func spendInviteMail(orgID: UUID, recipient: String, now: Date) throws(Refusal) {
        try spendHourly("invite-org:" + orgID.uuidString, limit: settings.inviteMailsPerOrgPerHour, now: now)
        do {
            try spendHourly("invite-to:" + recipient, limit: settings.inviteMailsPerRecipientPerHour, now: now)
        } catch {
            release("invite-org:" + orgID.uuidString, at: now)
            throw error
        }
    }

    /// Before `current_password` is checked: refuses once the session or the account has given
    /// too many wrong answers this hour, else reserves one (parallel guesses cannot all pass).
    /// Login is not affected: a stolen session cannot lock the owner out of signing in.
    public func checkPasswordGuess(session: UUID, account: UUID, now: Date) throws(Refusal) -> [String] {
        let keys = ["guess-session:" + session.uuidString, "guess-account:" + account.uuidString]
        try spendHourly(keys[0], limit: settings.passwordGuessesPerSessionPerHour, now: now)
        do {
            try spendHourly(keys[1], limit: settings.passwordGuessesPerAccountPerHour, now: now)
        } catch {
            release(keys[0], at: now)
            throw error
        }
        return keys
    }

    /// The current password was right (or never checked): the reserved guesses are handed back.
    public func passwordGuessEnded(_ keys: [String], at: Date) {
        for key in keys { release(key, at: at) }
    }

    /// At most `limit` spends of `rawKey` in any hour.
    func spendHourly(_ rawKey: String, limit: Int, now: Date) throws(Refusal) {
        let key = Self.accountKey(rawKey)
        let wait: Double? = resets.withLock { resets in
            var sent = (resets[key] ?? []).filter { now.timeIntervalSince($0) < Self.window }
            defer {
                if resets.count >= Self.maxEntries, resets[key] == nil {
                    Self.bound(&resets, stale: { $0.allSatisfy { now.timeIntervalSince($0) >= Self.window } }, newest: { $0.last ?? .distantPast })
                }
                resets[key] = sent
            }
            guard sent.count < limit else { return Self.window - now.timeIntervalSince(sent[0]) }
            sent.append(now)
            return nil
        }
        if let wait { throw refuse(wait) }
    }

    private func release(_ rawKey: String, at: Date) {
        let key = Self.accountKey(rawKey)
        resets.withLock { resets in
            guard var sent = resets[key], let i = sent.lastIndex(of: at) else { return }
            sent.remove(at: i)
            resets[key] = sent
        }
    }

    private func refuse(_ wait: Double) -> Refusal {
        throttled.add(1, ordering: .relaxed)
        return Refusal(retryAfter: max(1, Int(wait.rounded(.up))))
    }

    /// Keeps a full map bounded: drops the stale entries, and if that frees too little, keeps
    /// the newest half.
    private static func bound<Value>(_ map: inout [String: Value], stale: (Value) -> Bool, newest: (Value) -> Date) {
        map = map.filter { !stale($0.value) }
        if map.count >= maxEntries / 2 {
            let keep = map.sorted { newest($0.value) > newest($1.value) }.prefix(maxEntries / 2)
            map = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }
}
