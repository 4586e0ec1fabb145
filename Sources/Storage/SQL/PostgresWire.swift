import NIOCore
import PostgresNIO

/// A timestamp bound as its microseconds, rounded as SQLite stores them (`SQLTime`):
/// PostgresNIO's own `Date` encoding truncates, so a restored time could move by 1 µs.
struct PostgresTimestamp: PostgresNonThrowingEncodable {
    static var psqlType: PostgresDataType { .timestamptz }
    static var psqlFormat: PostgresFormat { .binary }
    let micros: Int64

    func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeInteger(micros - SQLTime.postgresEpochMicros)
    }
}

/// PostgreSQL's binary array format, one dimension: a header, then each element's length and
/// bytes (-1 for NULL).
enum PostgresArray {
    /// The element type of the array types the stores read (others decode as before).
    static func element(of type: PostgresDataType) -> PostgresDataType? {
        switch type {
        case .uuidArray: return .uuid
        case .textArray: return .text
        case .varcharArray: return .varchar
        case .timestamptzArray: return .timestamptz
        case .int8Array: return .int8
        case .int4Array: return .int4
        default: return nil
        }
    }

    static func elements(_ bytes: inout ByteBuffer, of element: PostgresDataType, column: String) throws -> [ByteBuffer?] {
        guard let dimensions = bytes.readInteger(as: Int32.self), bytes.readInteger(as: Int32.self) != nil,
              let oid = bytes.readInteger(as: UInt32.self), oid == element.rawValue else { throw StorageError.decoding(column: column) }
        if dimensions == 0 { return [] }
        guard dimensions == 1, let count = bytes.readInteger(as: Int32.self), count >= 0, bytes.readInteger(as: Int32.self) != nil else {
            throw StorageError.decoding(column: column)
        }
        var items: [ByteBuffer?] = []
        items.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let length = bytes.readInteger(as: Int32.self) else { throw StorageError.decoding(column: column) }
            if length < 0 { items.append(nil); continue }
            guard let item = bytes.readSlice(length: Int(length)) else { throw StorageError.decoding(column: column) }
            items.append(item)
        }
        return items
    }
}
