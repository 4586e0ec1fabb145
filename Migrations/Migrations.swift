import Foundation

/// Locates the versioned SQL files shipped with the binary.
public enum MigrationFiles {
    /// The folder holding `NNNN_name.sql` files for a dialect (`sqlite` or `postgres`).
    public static func directory(for dialect: String) -> URL? {
        Bundle.module.url(forResource: dialect, withExtension: nil)
    }
}
