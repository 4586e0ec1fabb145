import NIOCore

/// JSON written by hand into a response buffer, byte for byte what `JSONBody.encoder` writes for
/// the same value: for responses sent so often that JSONEncoder was most of their time (the
/// decisions). The caller writes the keys in sorted order, snake_case, as the encoder would.
struct JSONWriter {
    private(set) var buffer: ByteBuffer

    init(capacity: Int) { buffer = ByteBufferAllocator().buffer(capacity: capacity) }

    /// Punctuation, keys and literals, written as they are.
    mutating func raw(_ text: StaticString) { buffer.writeStaticString(text) }

    /// A string with JSONEncoder's escapes: `"` and `\`, control characters as `\b \t \n \f \r`
    /// or `\u00xx` (lowercase hex); `/` stays as it is (`.withoutEscapingSlashes`), and so does
    /// everything else, DEL and non-ASCII included.
    mutating func string(_ text: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        if text.utf8.allSatisfy({ !Self.needsEscape($0) }) {
            buffer.writeString(text)
        } else {
            for byte in text.utf8 { escape(byte) }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// One string written from pieces, as `string` writes their concatenation.
    mutating func string(pieces: ((String) -> Void) -> Void) {
        buffer.writeInteger(UInt8(ascii: "\""))
        pieces { text in
            if text.utf8.allSatisfy({ !Self.needsEscape($0) }) {
                buffer.writeString(text)
            } else {
                for byte in text.utf8 { escape(byte) }
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): raw(#"\""#)
        case UInt8(ascii: "\\"): raw(#"\\"#)
        case 0x08: raw(#"\b"#)
        case 0x09: raw(#"\t"#)
        case 0x0A: raw(#"\n"#)
        case 0x0C: raw(#"\f"#)
        case 0x0D: raw(#"\r"#)
        case ..<0x20:
            raw(#"\u00"#)
            let digits: StaticString = "0123456789abcdef"
            buffer.writeInteger(digits.utf8Start[Int(byte >> 4)])
            buffer.writeInteger(digits.utf8Start[Int(byte & 0x0F)])
        default:
            buffer.writeInteger(byte)
        }
    }
}
