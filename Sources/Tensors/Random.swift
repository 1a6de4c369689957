/// A seeded, splittable pseudo-random generator (xoshiro256**, seeded through SplitMix64).
///
/// Every random draw in the project comes from one of these, passed in explicitly. `split(_:)`
/// derives an independent stream from a key, so that work split across threads draws the same
/// numbers whatever the thread count.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Codable, Equatable {
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// The four 64-bit state words, for saving and restoring.
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// A generator whose whole stream is fixed by `seed`.
    public init(seed: UInt64) {
        var sm = seed
        s0 = SeededGenerator.splitMix(&sm); s1 = SeededGenerator.splitMix(&sm)
        s2 = SeededGenerator.splitMix(&sm); s3 = SeededGenerator.splitMix(&sm)
    }

    /// Restores a generator from saved state words (four of them; otherwise a fixed seed).
    public init(state: [UInt64]) {
        let ok = state.count == 4 && state.contains(where: { $0 != 0 })
        let w = ok ? state : SeededGenerator(seed: 0).state
        (s0, s1, s2, s3) = (w[0], w[1], w[2], w[3])
    }

    static func splitMix(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Next 64 random bits.
    @inlinable public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inlinable @inline(__always) func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// An independent generator for sub-task `key`, derived from this one's state without advancing it.
    public func split(_ key: UInt64) -> SeededGenerator {
        var sm = s0 ^ (s3 &* 0x9E37_79B9_7F4A_7C15) ^ (key &* 0xD1B5_4A32_D192_ED03)
        var g = SeededGenerator(seed: SeededGenerator.splitMix(&sm))
        _ = g.next()
        return g
    }

    /// Uniform Float in [0, 1) with 24 random bits.
    @inlinable public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform Double in [0, 1) with 53 random bits.
    @inlinable public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal draw (Box-Muller on two uniforms).
    public mutating func nextNormal() -> Double {
        let u1 = max(nextUnitDouble(), 1e-300), u2 = nextUnitDouble()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// Fills `buffer` with normal draws of standard deviation `std`, two per Box-Muller pair.
    public mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, std: Float) {
        var i = 0
        let n = buffer.count
        while i < n {
            let u1 = max(nextUnitFloat(), 1e-30), u2 = nextUnitFloat()
            let r = (-2 * _logf(u1)).squareRoot() * std
            let a = 2 * Float.pi * u2
            buffer[i] = r * _cosf(a)
            if i + 1 < n { buffer[i + 1] = r * _sinf(a) }
            i += 2
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
@inline(__always) func _logf(_ x: Float) -> Float { Glibc.logf(x) }
@inline(__always) func _cosf(_ x: Float) -> Float { Glibc.cosf(x) }
@inline(__always) func _sinf(_ x: Float) -> Float { Glibc.sinf(x) }
#else
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
@inline(__always) func _logf(_ x: Float) -> Float { Darwin.logf(x) }
@inline(__always) func _cosf(_ x: Float) -> Float { Darwin.cosf(x) }
@inline(__always) func _sinf(_ x: Float) -> Float { Darwin.sinf(x) }
#endif
