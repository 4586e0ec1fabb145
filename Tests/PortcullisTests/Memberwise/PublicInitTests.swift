import Foundation
import Memberwise
import Testing

/// The initializer `@PublicInit` writes builds values, and its defaults apply (the expansion text
/// and the errors are tested in `MemberwiseMacrosTests`).
@Suite("@PublicInit")
struct PublicInitTests {
    @Test("the written initializer builds values, and its defaults apply")
    func builds() {
        let at = Date(timeIntervalSince1970: 1_000)
        let full = Sample(id: 7, name: "seven", note: "n", clock: { at })
        #expect(full.id == 7 && full.name == "seven" && full.note == "n" && full.clock() == at)
        let plain = Sample(id: 8, clock: { at })
        #expect(plain.name == "sample" && plain.note == nil && plain.kind == "fixed")
    }
}

@PublicInit
public struct Sample: Sendable {
    public let id: Int
    public var name: String = "sample"
    public var note: String?
    public let kind = "fixed"
    public let clock: @Sendable () -> Date
}
