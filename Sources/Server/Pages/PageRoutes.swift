import Foundation
import Hummingbird
import Policy

/// The hosted pages and the console (HTML, SPEC §13) and their assets. Not API routes: they are
/// not in the route table that docs/openapi.yaml is checked against. Every form is a POST to a
/// path of its page; reading never changes anything.
func registerPages(_ router: Router<AppRequestContext>, services: AppServices, authenticator: Authenticator) {
    let config = services.config
    let kit = PageKit(
        renderer: services.pages, guardian: FormGuard(publicURL: config.publicURL), cookies: services.sessionCookie,
        auth: services.auth, freshness: services.freshness, sessionLifetime: Int(config.refreshTokenTTL.seconds))
    let identity = IdentityRoutes(auth: services.auth, invites: services.invites, limits: services.limits)
    let accountMail = InviteRoutes(auth: services.auth, invites: services.invites, limits: services.limits)
    let authorize = AuthorizePages(kit: kit, openID: services.openID, auth: services.auth, issuer: config.issuer)
    let signIn = SignInPages(kit: kit, identity: identity, accountMail: accountMail, invites: services.invites, authorize: authorize)
    let profile = ProfilePages(kit: kit, identity: identity, accountMail: accountMail, invites: services.invites)
    let mine = OrgsAndKeysPages(kit: kit, tenancy: services.tenancy, keys: services.keys, verifier: services.keyVerifier)
    let frame = OrgFrame(kit: kit, tenancy: services.tenancy, keys: services.keys)
    let people = OrgPeoplePages(frame: frame, tenancy: services.tenancy, invites: services.invites)
    let access = OrgBindingPages(frame: frame, bindings: services.bindings)
    let accounts = OrgServiceAccountPages(frame: frame, keys: services.keys, verifier: services.keyVerifier)
    let records = OrgRecordsPages(frame: frame, tenancy: services.tenancy, authorizer: Authorizer(services, authenticator: authenticator))
    let admin = AdminPages(
        kit: kit, invites: services.invites, auth: services.auth, tokens: services.tokens, signingKeys: services.store, backup: services.backup)

    router.get("/assets/{file}", use: services.pages.asset)
    router.get("/", use: { request, _ in kit.redirect(try await kit.signedIn(request) == nil ? "/login" : "/account") })

    // Signed out, and the links mails carry
    router.get("/login", use: signIn.loginPage)
    router.post("/login", use: signIn.login)
    router.post("/logout", use: signIn.logout)
    router.get("/signup", use: signIn.signupPage)
    router.post("/signup", use: signIn.signup)
    router.get("/forgot-password", use: signIn.forgotPage)
    router.post("/forgot-password", use: signIn.forgot)
    router.get("/reset-password", use: signIn.resetPage)
    router.post("/reset-password", use: signIn.reset)
    router.get("/verify-email", use: signIn.verifyPage)
    router.post("/verify-email", use: signIn.verify)
    router.get("/invites/accept", use: signIn.invitePage)
    router.post("/invites/accept", use: signIn.acceptInvite)

    // The account
    router.get("/account", use: kit.page(profile.profile))
    router.post("/account/profile", use: profile.updateProfile)
    router.post("/account/password", use: profile.changePassword)
    router.post("/account/verification", use: profile.requestVerification)
    router.get("/account/sessions", use: kit.page(profile.sessions))
    router.post("/account/sessions/revoke", use: profile.revokeSession)
    router.get("/account/invites", use: kit.page(profile.invitations))
    router.post("/account/invites/respond", use: profile.respondToInvite)
    router.get("/account/orgs", use: kit.page(mine.orgs))
    router.post("/account/orgs", use: mine.createOrg)
    router.get("/account/keys", use: kit.page(mine.apiKeys))
    router.post("/account/keys", use: mine.createKey)
    router.post("/account/keys/revoke", use: mine.revokeKey)
    let apps = AppsPages(kit: kit, openID: services.openID, auth: services.auth)
    router.get("/account/apps", use: kit.page(apps.apps))
    router.post("/account/apps/revoke", use: apps.revoke)

    // An org's console
    router.get("/orgs/{org_id}", use: frame.page(people.members))
    router.get("/orgs/{org_id}/members", use: frame.page(people.members))
    router.post("/orgs/{org_id}/members", use: people.addMember)
    router.post("/orgs/{org_id}/members/role", use: people.changeRole)
    router.post("/orgs/{org_id}/members/remove", use: people.removeMember)
    router.get("/orgs/{org_id}/invites", use: frame.page(people.invitesList))
    router.post("/orgs/{org_id}/invites", use: people.createInvite)
    router.post("/orgs/{org_id}/invites/resend", use: people.resendInvite)
    router.post("/orgs/{org_id}/invites/revoke", use: people.revokeInvite)
    router.get("/orgs/{org_id}/access", use: frame.page(access.access))
    router.post("/orgs/{org_id}/access", use: access.setBinding)
    router.post("/orgs/{org_id}/access/remove", use: access.removeBinding)
    router.get("/orgs/{org_id}/service-accounts", use: frame.page(accounts.accounts))
    router.post("/orgs/{org_id}/service-accounts", use: accounts.createAccount)
    router.post("/orgs/{org_id}/service-accounts/delete", use: accounts.deleteAccount)
    router.get("/orgs/{org_id}/service-accounts/{account_id}", use: frame.page(accounts.account))
    router.post("/orgs/{org_id}/service-accounts/{account_id}", use: accounts.createKey)
    router.post("/orgs/{org_id}/service-accounts/{account_id}/revoke", use: accounts.revokeKey)
    router.get("/orgs/{org_id}/audit", use: frame.page(records.audit))
    router.get("/orgs/{org_id}/settings", use: frame.page(records.settings))
    router.post("/orgs/{org_id}/settings", use: records.updateSettings)
    router.post("/orgs/{org_id}/delete", use: records.deleteOrg)
    router.get("/orgs/{org_id}/explain", use: frame.page(records.explainPage))

    // "Log in with Portcullis": the OpenID provider (SPEC §14)
    let provider = ProviderRoutes(openID: services.openID, auth: services.auth, tokens: services.tokens, tenancy: services.tenancy, issuer: config.issuer)
    router.get("/oauth/authorize", use: authorize.authorize)
    router.post("/oauth/authorize", use: authorize.decide)
    router.post("/oauth/token", use: provider.token)
    router.post("/oauth/revoke", use: provider.revoke)
    router.post("/oauth/introspect", use: provider.introspect)
    let logout = LogoutPages(kit: kit, openID: services.openID, auth: services.auth, tokens: services.tokens)
    router.get("/oauth/logout", use: logout.ask)
    router.post("/oauth/logout", use: logout.signOut)
    router.get("/oauth/userinfo", use: provider.userinfo)
    router.post("/oauth/userinfo", use: provider.userinfo)

    // The platform admin (root)
    router.get("/admin", use: admin.page(admin.platformInvites))
    router.post("/admin/invites", use: admin.createInvite)
    router.post("/admin/invites/revoke", use: admin.revokeInvite)
    router.get("/admin/users", use: admin.page(admin.users))
    router.get("/admin/signing-keys", use: admin.page(admin.keys))
    router.post("/admin/signing-keys/rotate", use: admin.rotate)
    router.get("/admin/backup", use: admin.page(admin.backupPage))
    router.post("/admin/backup", use: admin.download)
}
