import Foundation

/// The 36-character text form of a UUID, read and written without Foundation: on Linux
/// `UUID(uuidString:)` parses with `sscanf` (about 750 ns, more than a whole decision) and
/// `uuidString` formats through C as well. Both sit on the decision path (object strings, subject
/// ids) and on the cold load (SQLite hands UUIDs back as text).
public enum UUIDText {
    /// The UUID `text` spells (`8-4-4-4-12` hex digits, either case), as `UUID(uuidString:)` reads it.
    @inlinable
    public static func parse(_ text: some StringProtocol) -> UUID? {
        guard text.utf8.count == 36 else { return nil }
        if let parsed = text.utf8.withContiguousStorageIfAvailable({ parse($0) }) { return parsed }
        var copy = String(text)
        return copy.withUTF8 { parse($0) }
    }

    /// The UUID in 36 bytes of UTF-8 text.
    @inlinable
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> UUID? {
        guard bytes.count == 36,
              bytes[8] == 0x2D, bytes[13] == 0x2D, bytes[18] == 0x2D, bytes[23] == 0x2D else { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        var bad: UInt8 = 0
        // The five runs of digits between the hyphens, each a loop with fixed bounds: no test per
        // byte for a hyphen's place or for which half a digit goes to.
        @inline(__always) func digits(_ range: Range<Int>, into word: inout UInt64) {
            for i in range {
                let v = hexValue(bytes[i])
                bad |= v
                word = word << 4 | UInt64(v & 0x0F)
            }
        }
        digits(0..<8, into: &high)
        digits(9..<13, into: &high)
        digits(14..<18, into: &high)
        digits(19..<23, into: &low)
        digits(24..<36, into: &low)
        // A non-digit maps to 0xFF, whose high bits survive the OR.
        guard bad & 0xF0 == 0 else { return nil }
        return UUID(high: high, low: low)
    }

    /// The UUID in 36 bytes of its lowercase text form, the form `lowercased` writes; nil for any
    /// other text, uppercase hex included, so that writing the UUID back gives the same bytes.
    @inlinable
    public static func parseLowercase(_ bytes: UnsafeBufferPointer<UInt8>) -> UUID? {
        guard let id = parse(bytes) else { return nil }
        for c in bytes where c >= 0x41 && c <= 0x46 { return nil }
        return id
    }

    @inlinable @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8 {
        let digit = c &- 48
        if digit < 10 { return digit }
        let letter = (c | 0x20) &- 97
        if letter < 6 { return letter &+ 10 }
        return 0xFF
    }

    /// The lowercase text form, as `uuid.uuidString.lowercased()` spells it.
    @inlinable
    public static func lowercased(_ id: UUID) -> String {
        let (high, low) = id.words
        return String(unsafeUninitializedCapacity: 36) { out in
            var n = 0
            @inline(__always) func put(_ word: UInt64, _ from: Int, _ to: Int) {
                for nibble in stride(from: 15 - from, through: 15 - to, by: -1) {
                    let v = UInt8((word >> (UInt64(nibble) * 4)) & 0x0F)
                    out[n] = v < 10 ? 48 &+ v : 87 &+ v
                    n += 1
                }
            }
            put(high, 0, 7); out[n] = 0x2D; n += 1
            put(high, 8, 11); out[n] = 0x2D; n += 1
            put(high, 12, 15); out[n] = 0x2D; n += 1
            put(low, 0, 3); out[n] = 0x2D; n += 1
            put(low, 4, 15)
            return n
        }
    }
}

extension UUID {
    /// The UUID of two big-endian 64-bit halves.
    @inlinable
    public init(high: UInt64, low: UInt64) {
        let h = high.bigEndian, l = low.bigEndian
        self = withUnsafeBytes(of: (h, l)) { raw in
            UUID(uuid: raw.loadUnaligned(as: uuid_t.self))
        }
    }

    /// The two big-endian 64-bit halves: a hash or an ordering without looking at bytes one by one.
    @inlinable
    public var words: (high: UInt64, low: UInt64) {
        withUnsafeBytes(of: uuid) { raw in
            (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }
}
