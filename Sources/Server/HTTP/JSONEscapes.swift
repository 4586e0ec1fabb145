/// JSON string escapes (RFC 8259 §7), for `JSONReader`: a hex digit's value, and a string's
/// contents with their escapes undone.
enum JSONEscapes {
    static func hex(_ b: UInt8) -> UInt32? {
        switch b {
        case 0x30...0x39: return UInt32(b - 0x30)
        case 0x41...0x46: return UInt32(b - 0x41 + 10)
        case 0x61...0x66: return UInt32(b - 0x61 + 10)
        default: return nil
        }
    }

    /// A string's contents with their escapes undone (already checked by `scanString`); a lone
    /// surrogate or invalid UTF-8 gives up, as the decoder refuses both in a value it reads.
    static func unescape(_ raw: UnsafeRawBufferPointer) throws(JSONReader.Unsure) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var k = 0
        func unit(_ at: Int) -> UInt32 {
            (hex(raw[at])! << 12) | (hex(raw[at + 1])! << 8) | (hex(raw[at + 2])! << 4) | hex(raw[at + 3])!
        }
        while k < raw.count {
            let b = raw[k]
            guard b == UInt8(ascii: "\\") else {
                out.append(b)
                k += 1
                continue
            }
            let e = raw[k + 1]
            k += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = unit(k)
                k += 4
                if scalar >= 0xD800, scalar < 0xDC00 {
                    // A high surrogate counts only with the low one right after it.
                    guard k + 6 <= raw.count, raw[k] == UInt8(ascii: "\\"), raw[k + 1] == UInt8(ascii: "u") else { throw JSONReader.Unsure() }
                    let low = unit(k + 2)
                    guard low >= 0xDC00, low < 0xE000 else { throw JSONReader.Unsure() }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    k += 6
                } else if scalar >= 0xDC00, scalar < 0xE000 {
                    throw JSONReader.Unsure()
                }
                out.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
            default: out.append(e)  // " \ /
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw JSONReader.Unsure() }
        return text
    }
}
