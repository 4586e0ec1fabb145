/// Driver-independent storage failures. Drivers' own errors never leave the Storage module.
public enum StorageError: Error, Sendable, Equatable {
    /// A unique constraint rejected the write; carries the constraint or column text when known.
    case uniqueViolation(String)
    /// A foreign key pointed at a row that does not exist (or is being deleted).
    case foreignKeyViolation(String)
    /// A row could not be decoded into the expected shape.
    case decoding(column: String)
    /// The database could not be reached or answered with a transient failure.
    case unavailable(String)
    /// Serialization failure or deadlock that persisted after retries.
    case conflict(String)
    /// Anything else; the message is for server logs only.
    case other(String)
    /// A value the database cannot store as given (e.g. text with NUL); a client error.
    case invalidText(String)
    /// The database holds migrations this binary does not know, or they differ.
    case inconsistentMigrations(String)
    /// A migration cannot proceed on the data it found (nothing was changed); the message,
    /// one line, says what to fix by hand.
    case migrationRefused(String)
}
