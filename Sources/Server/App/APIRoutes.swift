import Foundation
import Hummingbird
import Policy

/// Every route of the API, registered once; tests read the table to check docs/openapi.yaml.
@discardableResult
func registerRoutes(_ routes: RouteTable, services: AppServices, authenticator: Authenticator) -> RouteTable {
    let platform = PlatformRoutes(
        tokens: services.tokens, config: services.config,
        ping: { [database = services.database] in try await database.ping() },
        scrape: { await services.metrics.scrape(services: services) })
    let identity = IdentityRoutes(auth: services.auth, invites: services.invites, limits: services.limits)
    let tenancy = TenancyRoutes(tenancy: services.tenancy, invites: services.invites)
    let backup = BackupRoutes(backup: services.backup)
    let bindings = BindingRoutes(bindings: services.bindings)
    let groups = GroupRoutes(groups: services.groups)
    let overrides = OverrideRoutes(overrides: services.overrides)
    let keys = KeyRoutes(keys: services.keys, verifier: services.keyVerifier)
    let invites = InviteRoutes(auth: services.auth, invites: services.invites, limits: services.limits)
    let authorizer = Authorizer(services, authenticator: authenticator)
    let decisions = DecisionRoutes(authorizer: authorizer, tenancy: services.tenancy)
    let authzen = AuthZENRoutes(authorizer: authorizer, publicURL: services.config.publicURL)
    let identify = IdentifyRoutes(authenticator: authenticator, policy: services.policy)
    let clients = ClientRoutes(clients: services.clients)
    let watch = WatchRoutes(changeFeed: services.changeFeed, hub: services.watch)
    let webhooks = WebhookRoutes(webhooks: services.webhooks)
    let federation = FederationRoutes(
        federation: services.federation, auth: services.auth, limits: services.limits, secureCookies: services.config.publicURL.hasPrefix("https://"))

    // Platform: health, readiness, metrics, the API description, discovery, key rotation
    routes.on(.get, "/health", use: platform.health)
    routes.on(.get, "/ready", use: platform.ready)
    routes.on(.get, "/metrics", use: platform.metrics)
    routes.on(.get, "/openapi.yaml", use: platform.openAPI)
    routes.on(.get, "/.well-known/jwks.json", use: platform.jwks)
    routes.on(.get, "/.well-known/openid-configuration", use: platform.discovery)
    routes.on(.post, "/v1/admin/signing-keys/rotate", use: platform.rotate)

    // Accounts: signup, login, tokens, password reset, verification, the caller, sessions
    routes.on(.post, "/v1/users", use: identity.signup)
    routes.on(.post, "/v1/auth/login", use: identity.login)
    routes.on(.post, "/v1/auth/refresh", use: identity.refresh)
    routes.on(.post, "/v1/auth/logout", use: identity.logout)
    routes.on(.get, "/v1/me", use: identity.me)
    routes.on(.patch, "/v1/me", use: identity.updateMe)
    routes.on(.post, "/v1/me/password", use: identity.changePassword)
    routes.on(.get, "/v1/me/sessions", use: identity.sessions)
    routes.on(.delete, "/v1/me/sessions/{session_id}", use: identity.deleteSession)

    // Orgs and members
    routes.on(.post, "/v1/orgs", use: tenancy.createOrg)
    routes.on(.get, "/v1/orgs", use: tenancy.listOrgs)
    routes.on(.get, "/v1/orgs/{org_id}", use: tenancy.getOrg)
    routes.on(.patch, "/v1/orgs/{org_id}", use: tenancy.updateOrg)
    routes.on(.delete, "/v1/orgs/{org_id}", use: tenancy.deleteOrg)
    routes.on(.get, "/v1/orgs/{org_id}/members", use: tenancy.listMembers)
    routes.on(.post, "/v1/orgs/{org_id}/members", use: tenancy.addMember)
    routes.on(.get, "/v1/orgs/{org_id}/members/{user_id}", use: tenancy.getMember)
    routes.on(.patch, "/v1/orgs/{org_id}/members/{user_id}", use: tenancy.updateMember)
    routes.on(.delete, "/v1/orgs/{org_id}/members/{user_id}", use: tenancy.removeMember)
    routes.on(.get, "/v1/orgs/{org_id}/audit", use: tenancy.orgAudit)
    routes.on(.get, "/v1/audit", use: tenancy.platformAudit)

    // Backup and restore
    routes.on(.get, "/v1/admin/backup", use: backup.export)
    routes.on(.post, "/v1/admin/restore", use: backup.restore)

    // Role bindings
    routes.on(.get, "/v1/orgs/{org_id}/bindings", use: bindings.list)
    routes.on(.put, "/v1/orgs/{org_id}/bindings", use: bindings.set)
    routes.on(.delete, "/v1/orgs/{org_id}/bindings/{binding_id}", use: bindings.remove)

    // Groups and overrides
    routes.on(.get, "/v1/orgs/{org_id}/groups", use: groups.list)
    routes.on(.post, "/v1/orgs/{org_id}/groups", use: groups.create)
    routes.on(.get, "/v1/orgs/{org_id}/groups/{group_id}", use: groups.get)
    routes.on(.patch, "/v1/orgs/{org_id}/groups/{group_id}", use: groups.update)
    routes.on(.delete, "/v1/orgs/{org_id}/groups/{group_id}", use: groups.delete)
    routes.on(.get, "/v1/orgs/{org_id}/groups/{group_id}/members", use: groups.members)
    routes.on(.put, "/v1/orgs/{org_id}/groups/{group_id}/members", use: groups.setMember)
    routes.on(.delete, "/v1/orgs/{org_id}/groups/{group_id}/members/{member_id}", use: groups.removeMember)
    routes.on(.get, "/v1/orgs/{org_id}/overrides", use: overrides.list)
    routes.on(.post, "/v1/orgs/{org_id}/overrides", use: overrides.create)
    routes.on(.delete, "/v1/orgs/{org_id}/overrides/{override_id}", use: overrides.remove)

    // API keys and service accounts
    routes.on(.post, "/v1/keys", use: keys.createKey)
    routes.on(.get, "/v1/keys", use: keys.listKeys)
    routes.on(.get, "/v1/keys/{key_id}", use: keys.getKey)
    routes.on(.delete, "/v1/keys/{key_id}", use: keys.revokeKey)
    routes.on(.get, "/v1/orgs/{org_id}/service-accounts", use: keys.listAccounts)
    routes.on(.post, "/v1/orgs/{org_id}/service-accounts", use: keys.createAccount)
    routes.on(.delete, "/v1/orgs/{org_id}/service-accounts/{account_id}", use: keys.deleteAccount)
    routes.on(.get, "/v1/orgs/{org_id}/service-accounts/{account_id}/keys", use: keys.listAccountKeys)
    routes.on(.post, "/v1/orgs/{org_id}/service-accounts/{account_id}/keys", use: keys.createAccountKey)
    routes.on(.delete, "/v1/orgs/{org_id}/service-accounts/{account_id}/keys/{key_id}", use: keys.revokeAccountKey)

    // Invites and platform invites
    routes.on(.post, "/v1/orgs/{org_id}/invites", use: invites.create)
    routes.on(.get, "/v1/orgs/{org_id}/invites", use: invites.list)
    routes.on(.get, "/v1/invites/{invite_id}", use: invites.get)
    routes.on(.delete, "/v1/invites/{invite_id}", use: invites.revoke)
    routes.on(.post, "/v1/invites/{invite_id}/resend", use: invites.resend)
    routes.on(.post, "/v1/invites/{invite_id}/accept", use: invites.accept)
    routes.on(.post, "/v1/invites/{invite_id}/decline", use: invites.decline)
    routes.on(.post, "/v1/invites/claim", use: invites.claim)
    routes.on(.get, "/v1/me/invites", use: invites.mine)
    routes.on(.post, "/v1/platform-invites", use: invites.createPlatform)
    routes.on(.get, "/v1/platform-invites", use: invites.listPlatform)
    routes.on(.get, "/v1/platform-invites/{platform_invite_id}", use: invites.getPlatform)
    routes.on(.delete, "/v1/platform-invites/{platform_invite_id}", use: invites.revokePlatform)
    routes.on(.post, "/v1/auth/password-reset", use: invites.requestReset)
    routes.on(.post, "/v1/auth/password-reset/confirm", use: invites.confirmReset)
    routes.on(.post, "/v1/auth/verify-email", use: invites.verifyEmail)
    routes.on(.post, "/v1/auth/verify-email/request", use: invites.requestVerification)
    routes.on(.post, "/v1/auth/email-code", use: federation.requestCode)
    routes.on(.post, "/v1/auth/email-code/verify", use: federation.verifyCode)

    routes.on(.get, "/v1/auth/providers", use: federation.loginProviders)
    routes.on(.get, "/v1/identity-providers", use: federation.list)
    routes.on(.post, "/v1/identity-providers", use: federation.create)
    routes.on(.get, "/v1/identity-providers/{provider_id}", use: federation.get)
    routes.on(.patch, "/v1/identity-providers/{provider_id}", use: federation.update)
    routes.on(.delete, "/v1/identity-providers/{provider_id}", use: federation.delete)
    routes.on(.get, "/v1/me/identities", use: federation.identities)
    routes.on(.delete, "/v1/me/identities/{identity_id}", use: federation.unlink)

    // OpenID clients
    routes.on(.post, "/v1/clients", use: clients.create)
    routes.on(.get, "/v1/clients", use: clients.list)
    routes.on(.get, "/v1/clients/{client_id}", use: clients.get)
    routes.on(.patch, "/v1/clients/{client_id}", use: clients.update)
    routes.on(.delete, "/v1/clients/{client_id}", use: clients.delete)
    routes.on(.post, "/v1/clients/{client_id}/secret", use: clients.rotateSecret)

    // Webhooks: an org's (its admins') and the platform's (the root's)
    for base in ["/v1/orgs/{org_id}/webhooks", "/v1/webhooks"] {
        routes.on(.post, base, use: webhooks.create)
        routes.on(.get, base, use: webhooks.list)
        routes.on(.get, "\(base)/{webhook_id}", use: webhooks.get)
        routes.on(.patch, "\(base)/{webhook_id}", use: webhooks.update)
        routes.on(.delete, "\(base)/{webhook_id}", use: webhooks.delete)
        routes.on(.post, "\(base)/{webhook_id}/secret", use: webhooks.rotateSecret)
        routes.on(.post, "\(base)/{webhook_id}/test", use: webhooks.test)
        routes.on(.get, "\(base)/{webhook_id}/deliveries", use: webhooks.deliveries)
        routes.on(.post, "\(base)/{webhook_id}/deliveries/{delivery_id}/redeliver", use: webhooks.redeliver)
    }

    // Decisions
    routes.on(.post, "/v1/authorize", use: decisions.authorize)
    routes.on(.post, "/v1/authorize/batch", use: decisions.batch)
    routes.on(.post, "/v1/authorize/explain", use: decisions.explain)
    routes.on(.post, "/v1/capabilities", use: decisions.capabilities)
    routes.on(.post, "/v1/lookup", use: decisions.lookup)

    // AuthZEN 1.0
    routes.on(.post, "/access/v1/evaluation", use: authzen.evaluation)
    routes.on(.post, "/access/v1/evaluations", use: authzen.evaluations)
    routes.on(.post, "/access/v1/search/subject", use: authzen.searchSubject)
    routes.on(.post, "/access/v1/search/resource", use: authzen.searchResource)
    routes.on(.post, "/access/v1/search/action", use: authzen.searchAction)
    routes.on(.get, "/.well-known/authzen-configuration", use: authzen.metadata)

    // Who a token is; the permission table
    routes.on(.post, "/v1/identify", use: identify.identify)
    routes.on(.get, "/v1/permissions", use: identify.permissions)

    // The change stream
    routes.on(.get, "/v1/watch", use: watch.watch)
    return routes
}

extension Authorizer {
    /// The node's one decision use case, for the API, AuthZEN and the console's explain page.
    init(_ services: AppServices, authenticator: Authenticator) {
        let metrics = services.metrics
        self.init(
            policy: services.policy, tokens: authenticator, revisions: services.freshness, holdings: services.policyStore,
            decided: { metrics.decision(allowed: $0.allowed) })
    }
}

extension RouteTable {
    /// A route table detached from any server, listing every route (for documentation checks).
    public static func all(services: AppServices) -> RouteTable {
        registerRoutes(RouteTable(router: Router(context: AppRequestContext.self)), services: services, authenticator: Authenticator(services))
    }
}
