/// Gives a struct a `public` memberwise initializer: parameters in the order of the stored
/// properties, a property's initial value as its default, `nil` for an optional one
/// (`MemberwiseMacros.PublicInitMacro` writes it).
@attached(member, names: named(init))
public macro PublicInit() = #externalMacro(module: "MemberwiseMacros", type: "PublicInitMacro")
