import Authority
import Foundation
@testable import Policy
import Testing

/// The decision path's hand-written parts (issue 18) against what they replace: Foundation's
/// UUID parser, the Character-based object parser, and Swift's Dictionary. Seeded, so a failure
/// names a seed that reproduces it.
@Suite("Decision fast path against its oracles")
struct FastPathTests {
    static let hex = Array("0123456789abcdefABCDEF")
    static let junk: [Character] = Array("0123456789abcdefABCDEFgGxX-+ :/_.é\u{301}😀\u{0}")

    static func randomUUIDText(_ rng: inout SplitMix) -> String {
        let u = UUID(uuid: withUnsafeBytes(of: (rng.next(), rng.next())) { $0.loadUnaligned(as: uuid_t.self) })
        let text = u.uuidString
        return String(text.map { c in Bool.random(using: &rng) ? Character(c.lowercased()) : c })
    }

    /// A valid UUID text, often damaged in one way or another.
    static func maybeUUIDText(_ rng: inout SplitMix) -> String {
        var chars = Array(randomUUIDText(&rng))
        switch Int.random(in: 0..<8, using: &rng) {
        case 0: chars[Int.random(in: 0..<chars.count, using: &rng)] = junk.randomElement(using: &rng)!
        case 1: chars.remove(at: Int.random(in: 0..<chars.count, using: &rng))
        case 2: chars.insert(hex.randomElement(using: &rng)!, at: Int.random(in: 0...chars.count, using: &rng))
        case 3: chars = (0..<36).map { _ in junk.randomElement(using: &rng)! }
        case 4: chars.swapAt(8, Int.random(in: 0..<chars.count, using: &rng))
        default: break
        }
        return String(chars)
    }

    @Test("UUIDText reads the strict form as Foundation does, refuses the rest, and writes the lowercase form")
    func uuidText() {
        var rng = SplitMix(state: 0x5EED_0018)
        for _ in 0..<10_000 {
            let text = Self.maybeUUIDText(&rng)
            // Foundation on Linux reads with sscanf, which also takes signs, spaces and short
            // fields ("9043985D-835A-b65E-C031-9e A104bb164"); the strict form must agree with it.
            let strict = Self.isStrictUUID(text)
            #expect(UUIDText.parse(text) == (strict ? UUID(uuidString: text) : nil), "\(text.debugDescription)")
            #expect(UUIDText.parse(Substring(text)) == UUIDText.parse(text))
            // The lowercase reader (SQLite cells) takes exactly the texts it would write back the same.
            var bytes = text
            let lower = bytes.withUTF8 { UUIDText.parseLowercase($0) }
            #expect(lower == UUIDText.parse(text).flatMap { UUIDText.lowercased($0) == text ? $0 : nil }, "\(text.debugDescription)")
            if strict { #expect(UUID(uuidString: text) != nil) }
            if strict, let u = UUID(uuidString: text) {
                #expect(UUIDText.lowercased(u) == u.uuidString.lowercased())
                #expect(UUID(high: u.words.high, low: u.words.low) == u)
            }
        }
    }

    static func isStrictUUID(_ text: String) -> Bool {
        text.utf8.count == 36 && text.enumerated().allSatisfy { i, c in
            [8, 13, 18, 23].contains(i) ? c == "-" : (c.isASCII && c.isHexDigit)
        }
    }

    /// Foundation's parser where the text has the strict form; nil elsewhere.
    static func strictFoundationUUID(_ text: String) -> UUID? { isStrictUUID(text) ? UUID(uuidString: text) : nil }

    @Test("org ids that Foundation's sscanf-based parser let through (spaces, signs, short fields) are refused", arguments: [
        "org:848 20cf-0823-9AAc-a494-1Fc3F5f8FFE0", "org:ba87997f--fF9-C60d-2e6B-Edbe1Eb7a917", "org:1ED0B821-f0 b-e9ee-F754-bDE097aAA304",
        "org:+b1e0ff2-aC31-B11A-3373-1ab03fc9ddD0/doc:1",
    ])
    func laxIDsRefused(_ text: String) {
        #expect(throws: PolicyError.invalidObject("the org id in the object is not a UUID")) { try ObjectRef.parse(text) }
    }

    /// The object parser as it was before issue 18 (Character-based, Foundation's UUID where the
    /// text has the strict form): the oracle.
    static func legacyParse(_ text: String) -> Result<ObjectRef, PolicyError> {
        let bytes = text.utf8
        guard bytes.count <= ObjectRef.maxLength else { return .failure(.invalidObject("object is longer than \(ObjectRef.maxLength) characters")) }
        guard bytes.count >= 40, bytes.starts(with: "org:".utf8) else {
            return .failure(.invalidObject("object must look like org:<org_id> or org:<org_id>/<type>:<id>"))
        }
        let idStart = text.index(text.startIndex, offsetBy: 4)
        let idEnd = text.index(idStart, offsetBy: 36, limitedBy: text.endIndex) ?? text.endIndex
        guard let orgID = strictFoundationUUID(String(text[idStart..<idEnd])) else { return .failure(.invalidObject("the org id in the object is not a UUID")) }
        let rest = text[idEnd...]
        if rest.isEmpty { return .success(ObjectRef(orgID: orgID)) }
        guard rest.first == "/" else { return .failure(.invalidObject("the org id in the object is not a UUID")) }
        var depth = 0
        for segment in rest.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            depth += 1
            guard depth <= ObjectRef.maxDepth else { return .failure(.invalidObject("object is nested deeper than \(ObjectRef.maxDepth) levels")) }
            guard let colon = segment.firstIndex(of: ":") else { return .failure(.invalidObject("each part after the org must be <type>:<id>")) }
            let type = segment[..<colon], id = segment[segment.index(after: colon)...]
            guard ObjectRef.isType(type.utf8) else {
                return .failure(.invalidObject("object type \"\(type.prefix(64))\" must be 1-64 of a-z, 0-9, _ and -, starting with a letter"))
            }
            guard ObjectRef.isID(id.utf8) else { return .failure(.invalidObject("object id must be 1-256 of letters, digits and . _ ~ @ + = - :")) }
        }
        return .success(ObjectRef(orgID: orgID, path: String(rest)))
    }

