import Authority
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Policy
@testable import Server
import Testing

/// The decision path reads and writes its JSON by hand (JSONReader, JSONWriter); JSONDecoder and
/// JSONEncoder stay the definition. Generated bodies and decisions go through both, seeded so a
/// failure names the seed and the body that broke it.
@Suite("Decision JSON by hand: same answers as JSONDecoder and JSONEncoder")
struct DecisionJSONTests {
    // MARK: Reading

    /// What a body comes to: refused before authentication, refused for its fields after it, or read.
    enum Outcome<T: Equatable>: Equatable {
        case early(Int, String)
        case fields(Int, String)
        case body(T)
    }

    static func outcome<T: Equatable>(_ check: () throws -> CheckedBody<T>) -> Outcome<T> {
        do {
            let checked = try check()
            do { return .body(try checked.fields()) } catch let p as Problem { return .fields(p.status.code, p.detail) }
        } catch let p as Problem {
            return .early(p.status.code, p.detail)
        } catch {
            return .early(0, "\(error)")
        }
    }

    /// Both paths give the same outcome; returns whether the quick reader read it itself, and
    /// whether it is a body at all.
    @discardableResult
    static func same<T: QuickJSONReadable & Equatable>(_ type: T.Type, _ bytes: [UInt8], seed: UInt64) -> (quick: Bool, body: Bool) {
        let buffer = ByteBuffer(bytes: bytes)
        let decoder = outcome { try JSONBody.check(T.self, from: buffer) }
        let quick = outcome { try JSONBody.check(T.self, from: buffer, quick: T.quickRead) }
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(quick == decoder, "seed \(seed): \(text.debugDescription)")
        let read = bytes.withUnsafeBytes { T.quickRead($0) }
        if let read { #expect(decoder == .body(read), "seed \(seed): quick read of \(text.debugDescription) is not the decoder's") }
        if case .body = decoder { return (read != nil, true) }
        return (read != nil, false)
    }

    @Test("generated check and batch bodies: the same body, or the same problem at the same point")
    func generatedBodies() {
        var quick = 0, bodies = 0
        for seed in UInt64(1)...1000 {
            var g = BodyGenerator(seed: seed)
            let (bytes, batch) = g.body()
            let read = batch ? Self.same(BatchBody.self, bytes, seed: seed) : Self.same(CheckBody.self, bytes, seed: seed)
            // The other shape too: the same bytes must not fool either reader.
            _ = batch ? Self.same(CheckBody.self, bytes, seed: seed) : Self.same(BatchBody.self, bytes, seed: seed)
            if read.quick { quick += 1 }
            if read.body { bodies += 1 }
        }
        // The quick reader must carry most bodies, not hand everything on (the generator's
        // bodies are odd on purpose: escaped keys, lenient syntax, numbers like 1e2).
        #expect(quick * 2 > bodies, "the quick reader read only \(quick) of \(bodies) bodies")
    }

    @Test("the usual bodies are read by the quick reader itself")
    func usualBodies() throws {
        let user = "0b7c6d2e-6a53-4c1e-9b43-2f1c0f3e8a11"
        let check = #"{"subject":{"user_id":"\#(user)"},"object":"org:\#(user)/doc:7","action":"viewer","consistency":"strong","at_least":12}"#
        let batch = #"{"checks":[\#(check),{"object":"org:x","action":"read"}],"at_least":3}"#
        let pretty = "{\n  \"object\" : \"org:x/a\\/b\",\r\n\t\"action\": \"read\", \"extra\": [1, -2.5e-3, {\"k\": null}, true, false, \"\\ud83d\\ude00\"]\n}\n"
        for (text, type) in [(check, 0), (batch, 1), (pretty, 0)] {
            let bytes = Array(text.utf8)
            let read = type == 0 ? Self.same(CheckBody.self, bytes, seed: 0) : Self.same(BatchBody.self, bytes, seed: 0)
            #expect(read.quick, "not read quickly: \(text)")
        }
        let read = try #require(Array(pretty.utf8).withUnsafeBytes { CheckBody.quickRead($0) })
        #expect(read == CheckBody(subject: nil, object: "org:x/a/b", action: "read", consistency: nil, atLeast: nil))
    }

    @Test("odd input: what the decoder does with it, whoever reads it", arguments: [
        #"{"object":"a","action":"b","object":"c"}"#,  // the first of duplicate keys counts
        #"{"object":"a","action":"b","consistency":null,"consistency":"strong"}"#,
        #"{"object":"a","action":"b","atLeast":1,"at_least":2}"#,
        #"{"object":"a","action":"b","AT_LEAST":3}"#, #"{"object":"a","action":"b","at__least":3}"#,
        #"{"object":"a","action":"b","subject":{"User_Id":"x"}}"#, #"{"object":"a","action":"b","subject":{"user_ıd":"x"}}"#,
        #"{"\u006fbject":"a","action":"b"}"#, #"{"object":"a","action":"b","at_least":1e2}"#,
        #"{"object":"a","action":"b","at_least":1.0}"#, #"{"object":"a","action":"b","at_least":-0}"#,
        #"{"object":"a","action":"b","at_least":99999999999999999999}"#, #"{"object":"a","action":"b","at_least":-12}"#,
        #"{"object":"a","action":"b","x":1e400}"#, #"{"object":"a","action":"b","x":01}"#, #"{"object":"a","action":"b","x":1.}"#,
        #"{"object":"a","action":"b","x":"\ud800"}"#, #"{"object":"\ud800","action":"b"}"#, #"{"object":"\udc00\ud800","action":"b"}"#,
        #"{"object":"\ud83d\ude00\u0000","action":"b"}"#, #"{"object":"a","action":"b","x":"\x"}"#,
        #"{"object":"a","action":"b",}"#, "{\"object\":\"a\",\"action\":\"b\"}\u{0c}", "\u{feff}{\"object\":\"a\",\"action\":\"b\"}",
        "{\"object\":\"a\tb\",\"action\":\"b\"}", #"{"object":null,"action":"b"}"#, #"{"action":"b"}"#, #"{"object":1,"action":"b"}"#,
        #"{"object":"a","action":"b","subject":[]}"#, #"{"object":"a","action":"b","subject":{"token":5}}"#, "", " ", "[]", "\"x\"",
        #"{"object":"a","action":"b"} {}"#, #"{"checks":[{"object":"a","action":"b"},null]}"#, #"{"checks":{}}"#, #"{"checks":[]}"#,
        String(repeating: "[", count: 33) + String(repeating: "]", count: 33),
        #"{"object":"a","action":"b","x":"# + String(repeating: "[", count: 31) + String(repeating: "]", count: 31) + "}",
    ])
    func oddInput(_ text: String) {
        Self.same(CheckBody.self, Array(text.utf8), seed: 0)
        Self.same(BatchBody.self, Array(text.utf8), seed: 0)
    }

    @Test("invalid UTF-8 in a field that is read, and in one that is not")
    func invalidUTF8() {
        for raw in [#"{"object":"Z","action":"b"}"#, #"{"object":"a","action":"b","x":"Z"}"#, #"{"object":"a","action":"b","Z":1}"#] {
            for bad: [UInt8] in [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC3, 0xA9], [0xF0, 0x9F, 0x98, 0x80]] {
                var bytes: [UInt8] = []
                for b in raw.utf8 { if b == UInt8(ascii: "Z") { bytes += bad } else { bytes.append(b) } }
                Self.same(CheckBody.self, bytes, seed: 0)
            }
        }
    }

