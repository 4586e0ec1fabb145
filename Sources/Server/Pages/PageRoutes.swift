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
    let signIn = SignInPages(kit: kit, identity: identity, accountMail: accountMail, invites: services.invites)
    let account = AccountConsole(
        kit: kit, identity: identity, accountMail: accountMail, invites: services.invites, tenancy: services.tenancy,
        keys: services.keys, verifier: services.keyVerifier)
    let frame = OrgFrame(kit: kit, tenancy: services.tenancy)
    let people = OrgPeoplePages(frame: frame, tenancy: services.tenancy, invites: services.invites)
    let access = OrgAccessPages(frame: frame, tenancy: services.tenancy, bindings: services.bindings, keys: services.keys, verifier: services.keyVerifier)
    let records = OrgRecordsPages(frame: frame, tenancy: services.tenancy, authorizer: Authorizer(services, authenticator: authenticator), access: access)
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
    router.get("/account", use: account.profilePage)
    router.post("/account/profile", use: account.updateProfile)
    router.post("/account/password", use: account.changePassword)
    router.post("/account/verification", use: account.requestVerification)
    router.get("/account/sessions", use: account.sessionsPage)
    router.post("/account/sessions/revoke", use: account.revokeSession)
    router.get("/account/invites", use: account.invitesPage)
    router.post("/account/invites/respond", use: account.respondToInvite)
    router.get("/account/orgs", use: account.orgsPage)
    router.post("/account/orgs", use: account.createOrg)
    router.get("/account/keys", use: account.keysPage)
    router.post("/account/keys", use: account.createKey)
    router.post("/account/keys/revoke", use: account.revokeKey)

    // An org's console
    router.get("/orgs/{org_id}", use: people.membersPage)
    router.get("/orgs/{org_id}/members", use: people.membersPage)
    router.post("/orgs/{org_id}/members", use: people.addMember)
    router.post("/orgs/{org_id}/members/role", use: people.changeRole)
    router.post("/orgs/{org_id}/members/remove", use: people.removeMember)
    router.get("/orgs/{org_id}/invites", use: people.invitesPage)
    router.post("/orgs/{org_id}/invites", use: people.createInvite)
    router.post("/orgs/{org_id}/invites/resend", use: people.resendInvite)
    router.post("/orgs/{org_id}/invites/revoke", use: people.revokeInvite)
    router.get("/orgs/{org_id}/access", use: access.accessPage)
    router.post("/orgs/{org_id}/access", use: access.setBinding)
    router.post("/orgs/{org_id}/access/remove", use: access.removeBinding)
    router.get("/orgs/{org_id}/service-accounts", use: access.accountsPage)
    router.post("/orgs/{org_id}/service-accounts", use: access.createAccount)
    router.post("/orgs/{org_id}/service-accounts/delete", use: access.deleteAccount)
    router.get("/orgs/{org_id}/service-accounts/{account_id}", use: access.accountPage)
    router.post("/orgs/{org_id}/service-accounts/{account_id}/keys", use: access.createAccountKey)
    router.post("/orgs/{org_id}/service-accounts/{account_id}/keys/revoke", use: access.revokeAccountKey)
    router.get("/orgs/{org_id}/audit", use: records.auditPage)
    router.get("/orgs/{org_id}/settings", use: records.settingsPage)
    router.post("/orgs/{org_id}/settings", use: records.updateSettings)
    router.post("/orgs/{org_id}/delete", use: records.deleteOrg)
    router.get("/orgs/{org_id}/explain", use: records.explainPage)

    // The platform admin (root)
    router.get("/admin", use: admin.invitesPage)
    router.post("/admin/invites", use: admin.createInvite)
    router.post("/admin/invites/revoke", use: admin.revokeInvite)
    router.get("/admin/users", use: admin.usersPage)
    router.get("/admin/signing-keys", use: admin.keysPage)
    router.post("/admin/signing-keys/rotate", use: admin.rotate)
    router.get("/admin/backup", use: admin.backupPage)
    router.post("/admin/backup", use: admin.download)
}
