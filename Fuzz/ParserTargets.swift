// libFuzzer targets for the parsers that read attacker-controlled text before anything else:
// object strings (every decision), e-mail canonicalisation (every login, signup and reset),
// IP addresses (X-Forwarded-For), and the quick reader of decision bodies (every decision). Built by scripts/fuzz-native.sh with `swiftc -sanitize=fuzzer`
// straight from the sources below, so the harness checks the shipped code, not a copy.
// Beyond "no crash", each target checks a property that would catch a wrong parse.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let selector = data[0] % 5
    let bytes = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let text = String(decoding: bytes, as: UTF8.self)
    switch selector {
    case 0: checkObject(text)
    case 1: checkEmail(text)
    case 2: checkAddress(text)
    case 3: checkQuickRead(CheckBody.self, bytes)
    default: checkQuickRead(BatchBody.self, bytes)
    }
    return 0
}

func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        FileHandle.standardError.write(Data(("property violated: " + message() + "\n").utf8))
        abort()
    }
}

/// A parsed object prints back to a string that parses to the same object, never longer than
/// allowed, and it lies within each of its own ancestors.
func checkObject(_ text: String) {
    guard let ref = try? ObjectRef.parse(text) else { return }
    let again = try? ObjectRef.parse(ref.string)
    require(again == ref, "object \(text.debugDescription) does not round-trip")
    require(ref.string.utf8.count <= ObjectRef.maxLength, "object longer than the limit")
    var ancestor = ref.path
    while let slash = ancestor.lastIndex(of: "/") {
        ancestor = String(ancestor[..<slash])
        require(ref.isWithin(ancestor), "\(ref.string) is not within its ancestor \(ancestor)")
    }
    require(ref.isWithin(""), "not within its org")
}

/// Canonical addresses are fixed points, have one @, and no whitespace or control characters.
func checkEmail(_ text: String) {
    guard let canonical = Email.canonical(text) else { return }
    // Scalars, not `==`: String equality would call the NFC and NFD forms equal.
    require(Email.canonical(canonical).map { Array($0.unicodeScalars) } == Array(canonical.unicodeScalars), "canonical(\(text.debugDescription)) is not a fixed point")
    require(canonical.unicodeScalars.elementsEqual(canonical.precomposedStringWithCanonicalMapping.unicodeScalars), "canonical address not in NFC")
    require(canonical.unicodeScalars.filter { $0 == "@" }.count == 1, "canonical address without exactly one @")
    require(!canonical.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7F }, "whitespace or control in \(canonical.debugDescription)")
    require(canonical.utf8.count <= 4 * Email.maxLength, "canonical address too long")
}

/// An address that parses contains itself; a range contains its own base address.
func checkAddress(_ text: String) {
    guard let range = IPRange(text) else { return }
    let base = String(text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)[0])
    require(range.contains(base), "\(text.debugDescription) does not contain its own address")
    let proxies = ClientAddress(trustedProxies: [range])
    let resolved = proxies.resolve(peer: base, forwardedFor: [text, "198.51.100.1"])
    require(!resolved.isEmpty, "empty client address")
}

/// Whatever the quick reader of a decision body reads, JSONDecoder reads the same from the same
/// bytes (the reader only ever stands in for it; where unsure it returns nil and JSONDecoder
/// answers). The decoder is set up as JSONBody's: snake_case keys (no dates in these bodies).
func checkQuickRead<T: QuickJSONReadable & Equatable>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer) {
    guard let quick = T.quickRead(bytes) else { return }
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    let decoded = try? decoder.decode(T.self, from: Data(bytes))
    require(decoded == quick, "quick read \(quick) but JSONDecoder \(String(describing: decoded)) for \(String(decoding: bytes, as: UTF8.self).debugDescription)")
}