    // MARK: Writing

    static let encoder = JSONBody.encoder

    struct Results: Encodable { let results: [DecisionResponse] }

    @Test("decisions and batches: JSONEncoder's bytes, every reason and role")
    func decisions() throws {
        var rng = SplitMix(state: 42)
        let whys: [Decision.Why] = [
            .noGrant, .outOfScope, .allowed(action: "viewer", needs: .viewer), .allowed(action: "docs.read", needs: .editor),
            .below(action: "admin", needs: .admin, capped: true), .deniedByOverride(action: "docs.write"), .allowedByOverride(action: "x/y"),
        ]
        var all: [Decision] = []
        for n in 0..<400 {
            let role = [nil, Role.viewer, .editor, .admin, .owner].randomElement(using: &rng)!
            let why = n < whys.count * 5 ? whys[n % whys.count] : .text(BodyGenerator.randomText(using: &rng))
            let d = Decision(allowed: Bool.random(using: &rng), role: role, why: why)
            all.append(d)
            let expected = try Self.encoder.encode(DecisionResponse(d))
            #expect(Array(DecisionResponse.json(d).readableBytesView) == Array(expected), "\(d)")
        }
        for count in [0, 1, 2, 17, all.count] {
            let some = Array(all.prefix(count))
            let expected = try Self.encoder.encode(Results(results: some.map(DecisionResponse.init)))
            #expect(Array(DecisionResponse.json(results: some).readableBytesView) == Array(expected), "batch of \(count)")
        }
    }

    @Test("strings: every ASCII character, escapes, non-ASCII, as JSONEncoder escapes them")
    func strings() throws {
        var rng = SplitMix(state: 7)
        var texts = (0..<0x80).map { String(Character(Unicode.Scalar(UInt8($0)))) }
        texts += ["", "a/b", "é", "\u{2028}\u{2029}", "\u{FEFF}", "😀", "\u{7F}", "e\u{301}", "\0x"]
        texts += (0..<300).map { _ in BodyGenerator.randomText(using: &rng) }
        for text in texts {
            var json = JSONWriter(capacity: 16)
            json.string(text)
            #expect(Array(json.buffer.readableBytesView) == Array(try Self.encoder.encode(text)), "\(text.debugDescription)")
        }
    }

