import Authority
import Foundation
import Identity
import Keys
import OpenID
import Policy
import Tenancy

/// What a restore checks before it writes anything: the rules the schema cannot state, each
/// taken from the domain module that owns it (addresses, org fields, binding resources, scopes).
extension SQLBackup {
    /// The document's records as domain values, after the checks the schema cannot make.
    struct Records {
        var users: [(UUID, BackupDocument.User)] = []
        var orgs: [Org] = []
        var memberships: [Membership] = []
        var bindings: [Policy.Binding] = []
        var serviceAccounts: [Keys.ServiceAccount] = []
        var apiKeys: [(Identity.APIKey, String)] = []
        var keysBeforeProof: [UUID: Bool] = [:]
        var auditEvents: [AuditEvent] = []
        var invites: [BackupDocument.Invite] = []
        var platformInvites: [BackupDocument.PlatformInvite] = []
        var clients: [(OpenID.OAuthClient, secretHash: String?)] = []
        var consents: [(userID: UUID, clientID: UUID, scopes: [String], grantedAt: Date)] = []
        var groups = GroupRecords()
        var identities = IdentityRecords()
    }

    /// Checks what the schema cannot: the version, the sections this version cannot hold, ids,
    /// and fields the API would have refused.
    static func validate(_ d: BackupDocument) throws -> Records {
        guard d.version == BackupDocument.currentVersion else {
            throw BackupError.invalid("backup version \(d.version) is not supported (this server reads version \(BackupDocument.currentVersion))")
        }
        let states = ["pending", "accepted", "declined", "revoked"]
        /// The rule the API stores addresses by (a restored address reaches SMTP envelopes and
        /// account lookups): one it would refuse is refused; one in another form (a backup from
        /// before NFC, say) is restored in the stored form, as the start-up migration does.
        func address(_ email: String, of record: String) throws -> String {
            guard let canonical = Email.canonical(email) else {
                throw BackupError.invalid("\(record) has an e-mail address that is not valid")
            }
            return canonical
        }
        var records = Records()
        var platformIDs = Set<UUID>()
        for var p in d.platformInvites ?? [] {
            let pid = try id(p.id, "platform invite")
            p.email = try address(p.email, of: "platform invite \(p.id)")
            guard ["pending", "accepted", "revoked"].contains(p.state), p.tokenHash.utf8.count == 64 else {
                throw BackupError.invalid("platform invite \(p.id) has a bad state or token hash")
            }
            if let inviter = p.inviterId { _ = try id(inviter, "user") }
            platformIDs.insert(pid)
            records.platformInvites.append(p)
        }
        func id(_ text: String, _ what: String) throws -> UUID {
            guard let id = UUIDText.parse(text) else { throw BackupError.invalid("\(what) id \(text) is not a UUID") }
            return id
        }
        // Canonical addresses are NFC, so the dictionary's canonical-equivalence compare is a byte compare.
        var owners: [String: String] = [:]
        for var u in d.users {
            u.email = try address(u.email, of: "user \(u.id)")
            if let other = owners.updateValue(u.id, forKey: u.email) {
                throw BackupError.invalid("users \(other) and \(u.id) have one e-mail address, \(u.email)")
            }
            // Empty: an account made through an upstream provider, without a password (SPEC §15).
            guard u.passwordHash.isEmpty || u.passwordHash.hasPrefix("$argon2id$") else {
                throw BackupError.invalid("user \(u.id) has a password hash that is not argon2id")
            }
            records.users.append((try id(u.id, "user"), u))
        }
        for o in d.orgs {
            records.orgs.append(Org(
                id: try id(o.id, "org"), name: try OrgFields.name(o.name), description: try OrgFields.description(o.description),
                metadata: try OrgFields.metadata(.object(o.metadata)), createdAt: o.createdAt, updatedAt: o.updatedAt,
                maxKeyTTL: try OrgFields.maxKeyTTL(o.maxKeyTtl)))
        }
        let userIDs = Set(records.users.map(\.0))
        let orgIDs = Set(records.orgs.map(\.id))
        guard d.users.contains(where: \.isRoot) else {
            throw BackupError.invalid("the backup has no root administrator; the restored instance could not be administered")
        }
        for var i in d.invites {
            _ = try id(i.id, "invite")
            i.email = try address(i.email, of: "invite \(i.id)")
            guard orgIDs.contains(try id(i.orgId, "org")) else { throw BackupError.invalid("invite \(i.id) refers to an org that is not in the backup") }
            guard states.contains(i.state), i.tokenHash.utf8.count == 64 else { throw BackupError.invalid("invite \(i.id) has a bad state or token hash") }
            if let p = i.platformInviteId, !platformIDs.contains(try id(p, "platform invite")) {
                throw BackupError.invalid("invite \(i.id) refers to a platform invite that is not in the backup")
            }
            if let inviter = i.inviterId { _ = try id(inviter, "user") }
            records.invites.append(i)
        }
        var owned = Set<UUID>()
        var pairs = Set<String>()
        for m in d.memberships {
            let membership = Membership(orgID: try id(m.orgId, "org"), userID: try id(m.userId, "user"), role: m.role,
                                        expiresAt: m.expiresAt, createdAt: m.createdAt, updatedAt: m.updatedAt,
                                        auditEventID: try m.auditEventId.map { try id($0, "audit event") })
            guard orgIDs.contains(membership.orgID), userIDs.contains(membership.userID) else {
                throw BackupError.invalid("a membership refers to an org or user that is not in the backup")
            }
            guard pairs.insert("\(membership.orgID)/\(membership.userID)").inserted else {
                throw BackupError.invalid("user \(m.userId) appears twice among the members of org \(m.orgId)")
            }
            if m.role == .owner, m.expiresAt == nil { owned.insert(membership.orgID) }
            records.memberships.append(membership)
        }
        if let orphan = orgIDs.subtracting(owned).first {
            throw BackupError.invalid("org \(orphan.lowercasedString) has no permanent owner")
        }
        var accountOrgs: [UUID: UUID] = [:]
        for a in d.serviceAccounts {
            let account = Keys.ServiceAccount(id: try id(a.id, "service account"), orgID: try id(a.orgId, "org"), name: a.name, role: a.role, createdAt: a.createdAt)
            guard orgIDs.contains(account.orgID) else { throw BackupError.invalid("service account \(a.id) refers to an org that is not in the backup") }
            guard accountOrgs.updateValue(account.orgID, forKey: account.id) == nil else { throw BackupError.invalid("service account \(a.id) appears twice") }
            records.serviceAccounts.append(account)
        }
        var prefixes = Set<String>()
        for k in d.apiKeys {
            guard k.secretHash.utf8.count == 64, k.secretHash.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
                throw BackupError.invalid("key \(k.id) has no SHA-256 secret hash")
            }
            guard APIKeyFormat.parse("pcl_\(k.prefix)_" + String(repeating: "a", count: 43)) != nil, prefixes.insert(k.prefix).inserted else {
                throw BackupError.invalid("key \(k.id) has a malformed or repeated prefix")
            }
            guard (try? KeyScopes.parse(k.scopes)) != nil else { throw BackupError.invalid("key \(k.id) has an unknown scope") }
            let owner: KeyOwner
            switch (k.userId, k.serviceAccountId) {
            case (let u?, nil):
                let user = try id(u, "user")
                guard userIDs.contains(user) else { throw BackupError.invalid("key \(k.id) belongs to a user that is not in the backup") }
                owner = .user(user)
            case (nil, let a?):
                let account = try id(a, "service account")
                guard let org = accountOrgs[account] else { throw BackupError.invalid("key \(k.id) belongs to a service account that is not in the backup") }
                owner = .serviceAccount(id: account, orgID: org)
            default:
                throw BackupError.invalid("key \(k.id) must belong to exactly one user or service account")
            }
            if let beforeProof = k.beforeProof { records.keysBeforeProof[try id(k.id, "key")] = beforeProof }
            records.apiKeys.append((Identity.APIKey(
                id: try id(k.id, "key"), prefix: k.prefix, name: k.name, owner: owner, scopes: k.scopes, createdAt: k.createdAt,
                expiresAt: k.expiresAt, lastUsedAt: k.lastUsedAt, revokedAt: k.revokedAt), k.secretHash))
        }
        records.identities = try validateIdentities(d, userIDs: userIDs)
        records.groups = try validateGroups(
            d, orgIDs: orgIDs, memberships: Set(records.memberships.map { "\($0.orgID)/\($0.userID)" }), accountOrgs: accountOrgs, userIDs: userIDs)
        var boundPairs = Set<String>()
        for b in d.bindings {
            let org = try id(b.orgId, "org"), subject = try id(b.subjectId, b.subjectType)
            let principal: Principal
            switch b.subjectType {
            case "user":
                guard userIDs.contains(subject) else { throw BackupError.invalid("binding \(b.id) refers to a user that is not in the backup") }
                principal = .user(subject)
            case "service_account":
                guard accountOrgs[subject] == org else { throw BackupError.invalid("binding \(b.id) refers to a service account not of its org") }
                principal = .serviceAccount(subject)
            case "group":
                guard records.groups.groupOrgs[subject] == org else { throw BackupError.invalid("binding \(b.id) refers to a group not of its org") }
                principal = .group(subject)
            default:
                throw BackupError.invalid("binding \(b.id): subject_type must be user, service_account or group")
            }
            guard orgIDs.contains(org) else {
                throw BackupError.invalid("binding \(b.id) refers to an org that is not in the backup")
            }
            let resource: ObjectRef
            do { resource = try Policy.Binding.resource(b.resource, in: org) } catch {
                guard case .invalid(let m) = error else { throw error }
                throw BackupError.invalid("binding \(b.id): \(m)")
            }
            guard boundPairs.insert("\(org)/\(b.subjectType):\(subject)/\(resource.path)").inserted else {
                throw BackupError.invalid("binding \(b.id) repeats another binding's subject and resource")
            }
            records.bindings.append(Policy.Binding(
                id: try id(b.id, "binding"), orgID: org, principal: principal, resource: resource, role: b.role, expiresAt: b.expiresAt,
                createdAt: b.createdAt, updatedAt: b.updatedAt, auditEventID: try b.auditEventId.map { try id($0, "audit event") }))
        }
        for e in d.auditEvents {
            records.auditEvents.append(AuditEvent(
                id: try id(e.id, "audit event"), at: e.at, actorType: e.actorType, actorID: try e.actorId.map { try id($0, "actor") },
                action: e.action, orgID: try e.orgId.map { try id($0, "org") }, target: e.target, details: e.details))
        }
        records.clients = try validateClients(
            d.oauthClients ?? [], orgIDs: orgIDs, accountOrgs: Dictionary(records.serviceAccounts.map { ($0.id, $0.orgID) }, uniquingKeysWith: { a, _ in a }))
        records.consents = try validateConsents(d.oauthConsents ?? [], userIDs: Set(records.users.map(\.0)), clients: records.clients.map(\.0))
        return records
    }

    /// Clients under the rules of registration (`ClientRules`), each in an org of the backup or
    /// the platform's; a confidential client has a secret hash, a public one none.
    static func validateClients(
        _ list: [BackupDocument.OAuthClient], orgIDs: Set<UUID>, accountOrgs: [UUID: UUID]
    ) throws -> [(OpenID.OAuthClient, secretHash: String?)] {
        var seen = Set<UUID>()
        return try list.map { c in
            func invalid(_ why: String) -> BackupError { BackupError.invalid("client \(c.id.prefix(40)) \(why)") }
            guard let id = UUIDText.parse(c.id), seen.insert(id).inserted else { throw invalid("has a malformed or repeated id") }
            let org = try c.orgId.map { text -> UUID in
                guard let org = UUIDText.parse(text), orgIDs.contains(org) else { throw invalid("refers to an org that is not in the backup") }
                return org
            }
            guard let kind = OpenID.OAuthClient.Kind(rawValue: c.kind) else { throw invalid("has an unknown type") }
            let hashed = c.secretHash.map { $0.utf8.count == 64 && $0.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) } }
            guard (kind == .confidential) == (hashed == true), kind == .confidential || c.secretHash == nil else {
                throw invalid("must have a SHA-256 secret hash if and only if it is confidential")
            }
            do {
                var client = OpenID.OAuthClient(
                    id: id, orgID: org, name: try OrgFields.name(c.name), kind: kind, redirectURIs: try ClientRules.redirectURIs(c.redirectUris),
                    scopes: try ClientRules.scopes(c.scopes), firstParty: c.firstParty, createdAt: c.createdAt, updatedAt: c.updatedAt)
                // Backups from before RS256 hold clients that got ES256 ID tokens.
                let algorithm = try c.idTokenSignedResponseAlg.map { text -> SigningAlgorithm in
                    guard let algorithm = SigningAlgorithm(rawValue: text) else { throw invalid("has an unknown ID-token algorithm") }
                    return algorithm
                } ?? .es256
                let account = try c.serviceAccountId.map { text -> UUID in
                    guard let account = UUIDText.parse(text), accountOrgs[account] == org else {
                        throw invalid("names a service account that is not its org's in the backup")
                    }
                    return account
                }
                try ClientService.apply(
                    ClientFields(
                        idTokenAlgorithm: algorithm, accessTokenLifetime: .some(c.accessTokenLifetime), refreshTokenLifetime: .some(c.refreshTokenLifetime),
                        claimTemplate: .some(try c.claimTemplate.map(ClaimTemplate.parse)), serviceAccountID: .some(account)),
                    to: &client)
                return (client, c.secretHash)
            } catch let error as BackupError {
                throw error
            } catch let error as ClientError {
                guard case .invalid(let why) = error else { throw invalid("is not valid") }
                throw invalid("is not valid: \(why)")
            } catch {
                throw invalid("has a name that is not valid")
            }
        }
    }

    /// Consents of people and clients in the backup, for scopes the provider knows.
    static func validateConsents(
        _ list: [BackupDocument.OAuthConsent], userIDs: Set<UUID>, clients: [OpenID.OAuthClient]
    ) throws -> [(userID: UUID, clientID: UUID, scopes: [String], grantedAt: Date)] {
        let clientIDs = Set(clients.map(\.id))
        var seen = Set<String>()
        return try list.map { c in
            guard let user = UUIDText.parse(c.userId), userIDs.contains(user), let client = UUIDText.parse(c.clientId), clientIDs.contains(client) else {
                throw BackupError.invalid("a consent refers to a user or client that is not in the backup")
            }
            guard seen.insert("\(user) \(client)").inserted else { throw BackupError.invalid("a consent is repeated") }
            guard c.scopes.allSatisfy(ClientRules.scopes.contains) else { throw BackupError.invalid("a consent names an unknown scope") }
            return (user, client, c.scopes, c.grantedAt)
        }
    }
}