    static func randomObject(_ rng: inout SplitMix, ascii: Bool) -> String {
        let pieces = ["/", ":", "project", "doc", "a", "Z9", "x_y-z", "1", "@+=~.", "", "//", "P", " "]
            + (ascii ? [] : ["é", "e\u{301}", ":\u{301}", "/\u{301}", "😀"])
        var text = "org:" + randomUUIDText(&rng)
        if Int.random(in: 0..<10, using: &rng) == 0 { text = "org:" + maybeUUIDText(&rng) }
        let levels = Int.random(in: 0..<6, using: &rng)
        for _ in 0..<levels {
            if Int.random(in: 0..<4, using: &rng) == 0 {
                text += (0..<Int.random(in: 1..<4, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            } else {
                text += "/" + ["project", "doc", "folder", "a1"].randomElement(using: &rng)! + ":" + ["p1", "7", "A-b.c", "x:y"].randomElement(using: &rng)!
            }
        }
        if Int.random(in: 0..<50, using: &rng) == 0 { text += String(repeating: "/a:b", count: Int.random(in: 14..<18, using: &rng)) }
        if Int.random(in: 0..<50, using: &rng) == 0 { text += "/doc:" + String(repeating: "x", count: Int.random(in: 250..<260, using: &rng)) }
        return text
    }

    @Test("ObjectRef.parse answers as the Character-based parser it replaced: the same value, the same message for ASCII")
    func objectParser() {
        var rng = SplitMix(state: 0x0B1E_C7)
        for i in 0..<20_000 {
            let ascii = i % 3 != 0
            let text = Self.randomObject(&rng, ascii: ascii)
            let new = Result { () throws(PolicyError) in try ObjectRef.parse(text) }
            let old = Self.legacyParse(text)
            switch (new, old) {
            case (.success(let a), .success(let b)):
                #expect(a == b, "\(text.debugDescription)")
            case (.failure(let a), .failure(let b)):
                // Outside ASCII the old parser stepped by Characters, so it may name another fault first.
                if ascii { #expect(a == b, "\(text.debugDescription)") }
            default:
                Issue.record("parsers disagree on \(text.debugDescription): new \(new), old \(old)")
            }
        }
    }

    @Test("PrincipalMap answers as a Dictionary under random writes, overwrites, removals and seals")
    func principalMap() {
        var rng = SplitMix(state: 0x9A9)
        for round in 0..<200 {
            // Some rounds use ids that are far from random, to test the hash rather than the ids.
            let pool: [Principal] = (0..<Int.random(in: 1..<300, using: &rng)).map { i in
                let id = round % 3 == 0 ? UUID(high: 0, low: UInt64(i)) : UUID(high: rng.next(), low: rng.next())
                return [Principal.user(id), .serviceAccount(id), .group(id)][Int.random(in: 0..<3, using: &rng)]
            }
            var map = PrincipalMap<Int>()
            var dict: [Principal: Int] = [:]
            for step in 0..<Int.random(in: 1..<600, using: &rng) {
                let p = pool.randomElement(using: &rng)!
                switch Int.random(in: 0..<10, using: &rng) {
                case 0: map[p] = nil; dict[p] = nil
                case 1: map.seal()
                // A load's write: no lookup first, the later write of a key wins.
                case 2: map.append(p, step); dict[p] = step
                default: map[p] = step; dict[p] = step
                }
                if step % 7 == 0 {
                    let q = pool.randomElement(using: &rng)!
                    #expect(map[q] == dict[q])
                }
            }
            for p in pool { #expect(map[p] == dict[p], "round \(round)") }
            map.seal()
            for p in pool { #expect(map[p] == dict[p], "round \(round), sealed") }
            #expect(map.count == dict.count)
            #expect(Set(map.keys) == Set(dict.keys))
            #expect(map == PrincipalMap(dict))
            // A principal of another kind with the same id is another key.
            if let p = pool.first, case .user(let id) = p { #expect(map[.group(id)] == dict[.group(id)]) }
        }
    }

    @Test("BindingTable answers as a Dictionary keyed by holder and path, sealed or not, and walks exactly the ancestors")
    func bindingTable() {
        var rng = SplitMix(state: 0xB1D)
        let paths = ["", "/project:p1", "/project:p1/doc:d1", "/project:p1/doc:d10", "/project:p10", "/project:p1/doc:d1/page:x", "/doc:a:b"]
        for _ in 0..<100 {
            let people = (0..<20).map { _ in Principal.user(UUID(high: rng.next(), low: rng.next())) } + [.group(UUID())]
            var grants = OrgGrants()
            var dict: [BindingKey: BindingGrant] = [:]
            for step in 0..<Int.random(in: 1..<120, using: &rng) {
                let p = people.randomElement(using: &rng)!, path = paths.randomElement(using: &rng)!
                let b = BindingGrant(id: UUID(), path: path, role: Role.ranked.randomElement(using: &rng)!, expiresAt: Double(step))
                grants.addBinding(b, for: p)
                dict[BindingKey(p, path)] = b
                if Int.random(in: 0..<20, using: &rng) == 0 { grants.seal() }
            }
            for _ in 0..<2 {
                for p in people {
                    for path in paths { #expect(grants.binding(of: p, on: path) == dict[BindingKey(p, path)]) }
                    // The walk visits the org, each ancestor and the object, and finds what the dictionary holds there.
                    var probes = 0, seen: [String] = []
                    grants.forEachBinding(of: p, onPathTo: "/project:p1/doc:d1/page:x", probes: &probes) { seen.append($0.path) }
                    let expected = ["", "/project:p1", "/project:p1/doc:d1", "/project:p1/doc:d1/page:x"].filter { dict[BindingKey(p, $0)] != nil }
                    #expect(seen == expected)
                }
                #expect(grants.bindingIndex == dict)
                grants.seal()
            }
        }
    }

    @Test("grants loaded row by row, out of order and never sealed, decide as the sealed ones")
    func unsealedGrants() {
        var rng = SplitMix(state: 0x5EA1)
        let org = UUID()
        for _ in 0..<50 {
            let people = (0..<60).map { _ in Principal.user(UUID(high: rng.next(), low: rng.next())) }
            var rows = OrgGrants()
            var dict: [Principal: MemberGrant] = [:]
            for p in people.shuffled(using: &rng) where Bool.random(using: &rng) {
                let m = MemberGrant(role: Role.ranked.randomElement(using: &rng)!, expiresAt: [1_000, .infinity].randomElement(using: &rng)!)
                rows.members[p] = m
                dict[p] = m
            }
            var sealed = OrgGrants(members: dict)
            sealed.seal()
            for p in people {
                let object = ObjectRef(orgID: org)
                for need in Role.ranked {
                    let required = Requirement(action: need.rawValue, role: need)
                    let a = DecisionEngine.decide(rows, subject: Subject(principal: p), object: object, required: required, now: 500)
                    let b = DecisionEngine.decide(sealed, subject: Subject(principal: p), object: object, required: required, now: 500)
                    #expect(a == b)
                    #expect(rows.members[p] == dict[p])
                }
            }
        }
    }
}