    @Test("a written response has JSONBody.response's status and headers")
    func headers() throws {
        let d = Decision(allowed: true, role: .viewer, reason: "ok")
        let written = JSONBody.response(json: DecisionResponse.json(d))
        let encoded = try JSONBody.response(DecisionResponse(d))
        #expect(written.status == encoded.status)
        #expect(written.headers == encoded.headers)
        let revised = JSONBody.response(json: DecisionResponse.json(d), revision: 9)
        #expect(revised.headers == (try JSONBody.response(DecisionResponse(d), revision: 9)).headers)
    }
}

/// Check and batch bodies as clients write them and as they should not: known fields in their
/// spellings, right and wrong types, duplicates, unknown fields of every kind, escapes, unicode,
/// odd whitespace, then sometimes broken (cut short, a byte changed, nested too deep).
struct BodyGenerator {
    var rng: SplitMix

    init(seed: UInt64) { rng = SplitMix(state: seed) }

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    mutating func pick<T>(_ items: [T]) -> T { items.randomElement(using: &rng)! }

    /// A body and whether it was made as a batch.
    mutating func body() -> ([UInt8], Bool) {
        let batch = chance(0.3)
        var text = batch ? batchBody() : checkBody(depth: 1)
        if chance(0.03) { text = "\u{FEFF}" + text }
        var bytes = Array(text.utf8)
        if chance(0.25) { mutate(&bytes) }
        return (bytes, batch)
    }

