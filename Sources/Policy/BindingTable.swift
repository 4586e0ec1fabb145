import Authority
import Foundation

/// The 64-bit mixes the grant tables sort by: murmur3's finaliser, uniform in every bit even for
/// inputs that are not random (sequential ids, short paths).
enum HashMix {
    @inline(__always)
    static func fmix(_ x: UInt64) -> UInt64 {
        var x = x
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }

    @inline(__always)
    static func principal(_ high: UInt64, _ low: UInt64, _ kind: UInt8) -> UInt64 { fmix(high &+ fmix(low ^ UInt64(kind))) }

    @inline(__always)
    static func kind(of principal: Principal) -> UInt8 {
        switch principal {
        case .user: return 0
        case .serviceAccount: return 1
        case .group: return 2
        }
    }

    static func principal(_ high: UInt64, _ low: UInt64, kind: UInt8) -> Principal {
        let id = UUID(high: high, low: low)
        switch kind {
        case 0: return .user(id)
        case 1: return .serviceAccount(id)
        default: return .group(id)
        }
    }

    /// The first position whose hash is at or above `target` in an array sorted by uniform 64-bit
    /// hashes. It starts where the hash says the entry should be and gallops from there, so a
    /// lookup touches a few neighbouring slots instead of a binary search's log n cache lines.
    @inline(__always)
    static func lowerBound(_ target: UInt64, count n: Int, hashAt: (Int) -> UInt64) -> Int {
        guard n > 0 else { return 0 }
        // Invariant: every slot below `lo` hashes below target, every slot from `hi` on at or above it.
        var lo = 0, hi = n
        let guess = Int(truncatingIfNeeded: target.multipliedFullWidth(by: UInt64(n)).high)
        if hashAt(guess) < target {
            lo = guess + 1
            var step = 1
            while lo + step <= n {
                let j = lo + step - 1
                if hashAt(j) < target { lo = j + 1; step <<= 1 } else { hi = j; break }
            }
        } else {
            hi = guess
            var step = 1
            while hi - step >= 0 {
                let j = hi - step
                if hashAt(j) >= target { hi = j; step <<= 1 } else { lo = j + 1; break }
            }
        }
        while lo < hi {
            let mid = (lo + hi) >> 1
            if hashAt(mid) < target { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// FNV-1a over a path's bytes: its running value at each "/" is the hash of that ancestor's path,
/// so a walk up an object's path hashes every level in one pass and makes no strings.
enum PathHash {
    static let empty: UInt64 = 0xCBF2_9CE4_8422_2325

    @inline(__always)
    static func step(_ h: UInt64, _ byte: UInt8) -> UInt64 { (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }

    static func of(_ path: String) -> UInt64 { path.utf8.reduce(empty, step) }

    /// Calls `body` with the hash and the bytes of the org's path (""), of each ancestor of `path`, then of `path`.
    @inline(__always)
    static func forEachLevel(of path: String, _ body: (UInt64, UnsafeBufferPointer<UInt8>) -> Void) {
        var path = path
        path.withUTF8 { bytes in
            var h = empty
            body(h, UnsafeBufferPointer(rebasing: bytes[0..<0]))
            guard !bytes.isEmpty else { return }
            h = step(h, bytes[0])
            var i = 1
            while i < bytes.count {
                // Each ancestor ends just before a "/" (ids never hold one); the object itself ends the path.
                if bytes[i] == UInt8(ascii: "/") { body(h, UnsafeBufferPointer(rebasing: bytes[0..<i])) }
                h = step(h, bytes[i])
                i += 1
            }
            body(h, bytes)
        }
    }
}

/// An org's role bindings keyed by holder and exact path, in one flat array sorted by a hash of
/// both (issue 18): a check looks up each level of the object's path without making a string or
/// running SipHash, and the path is compared byte for byte on a hit, so a collision of hashes
/// costs a step, never a wrong answer. Out-of-order writes are sealed as in `PrincipalMap`.
public struct BindingTable: Sendable {
    struct Slot: Sendable {
        var hash: UInt64
        var high: UInt64
        var low: UInt64
        var kind: UInt8
        var grant: BindingGrant

        @inline(__always)
        func holds(_ high: UInt64, _ low: UInt64, _ kind: UInt8) -> Bool {
            self.high == high && self.low == low && self.kind == kind
        }

        var principal: Principal { HashMix.principal(high, low, kind: kind) }

        static func precedes(_ a: Slot, _ b: Slot) -> Bool {
            (a.hash, a.high, a.low, a.kind) < (b.hash, b.high, b.low, b.kind)
                || ((a.hash, a.high, a.low, a.kind) == (b.hash, b.high, b.low, b.kind) && a.grant.path.utf8.lexicographicallyPrecedes(b.grant.path.utf8))
        }

        func sameKey(_ other: Slot) -> Bool { holds(other.high, other.low, other.kind) && grant.path == other.grant.path }
    }

    var slots: [Slot] = []
    var sorted = true

    public init() {}

    @inline(__always)
    static func key(_ principalHash: UInt64, _ pathHash: UInt64) -> UInt64 { HashMix.fmix(principalHash ^ pathHash) }

    /// The binding of the principal (given as its words, kind and `HashMix.principal`) on the path with these bytes and hash.
    @inline(__always)
    func find(_ high: UInt64, _ low: UInt64, _ kind: UInt8, principalHash: UInt64, pathHash: UInt64, path: UnsafeBufferPointer<UInt8>) -> BindingGrant? {
        let n = slots.count
        guard n > 0 else { return nil }
        return slots.withUnsafeBufferPointer { s -> BindingGrant? in
            @inline(__always) func matches(_ slot: Slot) -> Bool {
                slot.holds(high, low, kind) && slot.grant.path.utf8.elementsEqual(path)
            }
            guard sorted else {
                var i = n - 1
                while i >= 0 {
                    if matches(s[i]) { return s[i].grant }
                    i -= 1
                }
                return nil
            }
            let key = Self.key(principalHash, pathHash)
            var i = HashMix.lowerBound(key, count: n) { s[$0].hash }
            while i < n, s[i].hash == key {
                if matches(s[i]) { return s[i].grant }
                i += 1
            }
            return nil
        }
    }

    /// Adds the binding, or replaces the principal's binding on the same path.
    public mutating func insert(_ grant: BindingGrant, for principal: Principal) {
        let (high, low) = principal.id.words
        let kind = HashMix.kind(of: principal)
        let slot = Slot(hash: Self.key(HashMix.principal(high, low, kind), PathHash.of(grant.path)), high: high, low: low, kind: kind, grant: grant)
        if sorted {
            let i = HashMix.lowerBound(slot.hash, count: slots.count) { slots[$0].hash }
            var j = i
            while j < slots.count, slots[j].hash == slot.hash {
                if slots[j].sameKey(slot) { slots[j] = slot; return }
                j += 1
            }
            if let last = slots.last, !Slot.precedes(last, slot) { sorted = false }
        }
        slots.append(slot)
    }

    /// Removes every binding of `principal`; the rest keep their order.
    public mutating func removeAll(of principal: Principal) {
        let (high, low) = principal.id.words
        let kind = HashMix.kind(of: principal)
        slots.removeAll { $0.holds(high, low, kind) }
    }

    /// Puts the slots in order (the later of two writes of a key wins): call when a load is done.
    public mutating func seal() {
        guard !sorted else { return }
        let order = slots.indices.sorted { a, b in
            if Slot.precedes(slots[a], slots[b]) { return true }
            if Slot.precedes(slots[b], slots[a]) { return false }
            return a < b
        }
        var kept: [Slot] = []
        kept.reserveCapacity(order.count)
        for i in order {
            if let last = kept.last, last.sameKey(slots[i]) { kept[kept.count - 1] = slots[i] } else { kept.append(slots[i]) }
        }
        slots = kept
        sorted = true
    }

    public var count: Int { var copy = self; copy.seal(); return copy.slots.count }

    /// Every binding with its holder, in no particular order.
    public var entries: [(principal: Principal, grant: BindingGrant)] {
        var copy = self
        copy.seal()
        return copy.slots.map { ($0.principal, $0.grant) }
    }
}

extension BindingTable: Equatable {
    public static func == (a: BindingTable, b: BindingTable) -> Bool {
        var x = a, y = b
        x.seal()
        y.seal()
        return x.slots.count == y.slots.count && zip(x.slots, y.slots).allSatisfy { $0.sameKey($1) && $0.grant == $1.grant }
    }
}
