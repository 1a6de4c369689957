import Foundation

/// Vectorised kernels for the element-wise passes of training and of the forward pass, on
/// 16-lane Float vectors.
///
/// Every element goes through the same vector code (tails are padded into a full vector),
/// so each result depends only on its inputs, never on where a row starts or how work is
/// split across threads. Reductions add 16 lane partials then the lanes in a fixed order:
/// the same bits for the same row whatever the thread count.
package enum VectorMath {
    package typealias V = SIMD16<Float>
    package static let width = 16

    @inline(__always)
    @inlinable package static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    @inlinable package static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// The first `count` (< 16) elements at `p`, the other lanes `fill`.
    @inline(__always)
    @inlinable package static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> V {
        // one copy of the bytes, not up to 15 lane inserts behind branches
        var v = V(repeating: fill)
        withUnsafeMutableBytes(of: &v) { $0.baseAddress?.copyMemory(from: p, byteCount: count * MemoryLayout<Float>.stride) }
        return v
    }

    @inline(__always)
    @inlinable package static func storePartial(_ v: V, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        withUnsafeBytes(of: v) { b in
            if let base = b.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: count * MemoryLayout<Float>.stride) }
        }
    }

    /// e^x to about 2 ulp (Cephes' expf: Cody-Waite reduction by ln 2, degree-6 polynomial).
    /// Inputs are clamped to [-87.3, 88.3] (results below 2^-126 become ~1.2e-38, not 0); NaN
    /// gives NaN.
    /// (Transparent: inlined before optimisation. As `@inline(__always)` it stayed a call in the
    /// softmax loops, its 16 lanes passed through four SSE registers: measured, 12% of the
    /// routing forward pass spent in that call.)
    @_transparent package static func exp(_ xIn: V) -> V {
        // (`clamped` and `pointwiseMax` are not vectorised by the compiler; `replacing` is)
        let lo = V(repeating: -87.3), hi = V(repeating: 88.3)
        var x = xIn.replacing(with: lo, where: xIn .< lo)
        x = x.replacing(with: hi, where: x .> hi)
        // round(x / ln 2) by the 1.5 * 2^23 trick: no float-to-int conversion, no trap on NaN
        let magic = V(repeating: 12_582_912)
        let t = x * 1.442_695_04 + magic
        let n = t - magic
        var r = x - n * 0.693_359_375
        r = r + n * 2.121_944_40e-4
        var p = V(repeating: 1.987_569_150_0e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let scale = unsafeBitCast((ni &+ 127) &<< 23, to: V.self)
        return p * scale
    }

    /// Lane-wise maximum (NaN in `b` is not taken).
    @inline(__always)
    @inlinable package static func vmax(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .> a) }

    /// Sum of the lanes in a fixed order.
    @inline(__always)
    @inlinable package static func sum(_ v: V) -> Float {
        let a = v.lowHalf + v.highHalf
        let b = a.lowHalf + a.highHalf
        let c = b.lowHalf + b.highHalf
        return c[0] + c[1]
    }

    @inline(__always)
    @inlinable package static func max(_ v: V) -> Float {
        var m = v[0]
        for i in 1..<16 where v[i] > m { m = v[i] }
        return m
    }

    /// sum_j a[j] b[j].
    @inline(__always)
    @inlinable package static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(), j = 0
        while j + width <= n { acc = acc + load(a + j) * load(b + j); j += width }
        if j < n { acc = acc + loadPartial(a + j, n - j) * loadPartial(b + j, n - j) }
        return sum(acc)
    }

    /// sum_j a[j] b[j] c[j].
    @inline(__always)
    @inlinable package static func dot3(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(), j = 0
        while j + width <= n { acc = acc + load(a + j) * load(b + j) * load(c + j); j += width }
        if j < n { acc = acc + loadPartial(a + j, n - j) * loadPartial(b + j, n - j) * loadPartial(c + j, n - j) }
        return sum(acc)
    }

    /// 0, 1, ..., 15: `lanes .< count` masks the first `count` lanes.
    @usableFromInline static let lanes = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

    /// The numerators of the softmax of `row[0..<n] * scale` in place, `e^(row[j] scale - max)`,
    /// and their sum (the denominator): a caller that multiplies the row into something else
    /// divides the result once instead of every element.
    @inlinable package static func softmaxNumerators(_ row: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> Float {
        let full = n / width * width, rest = n - full
        var mx = V(repeating: -.infinity), j = 0
        while j < full { mx = vmax(mx, load(row + j) * scale); j += width }
        if rest > 0 { mx = vmax(mx, loadPartial(row + full, rest, fill: -.infinity) * scale) }
        let m = V(repeating: max(mx))
        var s = V()
        j = 0
        while j < full { let e = exp(load(row + j) * scale - m); store(e, row + j); s = s + e; j += width }
        if rest > 0 {
            let e = exp(loadPartial(row + full, rest) * scale - m)
            storePartial(e, row + full, rest)
            s = s + e.replacing(with: 0, where: lanes .>= Int32(rest))
        }
        return sum(s)
    }

    /// Softmax of `row[0..<n]` in place, each element first multiplied by `scale`.
    @inlinable package static func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) {
        let full = n / width * width, rest = n - full
        let inv = 1 / softmaxNumerators(row, n, scale: scale)
        var j = 0
        while j < full { store(load(row + j) * inv, row + j); j += width }
        if rest > 0 { storePartial(loadPartial(row + full, rest) * inv, row + full, rest) }
    }
}