    mutating func mutate(_ bytes: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        let at = Int.random(in: 0..<bytes.count, using: &rng)
        switch Int.random(in: 0..<7, using: &rng) {
        case 0: bytes.removeSubrange(at...)
        case 1: bytes.remove(at: at)
        case 2: bytes[at] = pick(Array(#"{}[]:,"\ 0a-eE.+nul"#.utf8) + [0x00, 0x0C, 0x80, 0xFF, 0xC3])
        case 3: bytes.insert(pick(Array(#"{}[]:,"\ 0-"#.utf8)), at: at)
        case 4: bytes += Array(pick([",", " x", "}", "]", "\n", "\u{0C}", " {}"]).utf8)
        case 5: bytes.insert(contentsOf: Array(String(repeating: "[", count: 33).utf8), at: at)
        default: bytes[at] = UInt8.random(in: 0...255, using: &rng)
        }
    }

    mutating func ws() -> String {
        chance(0.6) ? "" : pick([" ", "\n", "\t", "\r\n", "  ", " \t ", chance(0.05) ? "\u{0C}" : " ", chance(0.05) ? "\u{A0}" : ""])
    }

    mutating func object(_ members: [(String, String)]) -> String {
        var members = members
        members.shuffle(using: &rng)
        let inner = members.map { "\(ws())\(Self.quoted($0.0))\(ws()):\(ws())\($0.1)\(ws())" }.joined(separator: ",")
        return "{" + inner + (chance(0.02) ? "," : "") + ws() + "}"
    }

    static func quoted(_ text: String) -> String { "\"" + text + "\"" }

    /// A key for a field: mostly as documented, sometimes camelCase or another spelling the
    /// decoder converts to the same property, or one it does not.
    mutating func key(_ snake: String, _ camel: String) -> String {
        guard chance(0.15) else { return snake }
        let escapedFirst = String(format: "\\u%04x", Int(snake.utf8.first!)) + String(snake.dropFirst())
        return pick([camel, snake.uppercased(), snake.replacingOccurrences(of: "_", with: "__"), "_" + snake, snake + "_",
                     snake.capitalized, camel.lowercased(), escapedFirst])
    }

    mutating func stringValue() -> String {
        if chance(0.05) { return pick(["null", "1", "true", "[]", "{}", #"["a"]"#]) }  // the wrong type, or null
        return Self.quoted(Self.escaped(Self.randomText(using: &rng), &rng))
    }

    mutating func optionalString() -> String { chance(0.1) ? "null" : stringValue() }

    mutating func atLeast() -> String {
        pick(["0", "12", "-3", "-0", "9007199254740993", "999999999999999999", "9223372036854775807", "99999999999999999999",
              "1e2", "1.0", "1.5", "01", "null", "\"5\"", "1E+2", "-", String(Int64.random(in: 0...Int64.max, using: &rng))])
    }

    mutating func subject(depth: Int) -> String {
        if chance(0.1) { return pick(["null", "[]", "\"u\"", "1"]) }
        var members: [(String, String)] = []
        if chance(0.6) { members.append((key("user_id", "userId"), optionalString())) }
        if chance(0.3) { members.append(("token", optionalString())) }
        if chance(0.2) { members.append((key("service_account_id", "serviceAccountId"), optionalString())) }
        if chance(0.1) { members.append((key("group_id", "groupId"), optionalString())) }
        members += unknownMembers(depth: depth + 1)
        return object(members)
    }

    mutating func checkBody(depth: Int) -> String {
        var members: [(String, String)] = []
        if chance(0.97) { members.append(("object", stringValue())) }
        if chance(0.97) { members.append(("action", stringValue())) }
        if chance(0.5) { members.append(("subject", subject(depth: depth + 1))) }
        if chance(0.3) { members.append(("consistency", optionalString())) }
        if chance(0.3) { members.append((key("at_least", "atLeast"), atLeast())) }
        if chance(0.05), let first = members.first { members.append((first.0, stringValue())) }  // a duplicate key
        members += unknownMembers(depth: depth + 1)
        return object(members)
    }

    mutating func batchBody() -> String {
        var members: [(String, String)] = []
        if chance(0.97) {
            let checks = (0..<Int.random(in: 0...4, using: &rng)).map { _ in chance(0.03) ? "null" : checkBody(depth: 3) }
            members.append(("checks", chance(0.03) ? "{}" : "[" + checks.joined(separator: "," + ws()) + ws() + "]"))
        }
        if chance(0.3) { members.append(("consistency", optionalString())) }
        if chance(0.3) { members.append((key("at_least", "atLeast"), atLeast())) }
        members += unknownMembers(depth: 2)
        return object(members)
    }

    mutating func unknownMembers(depth: Int) -> [(String, String)] {
        guard chance(0.4) else { return [] }
        return (0..<Int.random(in: 1...3, using: &rng)).map { _ in
            (pick(["x", "request_id", "meta", "é", "X_Y", "context", "", "objects"]), value(depth: depth))
        }
    }

    /// Any JSON value, valid or nearly.
    mutating func value(depth: Int) -> String {
        let kind = depth > 6 ? Int.random(in: 0..<4, using: &rng) : Int.random(in: 0..<6, using: &rng)
        switch kind {
        case 0: return Self.quoted(Self.escaped(Self.randomText(using: &rng), &rng))
        case 1: return pick(["0", "-1", "1.5", "-2.5e-3", "1E+2", "1e400", "-0", "01", "1.", ".5", "-", "1e", "12345678901234567890123"])
        case 2: return pick(["true", "false", "null", "tru", "nul"])
        case 3: return pick(["[]", "{}"])
        case 4: return "[" + (0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth: depth + 1) }.joined(separator: ",") + "]"
        default:
            let members = (0..<Int.random(in: 0...3, using: &rng)).map { _ in (pick(["a", "b_c", "object", "d\\\"e"]), value(depth: depth + 1)) }
            return object(members)
        }
    }

    /// Text for a string value: ASCII mostly, some unicode and control characters.
    static func randomText(using rng: inout SplitMix) -> String {
        let pieces = ["org:", "0b7c6d2e-6a53-4c1e-9b43-2f1c0f3e8a11", "/doc:", "7", "viewer", "read", "strong", "cached", "a", " ",
                      "\"", "\\", "/", "\n", "\t", "\u{01}", "\u{1F}", "\u{7F}", "é", "😀", "\u{2028}", "ı", "\0", "e\u{301}"]
        return (0..<Int.random(in: 0...6, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
    }

    /// The text as a JSON string's contents, escaped in any of the ways JSON allows (and,
    /// rarely, in ways it does not: raw control characters, lone surrogates, unknown escapes).
    static func escaped(_ text: String, _ rng: inout SplitMix) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let r = Int.random(in: 0..<100, using: &rng)
            switch scalar {
            case "\"": out += r < 70 ? "\\\"" : "\\u0022"
            case "\\": out += r < 70 ? "\\\\" : "\\u005C"
            case "\n": out += r < 97 ? "\\n" : "\n"
            case "\t": out += r < 97 ? "\\t" : "\t"
            case "/": out += r < 50 ? "/" : "\\/"
            case _ where scalar.value < 0x20: out += r < 97 ? String(format: "\\u%04x", scalar.value) : String(scalar)
            case _ where scalar.value > 0xFFFF:
                let v = scalar.value - 0x10000
                let high = 0xD800 + (v >> 10), low = 0xDC00 + (v & 0x3FF)
                out += r < 50 ? String(scalar) : r < 97 ? String(format: "\\u%04X\\u%04x", high, low) : String(format: "\\u%04x", high)
            case _ where scalar.value >= 0x80: out += r < 70 ? String(scalar) : String(format: "\\u%04x", scalar.value)
            default: out += r < 98 ? String(scalar) : (r == 98 ? "\\x" : "\\" + String(scalar))
            }
        }
        return out
    }
}
