/// JSON keys are snake_case on the wire and camelCase in Swift; error messages name the wire form.
public enum KeyCase {
    public static func snake(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch.isUppercase { out.append("_"); out.append(Character(ch.lowercased())) } else { out.append(ch) }
        }
        return out
    }
}
