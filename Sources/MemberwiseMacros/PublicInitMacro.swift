import SwiftCompilerPlugin
import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// `@PublicInit`: the memberwise initializer Swift synthesizes, but `public`, so that a
/// module's value types can be built by the modules above it (Swift keeps the synthesized one
/// internal). Parameters follow the stored properties in order; a property's initial value is
/// its parameter's default, and an optional property defaults to `nil`. A `let` with a value
/// and a private property with a value are not parameters. Function types are `@escaping`.
public struct PublicInitMacro: MemberMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingMembersOf declaration: some DeclGroupSyntax,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        guard declaration.is(StructDeclSyntax.self) else {
            throw MacroError("@PublicInit applies to a struct")
        }
        let properties = try declaration.memberBlock.members.flatMap { member -> [Parameter] in
            guard let variable = member.decl.as(VariableDeclSyntax.self) else { return [] }
            return try parameters(of: variable)
        }
        let list = properties.map(\.text).joined(separator: ", ")
        let body = properties.map { "self.\($0.name) = \($0.name)" }.joined(separator: "\n")
        return ["public init(\(raw: list)) {\n\(raw: body)\n}"]
    }

    struct Parameter {
        var name: String
        var text: String
    }

    /// The parameters one `let`/`var` declaration contributes: none for a static or computed
    /// property, a `let` with a value, or a private property with a value.
    static func parameters(of variable: VariableDeclSyntax) throws -> [Parameter] {
        let modifiers = variable.modifiers.map(\.name.tokenKind)
        if modifiers.contains(.keyword(.static)) || modifiers.contains(.keyword(.class)) { return [] }
        let isPrivate = variable.modifiers.contains {
            ($0.name.tokenKind == .keyword(.private) || $0.name.tokenKind == .keyword(.fileprivate)) && $0.detail == nil
        }
        let isLet = variable.bindingSpecifier.tokenKind == .keyword(.let)
        var result: [Parameter] = []
        for binding in variable.bindings {
            if let accessors = binding.accessorBlock, !isObserved(accessors) { continue }
            guard let name = binding.pattern.as(IdentifierPatternSyntax.self)?.identifier.trimmedDescription else {
                throw MacroError("@PublicInit needs one name per stored property")
            }
            let initial = binding.initializer?.value.trimmedDescription
            if initial != nil && (isLet || isPrivate) { continue }
            guard let type = binding.typeAnnotation?.type else {
                throw MacroError("@PublicInit needs the type of '\(name)' written out")
            }
            var text = "\(name): \(escaping(type))\(type.trimmedDescription)"
            if let initial {
                text += " = \(initial)"
            } else if isOptional(type) {
                text += " = nil"
            }
            result.append(Parameter(name: name, text: text))
        }
        return result
    }

    static func isObserved(_ accessors: AccessorBlockSyntax) -> Bool {
        guard case .accessors(let list) = accessors.accessors else { return false }
        return list.allSatisfy { [.keyword(.willSet), .keyword(.didSet)].contains($0.accessorSpecifier.tokenKind) }
    }

    static func isOptional(_ type: TypeSyntax) -> Bool {
        type.is(OptionalTypeSyntax.self) || type.is(ImplicitlyUnwrappedOptionalTypeSyntax.self)
            || type.as(IdentifierTypeSyntax.self)?.name.text == "Optional"
    }

    static func escaping(_ type: TypeSyntax) -> String {
        if type.is(FunctionTypeSyntax.self) { return "@escaping " }
        if let attributed = type.as(AttributedTypeSyntax.self), attributed.baseType.is(FunctionTypeSyntax.self) {
            return "@escaping "
        }
        return ""
    }
}

struct MacroError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@main
struct MemberwisePlugin: CompilerPlugin {
    let providingMacros: [Macro.Type] = [PublicInitMacro.self]
}
