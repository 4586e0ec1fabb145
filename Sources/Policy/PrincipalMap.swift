import Authority
import Foundation

/// A map from principals to small values, laid out for the decision path (issue 18).
///
/// One flat array of slots (the principal's two id words, its kind and the value) sorted by a
/// 64-bit hash of the principal, with a bucket index over it: two cache lines a lookup, no
/// SipHash, and no empty buckets (a Swift `Dictionary` keeps up to a
/// quarter of its buckets empty and rounds up to a power of two).
///
/// Writes that arrive out of hash order (loading rows from a database) append and leave the map
/// unsorted until `seal()`; an unsorted map still answers exactly, by a scan, so forgetting to
/// seal costs speed, never correctness. Of two writes of one key, the later wins.
public struct PrincipalMap<Value: Sendable & Equatable>: Sendable {
    @usableFromInline
    struct Slot: Sendable {
        var high: UInt64
        var low: UInt64
        var value: Value
        var kind: UInt8

        @inline(__always)
        init(_ principal: Principal, _ value: Value) {
            (high, low) = principal.id.words
            kind = PrincipalMap.kind(of: principal)
            self.value = value
        }

        @inline(__always)
        func holds(_ high: UInt64, _ low: UInt64, _ kind: UInt8) -> Bool {
            self.high == high && self.low == low && self.kind == kind
        }

        var hash: UInt64 { PrincipalMap.hash(high, low, kind) }

        var principal: Principal { HashMix.principal(high, low, kind: kind) }
    }

    @usableFromInline var slots: [Slot] = []
    /// Whether `slots` is in (hash, key) order with no key twice.
    @usableFromInline var sorted = true
    /// A bucket index over the sorted slots, made by `seal()`: bucket b (the hash's top bits)
    /// starts at slot `starts[b]`, so a lookup reads one entry here and then one or two slots
    /// next to each other: two cache lines, where galloping from a guess touched four or five.
    /// Empty until sealed, and again after a key is added or removed.
    @usableFromInline var starts: [UInt32] = []
    @usableFromInline var shift: UInt64 = 64

    public init() {}

    public var count: Int { sealed().slots.count }
    public var isEmpty: Bool { slots.isEmpty }

    @inline(__always)
    static func kind(of principal: Principal) -> UInt8 { HashMix.kind(of: principal) }

    @inline(__always)
    static func hash(_ high: UInt64, _ low: UInt64, _ kind: UInt8) -> UInt64 { HashMix.principal(high, low, kind) }

    @inline(__always)
    static func precedes(_ a: Slot, _ ha: UInt64, _ b: Slot, _ hb: UInt64) -> Bool {
        if ha != hb { return ha < hb }
        if a.high != b.high { return a.high < b.high }
        if a.low != b.low { return a.low < b.low }
        return a.kind < b.kind
    }

    /// The slot holding `principal`, if any.
    @inline(__always)
    func index(of principal: Principal) -> Int? {
        let (high, low) = principal.id.words
        let kind = Self.kind(of: principal)
        let n = slots.count
        guard n > 0 else { return nil }
        return slots.withUnsafeBufferPointer { s -> Int? in
            // Sealed: the key's bucket. Otherwise (a load in progress, or a table under eight
            // entries) a scan from the end, where the later of two writes of a key sits.
            guard !starts.isEmpty else {
                var i = n - 1
                while i >= 0 {
                    if s[i].holds(high, low, kind) { return i }
                    i -= 1
                }
                return nil
            }
            let b = Int(truncatingIfNeeded: Self.hash(high, low, kind) >> shift)
            var i = Int(starts[b])
            let end = Int(starts[b + 1])
            while i < end {
                if s[i].holds(high, low, kind) { return i }
                i += 1
            }
            return nil
        }
    }

    public subscript(principal: Principal) -> Value? {
        @inline(__always) get { index(of: principal).map { slots[$0].value } }
        set {
            if let i = index(of: principal) {
                if let newValue {
                    slots[i].value = newValue
                } else {
                    // Every slot of the key: appends may have left earlier writes behind the one found.
                    let (high, low) = principal.id.words
                    let kind = Self.kind(of: principal)
                    slots.removeAll { $0.holds(high, low, kind) }
                    starts = []
                }
                return
            }
            guard let newValue else { return }
            let slot = Slot(principal, newValue)
            let hash = slot.hash
            if sorted, let last = slots.last, !Self.precedes(last, last.hash, slot, hash) {
                // A write into a sorted map (a change applied to a cached org) keeps it sorted:
                // one move of the slots after it, where appending would cost a whole sort at `seal()`.
                var i = HashMix.lowerBound(hash, count: slots.count) { slots[$0].hash }
                while i < slots.count, Self.precedes(slots[i], slots[i].hash, slot, hash) { i += 1 }
                slots.insert(slot, at: i)
            } else {
                slots.append(slot)
            }
            starts = []
        }
    }

    /// Adds an entry without looking for an earlier one of the same key: a load's write, a
    /// constant-time append where the subscript scans an unsealed map. The later write wins, now
    /// (an unsealed lookup scans from the end) and at `seal()`.
    public mutating func append(_ principal: Principal, _ value: Value) {
        let slot = Slot(principal, value)
        if sorted, let last = slots.last, !Self.precedes(last, last.hash, slot, slot.hash) { sorted = false }
        slots.append(slot)
        starts = []
    }

    /// Puts the slots in hash order (the later of two writes of a key wins): call when a load is done.
    public mutating func seal() {
        sortSlots()
        if starts.isEmpty, slots.count >= 8 { indexBuckets() }
    }

