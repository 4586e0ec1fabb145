import Foundation
import Memberwise
import MemberwiseMacros
import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacrosGenericTestSupport
import Testing

/// `@PublicInit` writes what the hand-written memberwise initializers it replaced said: one
/// parameter a stored property, in order, with the property's initial value (or `nil` for an
/// optional) as the default.
@Suite("@PublicInit")
struct PublicInitTests {
    let macros: [String: MacroSpec] = ["PublicInit": MacroSpec(type: PublicInitMacro.self)]

    func expand(_ source: String, _ expanded: String, diagnostics: [DiagnosticSpec] = [], sourceLocation: SourceLocation = #_sourceLocation) {
        assertMacroExpansion(source, expandedSource: expanded, diagnostics: diagnostics, macroSpecs: macros) { failure in
            Issue.record(Comment(rawValue: failure.message), sourceLocation: sourceLocation)
        }
    }

    @Test("stored properties in order; values and nil as defaults; constants, privates with values, statics and computed ones left out")
    func expansion() {
        expand(
            """
            @PublicInit
            public struct Endpoint {
                public let id: UUID
                public var name: String = "unnamed"
                public var note: String?
                public let expiresAt: Date?
                public let kind = "endpoint"
                private var cache: [String: Int] = [:]
                private let secret: Data
                public private(set) var hits: Int
                public static var count = 0
                public var label: String { name }
                public var state: Int { didSet { hits += 1 } }
                public let now: @Sendable () -> Date
            }
            """,
            """
            public struct Endpoint {
                public let id: UUID
                public var name: String = "unnamed"
                public var note: String?
                public let expiresAt: Date?
                public let kind = "endpoint"
                private var cache: [String: Int] = [:]
                private let secret: Data
                public private(set) var hits: Int
                public static var count = 0
                public var label: String { name }
                public var state: Int { didSet { hits += 1 } }
                public let now: @Sendable () -> Date

                public init(id: UUID, name: String = "unnamed", note: String? = nil, expiresAt: Date? = nil, secret: Data, hits: Int, state: Int, now: @escaping @Sendable () -> Date) {
                    self.id = id
                    self.name = name
                    self.note = note
                    self.expiresAt = expiresAt
                    self.secret = secret
                    self.hits = hits
                    self.state = state
                    self.now = now
                }
            }
            """
        )
    }

    @Test("a class, or a property without its type written, is an error at the attribute")
    func errors() {
        expand(
            """
            @PublicInit
            public final class Box {
                public var value: Int
            }
            """,
            """
            public final class Box {
                public var value: Int
            }
            """,
            diagnostics: [DiagnosticSpec(message: "@PublicInit applies to a struct", line: 1, column: 1)]
        )
        expand(
            """
            @PublicInit
            public struct Counter {
                public var value = 0
            }
            """,
            """
            public struct Counter {
                public var value = 0
            }
            """,
            diagnostics: [DiagnosticSpec(message: "@PublicInit needs the type of 'value' written out", line: 1, column: 1)]
        )
    }

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
