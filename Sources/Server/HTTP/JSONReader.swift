/// A body type with a hand-written reader for its usual shape, tried before JSONDecoder on
/// every request (the decision bodies: JSONDecoder was most of a decision's time).
/// `JSONBody.read` picks this up by itself; the reader stays a shortcut, never a second opinion.
protocol QuickJSONReadable: Decodable {
    /// The body, or nil whenever the reader is not sure what JSONDecoder would make of the
    /// bytes: JSONDecoder then reads them as before, so any odd input gets the same answer.
    static func quickRead(_ bytes: UnsafeRawBufferPointer) -> Self?
}

/// A strict RFC 8259 reader over a body's bytes for the few shapes a quick reader knows.
/// It never reports an error: whatever it does not read with certainty — a syntax error, a
/// field of the wrong type, a number other than a plain integer, an escaped or non-ASCII key —
/// ends the quick read (`Unsure`), and JSONDecoder answers instead. That is safe because
/// JSONDecoder accepts every document this reader accepts (it is more lenient, not less).
struct JSONReader {
    /// The quick read gives up; JSONDecoder decides.
    struct Unsure: Error {}

    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    /// Containers open around the reader; JSONBody refuses more than 32 before any reading,
    /// this bound only keeps the reader safe on its own (the fuzzer calls it directly).
    private var depth = 0
    static let maxDepth = 64

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Reads a whole document whose top level is an object, with `read` at the reader's start.
    static func document<T>(_ bytes: UnsafeRawBufferPointer, _ read: (inout JSONReader) throws(Unsure) -> T) -> T? {
        var reader = JSONReader(bytes)
        do {
            let value = try read(&reader)
            reader.skipWhitespace()
            return reader.i == bytes.count ? value : nil
        } catch {
            return nil
        }
    }

    // MARK: Objects

