/// Failures of identity operations, mapped to problem responses at the HTTP edge.
public enum IdentityError: Error, Sendable, Equatable {
    case invalidEmail
    case invalidName(String)
    case weakPassword(String)
    case emailTaken
    case signupDisabled
    /// Unknown email or wrong password: deliberately one case, so callers cannot tell them apart.
    case invalidCredentials
    case invalidRefreshToken
    case unauthenticated(String)
    case forbidden(String)
    case notFound
    /// A mailed token that is unknown, spent, expired or meant for something else.
    case invalidToken
    /// An e-mail sign-in code that is wrong, used, expired, out of tries, or asked for by another
    /// flow or for another address: deliberately one case.
    case invalidCode
}
