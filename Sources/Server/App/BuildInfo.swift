/// What this binary is: the release it belongs to and the commit it was built from
/// (`buildCommit` is written by the BuildInfo plugin before each build).
public enum PortcullisBuild {
    public static let version = "0.14.0"
    public static let commit = buildCommit
    /// `portcullis --version` and the start-up line.
    public static var description: String { "portcullis \(version) (commit \(commit))" }
}