    /// Reads an object member by member: `member` gets each key and must read or skip its value.
    mutating func object(_ member: (inout JSONReader, Key) throws(Unsure) -> Void) throws(Unsure) {
        skipWhitespace()
        try expect(UInt8(ascii: "{"))
        try enter()
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            i += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            let key = try key()
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            try member(&self, key)
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; depth -= 1; return
            default: throw Unsure()
            }
        }
    }

    /// Reads an array element by element: `element` must read or skip each one.
    mutating func array(_ element: (inout JSONReader) throws(Unsure) -> Void) throws(Unsure) {
        skipWhitespace()
        try expect(UInt8(ascii: "["))
        try enter()
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            i += 1
            depth -= 1
            return
        }
        while true {
            try element(&self)
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): i += 1; depth -= 1; return
            default: throw Unsure()
            }
        }
    }

    /// A member's key, as JSONDecoder's `convertFromSnakeCase` would match it.
    struct Key {
        /// The key's bytes: ASCII, no escapes.
        let bytes: UnsafeRawBufferPointer

        /// Whether this key is `name` (a property's camelCase name) or its snake_case form.
        /// Callers ask about every property they read, then call `mustBeUnknown` for the rest.
        func `is`(_ name: StaticString, or snake: StaticString) -> Bool {
            equals(name) || equals(snake)
        }

        func `is`(_ name: StaticString) -> Bool { equals(name) }

        private func equals(_ name: StaticString) -> Bool {
            guard name.utf8CodeUnitCount == bytes.count else { return false }
            let start = name.utf8Start
            for k in 0..<bytes.count where start[k] != bytes[k] { return false }
            return true
        }

        /// A key none of `names` claimed is ignored, like JSONDecoder ignores unknown keys —
        /// unless the decoder would convert it to one of them (`AT_LEAST`, `at__least`,
        /// `user_Id`, …): then the quick read gives up rather than repeat the conversion's rules.
        func mustBeUnknown(_ names: [StaticString]) throws(Unsure) {
            guard let converted = Self.camelCase(bytes) else { return }
            for name in names where name.withUTF8Buffer({ $0.elementsEqual(converted) }) { throw Unsure() }
        }

        /// What `convertFromSnakeCase` makes of an ASCII key with an inner underscore (nil for
        /// other keys, which it leaves alone or which keep an underscore, so match no property):
        /// the parts between underscores, the first lowercased, the others capitalized.
        static func camelCase(_ key: UnsafeRawBufferPointer) -> [UInt8]? {
            let underscore = UInt8(ascii: "_")
            guard key.contains(underscore), key.first != underscore, key.last != underscore else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(key.count)
            var first = true
            for part in key.split(separator: underscore) {
                for (n, byte) in part.enumerated() {
                    out.append(!first && n == 0 ? upper(byte) : lower(byte))
                }
                first = false
            }
            return out
        }

        private static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b + 0x20 : b }
        private static func upper(_ b: UInt8) -> UInt8 { b >= 0x61 && b <= 0x7A ? b - 0x20 : b }
    }

    private mutating func key() throws(Unsure) -> Key {
        try expect(UInt8(ascii: "\""))
        let start = i
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return Key(bytes: UnsafeRawBufferPointer(rebasing: bytes[start..<(i - 1)]))
            }
            // Escaped and non-ASCII keys would need the decoder's own key matching (String
            // equality, Unicode case mapping): not worth repeating for keys no client sends.
            guard b >= 0x20, b < 0x80, b != UInt8(ascii: "\\") else { throw Unsure() }
            i += 1
        }
        throw Unsure()
    }

    // MARK: Values

    /// A string value.
    mutating func string() throws(Unsure) -> String {
        skipWhitespace()
        let (start, end, plain) = try scanString()
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        if plain { return String(decoding: raw, as: UTF8.self) }
        return try JSONEscapes.unescape(raw)
    }

    /// A string, or nil for `null`.
    mutating func optionalString() throws(Unsure) -> String? {
        try null() ? nil : string()
    }

    /// An integer written plainly (`-`, digits, no fraction or exponent) that fits in an Int64
    /// with room to spare; the decoder's answer for `1e2`, `1.0` or 20 digits is its own.
    mutating func optionalInt64() throws(Unsure) -> Int64? {
        if try null() { return nil }
        let negative = peek == UInt8(ascii: "-")
        if negative { i += 1 }
        let start = i
        var n: Int64 = 0
        while i < bytes.count, let digit = Self.digit(bytes[i]) {
            // 18 digits always fit; more are the decoder's to judge.
            guard i - start < 18 else { throw Unsure() }
            n = n * 10 + Int64(digit)
            i += 1
        }
        let count = i - start
        guard count > 0, count == 1 || bytes[start] != UInt8(ascii: "0") else { throw Unsure() }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            throw Unsure()
        }
        return negative ? -n : n
    }

    /// Whether the value is `null` (then read); any other value is left for the caller.
    mutating func null() throws(Unsure) -> Bool {
        skipWhitespace()
        guard peek == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    /// Reads past any value, checking it as strictly as the values that are kept.
    mutating func skipValue() throws(Unsure) {
        skipWhitespace()
        switch peek {
        case UInt8(ascii: "{"): try object { reader, _ throws(Unsure) in try reader.skipValue() }
        case UInt8(ascii: "["): try array { reader throws(Unsure) in try reader.skipValue() }
        case UInt8(ascii: "\""):
            let (start, end, _) = try scanString()
            // Invalid UTF-8 is the decoder's to judge, even in a value nobody reads.
            let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            if raw.contains(where: { $0 >= 0x80 }), String(validating: raw, as: UTF8.self) == nil { throw Unsure() }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: try skipNumber()
        }
    }

    /// One field as JSONDecoder keeps it: the first of duplicate keys counts, later ones are
    /// only checked like any value.
    struct Field<Value> {
        private(set) var value: Value?

        init() {}

        @inline(__always)
        mutating func read(_ reader: inout JSONReader, _ read: (inout JSONReader) throws(Unsure) -> Value) throws(Unsure) {
            if value == nil { value = try read(&reader) } else { try reader.skipValue() }
        }
    }

    // MARK: Pieces

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func expect(_ byte: UInt8) throws(Unsure) {
        guard peek == byte else { throw Unsure() }
        i += 1
    }

    private mutating func enter() throws(Unsure) {
        depth += 1
        guard depth <= Self.maxDepth else { throw Unsure() }
    }

    /// RFC 8259's four whitespace bytes, and nothing else.
    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func literal(_ word: StaticString) throws(Unsure) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count,
              word.withUTF8Buffer({ $0.elementsEqual(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)])) })
        else { throw Unsure() }
        i += n
    }

    private static func digit(_ b: UInt8) -> UInt8? { b >= 0x30 && b <= 0x39 ? b - 0x30 : nil }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func skipNumber() throws(Unsure) {
        if peek == UInt8(ascii: "-") { i += 1 }
        guard let first = peek, Self.digit(first) != nil else { throw Unsure() }
        i += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if peek == UInt8(ascii: ".") {
            i += 1
            guard skipDigits() > 0 else { throw Unsure() }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard skipDigits() > 0 else { throw Unsure() }
        }
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = i
        while let b = peek, Self.digit(b) != nil { i += 1 }
        return i - start
    }

    /// Past a string, from its opening quote: where its contents start and end, and whether
    /// they are plain (ASCII without escapes, so they are the string as they stand).
    /// Escapes are checked here; raw control characters are not JSON.
    private mutating func scanString() throws(Unsure) -> (start: Int, end: Int, plain: Bool) {
        try expect(UInt8(ascii: "\""))
        let start = i
        var plain = true
        while i < bytes.count {
            let b = bytes[i]
            // Most bytes are plain ASCII: past them without the cases below.
            if b >= 0x20, b < 0x80, b != UInt8(ascii: "\""), b != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                i += 1
                return (start, i - 1, plain)
            case UInt8(ascii: "\\"):
                plain = false
                guard i + 1 < bytes.count else { throw Unsure() }
                switch bytes[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    guard i + 6 <= bytes.count else { throw Unsure() }
                    for k in (i + 2)..<(i + 6) where JSONEscapes.hex(bytes[k]) == nil { throw Unsure() }
                    i += 6
                default:
                    throw Unsure()
                }
            case _ where b < 0x20:
                throw Unsure()
            default:
                plain = false  // non-ASCII
                i += 1
            }
        }
        throw Unsure()
    }
}