    /// About two slots a bucket: the number of buckets is the power of two at or above half the slots.
    mutating func indexBuckets() {
        var bits = 1
        while 1 << bits < slots.count / 2 { bits += 1 }
        let buckets = 1 << bits
        var index = [UInt32](repeating: UInt32(slots.count), count: buckets + 1)
        var b = 0
        for (i, slot) in slots.enumerated() {
            let own = Int(truncatingIfNeeded: slot.hash >> UInt64(64 - bits))
            while b <= own { index[b] = UInt32(i); b += 1 }
        }
        starts = index
        shift = UInt64(64 - bits)
    }

    mutating func sortSlots() {
        guard !sorted else { return }
        let order = slots.indices.map { ($0, slots[$0].hash) }.sorted { a, b in
            if Self.precedes(slots[a.0], a.1, slots[b.0], b.1) { return true }
            if Self.precedes(slots[b.0], b.1, slots[a.0], a.1) { return false }
            return a.0 < b.0
        }
        var kept: [Slot] = []
        kept.reserveCapacity(order.count)
        for (i, _) in order {
            let slot = slots[i]
            if let last = kept.last, last.holds(slot.high, slot.low, slot.kind) {
                kept[kept.count - 1] = slot
            } else {
                kept.append(slot)
            }
        }
        slots = kept
        sorted = true
    }

    /// A sealed copy (itself when sealed already).
    public func sealed() -> PrincipalMap {
        var copy = self
        copy.sortSlots()
        return copy
    }

    /// Every principal, in no particular order.
    public var keys: [Principal] { sealed().slots.map(\.principal) }

    /// Every entry, in no particular order.
    public var entries: [(key: Principal, value: Value)] { sealed().slots.map { ($0.principal, $0.value) } }

    public mutating func reserveCapacity(_ n: Int) { slots.reserveCapacity(n) }

    /// Room for this many entries before the array grows, and the bytes one takes.
    public var capacity: Int { slots.capacity }
    public static var slotStride: Int { MemoryLayout<Slot>.stride }
}

extension PrincipalMap: Equatable {
    public static func == (a: PrincipalMap, b: PrincipalMap) -> Bool {
        let a = a.sealed().slots, b = b.sealed().slots
        return a.count == b.count && zip(a, b).allSatisfy { $0.holds($1.high, $1.low, $1.kind) && $0.value == $1.value }
    }
}

extension PrincipalMap {
    public init(_ entries: [Principal: Value]) {
        slots = entries.map { Slot($0.key, $0.value) }
        sorted = slots.count < 2
        seal()
    }

    /// The bytes of its bucket index.
    public var indexBytes: Int { starts.capacity * MemoryLayout<UInt32>.stride }
}

/// An org's memberships: role and expiry in the hot table, 32 bytes a member. Where a membership
/// came from (its audit event) is kept aside and only by the narrow loads that `explain` reads;
/// the cache's full loads leave it out, so it costs the decision path nothing.
public struct MemberTable: Sendable, Equatable {
    @usableFromInline
    struct Held: Sendable, Equatable {
        var expiresAt: Instant
        var role: Role
    }

    @usableFromInline var held = PrincipalMap<Held>()
    var audits: [Principal: UUID] = [:]

    public init() {}

    public init(_ entries: [Principal: MemberGrant]) {
        held = PrincipalMap(entries.mapValues { Held(expiresAt: $0.expiresAt, role: $0.role) })
        for (p, m) in entries { audits[p] = m.auditEventID }
    }

    public subscript(principal: Principal) -> MemberGrant? {
        @inline(__always) get {
            guard let h = held[principal] else { return nil }
            return MemberGrant(role: h.role, expiresAt: h.expiresAt, auditEventID: audits.isEmpty ? nil : audits[principal])
        }
        set {
            held[principal] = newValue.map { Held(expiresAt: $0.expiresAt, role: $0.role) }
            if newValue?.auditEventID != nil || !audits.isEmpty { audits[principal] = newValue?.auditEventID }
        }
    }

    /// Adds a membership as a load reads it, without looking for an earlier one (`PrincipalMap.append`).
    public mutating func append(_ principal: Principal, _ grant: MemberGrant) {
        held.append(principal, Held(expiresAt: grant.expiresAt, role: grant.role))
        if grant.auditEventID != nil || !audits.isEmpty { audits[principal] = grant.auditEventID }
    }

    /// Appends `count` memberships, the i-th from `entry(i)`, with room made for them first.
    public mutating func appendAll(count: Int, _ entry: (Int) throws -> (Principal, MemberGrant)) rethrows {
        held.reserveCapacity(held.slots.count + count)
        for i in 0..<count {
            let (principal, grant) = try entry(i)
            append(principal, grant)
        }
    }

    /// The role and expiry alone: the decision path's read.
    @inline(__always)
    func current(_ principal: Principal, at now: Instant) -> Role? {
        guard let h = held[principal], h.expiresAt > now else { return nil }
        return h.role
    }

    @inline(__always)
    func contains(_ principal: Principal) -> Bool { held.index(of: principal) != nil }

    public var count: Int { held.count }
    public var isEmpty: Bool { held.isEmpty }
    public var keys: [Principal] { held.keys }
    public mutating func seal() { held.seal() }
    public mutating func reserveCapacity(_ n: Int) { held.reserveCapacity(n) }
    public var capacity: Int { held.capacity }
    /// The bytes one member's slot takes.
    public static var slotStride: Int { PrincipalMap<Held>.slotStride }
}
