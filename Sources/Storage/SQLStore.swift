/// What every SQL store holds: the database, and the observer that hears each committed
/// transaction's changes (the change applier, or the relay that reaches it).
public struct SQLStoreContext: Sendable {
    public let db: any SQLDatabase
    let observer: ChangeObserver?
}

/// A store over one `SQLDatabase`; every store is made the same way.
public protocol SQLStore: Sendable {
    var context: SQLStoreContext { get }
    init(context: SQLStoreContext)
}

extension SQLStore {
    public init(database: any SQLDatabase, observer: ChangeObserver? = nil) {
        self.init(context: SQLStoreContext(db: database, observer: observer))
    }

    public var db: any SQLDatabase { context.db }
    var observer: ChangeObserver? { context.observer }

    /// One transaction whose change-log entries reach `observer` after the commit.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLExecutor) async throws -> T) async throws -> T {
        try await RecordingExecutor.transaction(db, observer: observer, body)
    }
}
