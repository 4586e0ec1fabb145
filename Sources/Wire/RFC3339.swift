import Foundation

/// RFC 3339 timestamps in UTC: written by the API (milliseconds) and backups (microseconds),
/// read from clients with any fraction and any offset, within the years RFC 3339 can write
/// (four digits, SPEC §12): a moment it could not print back is refused on the way in.
public enum RFC3339 {
    /// 0000-01-01T00:00:00Z, the first moment with a four-digit year.
    public static let earliest: TimeInterval = -62_167_219_200
    /// 10000-01-01T00:00:00Z, the first moment without one (exactly representable as a Double).
    public static let end: TimeInterval = 253_402_300_800

    public static func string(_ date: Date, fractionDigits: Int = 3) -> String {
        // The stored precision, so a timestamp prints the same before and after storing it.
        let micros = Microseconds.since1970(date)
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 { seconds -= 1; fraction += 1_000_000 }
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        let base = String(format: "%04d-%02d-%02dT%02d:%02d:%02d",
                          Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                          Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        guard fractionDigits > 0 else { return base + "Z" }
        let digits = min(fractionDigits, 6)
        var scaled = fraction
        for _ in digits..<6 { scaled /= 10 }
        return base + "." + String(format: "%0\(digits)lld", scaled) + "Z"
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; nil for anything else, and for a moment
    /// outside `earliest..<end` once the offset is applied and the result is a `Date`. Checked on
    /// the `Date`, not the text: near year 10000 a Double is exact to ~30 µs only, so
    /// `23:59:59.9999999` (or `.999999`) rounds to 10000-01-01 and must be refused too.
    public static func date(_ text: String) -> Date? {
        let chars = Array(text.utf8)
        guard chars.count >= 20, chars.count <= 40 else { return nil }
        func number(_ from: Int, _ count: Int) -> Int? {
            var n = 0
            for i in from..<(from + count) {
                let c = chars[i]
                guard c >= 48, c <= 57 else { return nil }
                n = n * 10 + Int(c - 48)
            }
            return n
        }
        guard let year = number(0, 4), chars[4] == 45, let month = number(5, 2), chars[7] == 45, let day = number(8, 2),
              chars[10] == 84 || chars[10] == 116, let hour = number(11, 2), chars[13] == 58, let minute = number(14, 2),
              chars[16] == 58, let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if chars[index] == 46 {
            index += 1
            var scale = 0.1
            let start = index
            while index < chars.count, chars[index] >= 48, chars[index] <= 57 {
                fraction += Double(chars[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        guard index < chars.count else { return nil }
        var offset = 0
        switch chars[index] {
        case 90, 122: // Z z
            guard index + 1 == chars.count else { return nil }
        case 43, 45: // + -
            guard index + 6 == chars.count, let h = number(index + 1, 2), chars[index + 3] == 58, let m = number(index + 4, 2),
                  h < 24, m < 60 else { return nil }
            offset = (h * 3600 + m * 60) * (chars[index] == 45 ? -1 : 1)
        default:
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(min(second, 59))
        let seconds = timegm(&parts)
        // timegm normalises impossible dates (Feb 30); refuse them instead.
        var check = time_t(seconds)
        var back = tm()
        gmtime_r(&check, &back)
        guard Int(back.tm_mday) == day, Int(back.tm_mon) == month - 1 else { return nil }
        let instant = Double(seconds - offset) + fraction
        guard instant >= earliest, instant < end else { return nil }
        return Date(timeIntervalSince1970: instant)
    }
}

/// Timestamps are kept to the microsecond, the precision both databases store: rounding here
/// is what makes a timestamp print the same before and after storing it.
public enum Microseconds {
    public static func since1970(_ date: Date) -> Int64 {
        let t = date.timeIntervalSince1970
        let seconds = t.rounded(.down)
        return Int64(seconds) * 1_000_000 + Int64(((t - seconds) * 1_000_000).rounded())
    }

    public static func date(_ micros: Int64) -> Date {
        let (seconds, fraction) = micros.quotientAndRemainder(dividingBy: 1_000_000)
        return Date(timeIntervalSince1970: Double(seconds) + Double(fraction) / 1_000_000)
    }
}