/// SwiGLU `SiLU(g) * u` and its gradient, vectorised.
package enum SwiGLU {
    package typealias V = VectorMath.V

    @inline(__always)
    @inlinable package static func forward16(_ g: V, _ u: V) -> V { g / (1 + VectorMath.exp(-g)) * u }

    /// `out[j] = g[j] / (1 + e^-g[j]) * u[j]`.
    @inlinable package static func forward(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>, out o: UnsafeMutablePointer<Float>, count: Int) {
        let w = VectorMath.width
        var j = 0
        while j + w <= count { VectorMath.store(forward16(VectorMath.load(g + j), VectorMath.load(u + j)), o + j); j += w }
        if j < count {
            let n = count - j
            VectorMath.storePartial(forward16(VectorMath.loadPartial(g + j, n), VectorMath.loadPartial(u + j, n)), o + j, n)
        }
    }

    @inline(__always)
    @inlinable package static func backward16(_ x: V, _ u: V, _ da: V) -> (dg: V, du: V) {
        let sg = 1 / (1 + VectorMath.exp(-x))
        let silu = x * sg
        let dg = da * u * (sg * (1 + x * (1 - sg)))
        return (dg, da * silu)
    }

    /// Replaces `g` by dL/dg and `u` by dL/du given `dOut` = dL/d(SiLU(g) u).
    @inlinable package static func backward(gate g: UnsafeMutablePointer<Float>, up u: UnsafeMutablePointer<Float>, dOut da: UnsafePointer<Float>, count: Int) {
        let w = VectorMath.width
        var j = 0
        while j + w <= count {
            let r = backward16(VectorMath.load(g + j), VectorMath.load(u + j), VectorMath.load(da + j))
            VectorMath.store(r.dg, g + j); VectorMath.store(r.du, u + j)
            j += w
        }
        if j < count {
            let n = count - j
            let r = backward16(VectorMath.loadPartial(g + j, n), VectorMath.loadPartial(u + j, n), VectorMath.loadPartial(da + j, n))
            VectorMath.storePartial(r.dg, g + j, n); VectorMath.storePartial(r.du, u + j, n)
        }
    }
}

extension VectorMath {
    /// log sum_j e^x[j] (max-shifted).
    @inlinable package static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let full = n / width * width, rest = n - full
        var mx = V(repeating: -.infinity), j = 0
        while j < full { mx = vmax(mx, load(x + j)); j += width }
        if rest > 0 { mx = vmax(mx, loadPartial(x + full, rest, fill: -.infinity)) }
        let m = max(mx)
        let mv = V(repeating: m)
        var s = V()
        j = 0
        while j < full { s = s + exp(load(x + j) - mv); j += width }
        if rest > 0 { s = s + exp(loadPartial(x + full, rest) - mv).replacing(with: 0, where: lanes .>= Int32(rest)) }
        return m + Foundation.log(sum(s))
    }

    /// x[j] = e^(x[j] - shift) * scale, in place.
    @inlinable package static func expShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, shift: Float, scale: Float) {
        let sv = V(repeating: shift)
        var j = 0
        while j + width <= n { store(exp(load(x + j) - sv) * scale, x + j); j += width }
        if j < n { storePartial(exp(loadPartial(x + j, n - j) - sv) * scale, x + j, n - j) }
    }
}
