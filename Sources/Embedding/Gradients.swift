import Foundation
import Tensors

/// The KL objective of t-SNE and its gradient for one way of computing the repulsion.
protocol GradientModel: AnyObject {
    /// Writes dKL/dy for the map `y` (`[N * 2]`, interleaved) into `gradient`, with P multiplied
    /// by `exaggeration`; returns KL(P || Q) on the unexaggerated P when `computeError`.
    func gradient(
        _ y: UnsafePointer<Float>, into gradient: UnsafeMutablePointer<Float>,
        exaggeration: Float, computeError: Bool
    ) -> Double?
    /// KL(P || Q) of the final map, with the exact normaliser Z when N <= `limit`.
    func finalKLDivergence(_ y: [Float], exactNormalizerUpTo limit: Int) -> Double
}

/// sum p ln p over stored probabilities (0 ln 0 = 0), and sum p.
private func entropyTerms(_ p: [Float]) -> (pLogP: Double, sum: Double) {
    var s = 0.0, t = 0.0
    for v in p where v > 0 { s += Double(v) * log(Double(v)); t += Double(v) }
    return (s, t)
}

/// Splits interleaved coordinates into separate x and y arrays.
private func deinterleave(_ y: UnsafePointer<Float>, n: Int, xs: inout [Float], ys: inout [Float]) {
    for i in 0..<n { xs[i] = y[2 * i]; ys[i] = y[2 * i + 1] }
}

/// Z = sum_{i != j} 1 / (1 + |y_i - y_j|^2) over all pairs, O(N^2), chunked and vectorised.
func exactNormalizer(xs: [Float], ys: [Float], threads: Int) -> Double {
    let n = xs.count
    let chunks = Chunks(count: n, size: 32)
    return xs.withUnsafeBufferPointer { xp in
        ys.withUnsafeBufferPointer { yp in
            Parallel.sum(chunks.chunkCount, threads: threads) { c in
                var total = 0.0
                for i in chunks.range(c) {
                    let px = SIMD8<Float>(repeating: xp[i]), py = SIMD8<Float>(repeating: yp[i])
                    var z = SIMD8<Float>(repeating: 0)
                    var j = 0
                    while j + 8 <= n {
                        let dx = px - load8(xp.baseAddress! + j), dy = py - load8(yp.baseAddress! + j)
                        z += 1 / (1 + dx * dx + dy * dy)
                        j += 8
                    }
                    var tail: Float = 0
                    while j < n {
                        let dx = xp[i] - xp[j], dy = yp[i] - yp[j]
                        tail += 1 / (1 + dx * dx + dy * dy)
                        j += 1
                    }
                    total += Double(z.sum() + tail) - 1
                }
                return total
            }
        }
    }
}

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// All N^2 pairs with a dense P (`[N * N]`, zero diagonal).
final class ExactGradient: GradientModel {
    private let p: [Float]
    private let n: Int, threads: Int
    private let chunks: Chunks
    private let pLogP: Double, pSum: Double
    private var xs: [Float], ys: [Float]
    /// Per point: attraction sum p w (y_i - y_j) and repulsion sum w^2 (y_i - y_j), x then y.
    private var forces: [Float]

    init(p: [Float], n: Int, threads: Int) {
        self.p = p
        self.n = n
        self.threads = threads
        chunks = Chunks(count: n, size: 16)
        (pLogP, pSum) = entropyTerms(p)
        xs = .init(repeating: 0, count: n)
        ys = xs
        forces = .init(repeating: 0, count: 4 * n)
    }

    func gradient(
        _ y: UnsafePointer<Float>, into gradient: UnsafeMutablePointer<Float>,
        exaggeration: Float, computeError: Bool
    ) -> Double? {
        deinterleave(y, n: n, xs: &xs, ys: &ys)
        let n = self.n, chunks = self.chunks
        var partials = [Double](repeating: 0, count: 2 * chunks.chunkCount)
        p.withUnsafeBufferPointer { pp in
            xs.withUnsafeBufferPointer { xp in
                ys.withUnsafeBufferPointer { yp in
                    forces.withUnsafeMutableBufferPointer { fp in
                        partials.withUnsafeMutableBufferPointer { zp in
                            let out = UnsafeShared((fp, zp))
                            Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                                var z = 0.0, logTerm = 0.0
                                for i in chunks.range(c) {
                                    let row = pp.baseAddress! + i * n
                                    z += ExactGradient.row(
                                        i, n: n, p: row, xs: xp.baseAddress!, ys: yp.baseAddress!,
                                        forces: out.value.0.baseAddress! + 4 * i)
                                    if computeError {
                                        logTerm += ExactGradient.logTerm(i, n: n, p: row, xs: xp.baseAddress!, ys: yp.baseAddress!)
                                    }
                                }
                                out.value.1[2 * c] = z
                                out.value.1[2 * c + 1] = logTerm
                            }
                        }
                    }
                }
            }
        }
        var z = 0.0, logTerm = 0.0
        for c in 0..<chunks.chunkCount { z += partials[2 * c]; logTerm += partials[2 * c + 1] }
        let inverseZ = Float(1 / z)
        for i in 0..<n {
            gradient[2 * i] = 4 * (exaggeration * forces[4 * i] - inverseZ * forces[4 * i + 2])
            gradient[2 * i + 1] = 4 * (exaggeration * forces[4 * i + 1] - inverseZ * forces[4 * i + 3])
        }
        // KL = sum p ln p - sum p ln w + (sum p) ln Z, with -ln w = ln(1 + d^2).
        return computeError ? pLogP + logTerm + pSum * log(z) : nil
    }

    /// Forces on point i; returns its row of Z (without the self term).
    @inline(__always)
    private static func row(
        _ i: Int, n: Int, p: UnsafePointer<Float>, xs: UnsafePointer<Float>,
        ys: UnsafePointer<Float>, forces: UnsafeMutablePointer<Float>
    ) -> Double {
        let px = SIMD8<Float>(repeating: xs[i]), py = SIMD8<Float>(repeating: ys[i])
        var ax = SIMD8<Float>(repeating: 0), ay = ax, rx = ax, ry = ax, z = ax
        var j = 0
        while j + 8 <= n {
            let dx = px - load8(xs + j), dy = py - load8(ys + j)
            let w = 1 / (1 + dx * dx + dy * dy)
            let pw = load8(p + j) * w, w2 = w * w
            ax += pw * dx; ay += pw * dy
            rx += w2 * dx; ry += w2 * dy
            z += w
            j += 8
        }
        var sax = ax.sum(), say = ay.sum(), srx = rx.sum(), sry = ry.sum(), sz = z.sum()
        while j < n {
            let dx = xs[i] - xs[j], dy = ys[i] - ys[j]
            let w = 1 / (1 + dx * dx + dy * dy)
            let pw = p[j] * w, w2 = w * w
            sax += pw * dx; say += pw * dy
            srx += w2 * dx; sry += w2 * dy
            sz += w
            j += 1
        }
        forces[0] = sax; forces[1] = say; forces[2] = srx; forces[3] = sry
        return Double(sz) - 1
    }

    /// sum_j p_ij ln(1 + d_ij^2) for row i.
    private static func logTerm(
        _ i: Int, n: Int, p: UnsafePointer<Float>, xs: UnsafePointer<Float>,
        ys: UnsafePointer<Float>
    ) -> Double {
        var s: Float = 0
        for j in 0..<n where j != i {
            let dx = xs[i] - xs[j], dy = ys[i] - ys[j]
            s += p[j] * log(1 + dx * dx + dy * dy)
        }
        return Double(s)
    }

    func finalKLDivergence(_ y: [Float], exactNormalizerUpTo limit: Int) -> Double {
        var g = [Float](repeating: 0, count: y.count)
        return y.withUnsafeBufferPointer { yp in
            g.withUnsafeMutableBufferPointer { gp in
                gradient(yp.baseAddress!, into: gp.baseAddress!, exaggeration: 1, computeError: true) ?? .nan
            }
        }
    }
}

/// Sparse P on the nearest-neighbour graph and quadtree repulsion.
final class BarnesHutGradient: GradientModel {
    private let p: SparseAffinities
    private let theta2: Float
    private let threads: Int
    private let n: Int
    private let pLogP: Double, pSum: Double
    private let rowChunks: Chunks
    private var tree = QuadTree()
    /// Per point: repulsion sum w^2 (y_i - y_j) (x, y) and the point's row of Z.
    private var repulsion: [Float]
    /// Per point: attraction sum p w (y_i - y_j) (x, y).
    private var attraction: [Float]

    init(p: SparseAffinities, angle: Float, threads: Int) {
        self.p = p
        theta2 = angle * angle
        self.threads = threads
        n = p.points
        (pLogP, pSum) = entropyTerms(p.values)
        rowChunks = Chunks(count: n, size: 256)
        repulsion = .init(repeating: 0, count: 3 * n)
        attraction = .init(repeating: 0, count: 2 * n)
    }

    func gradient(
        _ y: UnsafePointer<Float>, into gradient: UnsafeMutablePointer<Float>,
        exaggeration: Float, computeError: Bool
    ) -> Double? {
        // The quadtree is built by one worker while the others start on the attraction.
        let n = self.n
        let logTerm = attract(y, computeError: computeError) { self.tree.build(y, n: n) }
        let z = repulsion.withUnsafeMutableBufferPointer { rp in
            tree.repulsion(theta2: theta2, threads: threads, into: rp.baseAddress!)
        }
        let inverseZ = Float(1 / z)
        for i in 0..<n {
            gradient[2 * i] = 4 * (exaggeration * attraction[2 * i] - inverseZ * repulsion[3 * i])
            gradient[2 * i + 1] = 4 * (exaggeration * attraction[2 * i + 1] - inverseZ * repulsion[3 * i + 1])
        }
        return computeError ? pLogP + logTerm + pSum * log(z) : nil
    }

    /// Fills `repulsion` from a fresh quadtree; returns the estimate of Z.
    private func repel(_ y: UnsafePointer<Float>) -> Double {
        tree.build(y, n: n)
        return repulsion.withUnsafeMutableBufferPointer { rp in
            tree.repulsion(theta2: theta2, threads: threads, into: rp.baseAddress!)
        }
    }

    /// Fills `attraction`; returns sum p ln(1 + d^2) over the stored pairs when `computeError`.
    /// `alongside`, if given, runs as one more task of the same parallel loop.
    private func attract(_ y: UnsafePointer<Float>, computeError: Bool, alongside: (() -> Void)? = nil) -> Double {
        let chunks = rowChunks
        let first = alongside == nil ? 0 : 1
        return p.rowStart.withUnsafeBufferPointer { rs in
            p.columns.withUnsafeBufferPointer { cols in
                p.values.withUnsafeBufferPointer { vals in
                    attraction.withUnsafeMutableBufferPointer { ap in
                        let out = UnsafeShared(ap)
                        let yy = UnsafeShared(y)
                        return Parallel.sum(first + chunks.chunkCount, threads: threads) { task in
                            if task < first {
                                alongside?()
                                return 0
                            }
                            var logTerm = 0.0
                            for i in chunks.range(task - first) {
                                let (fx, fy) = BarnesHutGradient.attraction(
                                    row: i, y: yy.value, from: rs[i], to: rs[i + 1],
                                    columns: cols.baseAddress!, values: vals.baseAddress!)
                                out.value[2 * i] = fx
                                out.value[2 * i + 1] = fy
                                if computeError {
                                    logTerm += BarnesHutGradient.logTerm(
                                        row: i, y: yy.value, from: rs[i], to: rs[i + 1],
                                        columns: cols.baseAddress!, values: vals.baseAddress!)
                                }
                            }
                            return logTerm
                        }
                    }
                }
            }
        }
    }

    /// sum_j p_ij w_ij (y_i - y_j) over stored entries `from..<to` of row i, eight at a time.
    @inline(__always)
    private static func attraction(
        row i: Int, y: UnsafePointer<Float>, from: Int, to: Int,
        columns: UnsafePointer<Int32>, values: UnsafePointer<Float>
    ) -> (Float, Float) {
        let px = y[2 * i], py = y[2 * i + 1]
        let vx = SIMD8<Float>(repeating: px), vy = SIMD8<Float>(repeating: py)
        var fx8 = SIMD8<Float>(repeating: 0), fy8 = fx8
        var e = from
        while e + 8 <= to {
            var gx = SIMD8<Float>(), gy = SIMD8<Float>()
            for t in 0..<8 {
                let j = Int(columns[e + t])
                gx[t] = y[2 * j]
                gy[t] = y[2 * j + 1]
            }
            let dx = vx - gx, dy = vy - gy
            let pw = load8(values + e) / (1 + dx * dx + dy * dy)
            fx8 += pw * dx
            fy8 += pw * dy
            e += 8
        }
        var fx = fx8.sum(), fy = fy8.sum()
        while e < to {
            let j = Int(columns[e])
            let dx = px - y[2 * j], dy = py - y[2 * j + 1]
            let pw = values[e] / (1 + dx * dx + dy * dy)
            fx += pw * dx
            fy += pw * dy
            e += 1
        }
        return (fx, fy)
    }

    /// sum_j p_ij ln(1 + d_ij^2) over stored entries `from..<to` of row i.
    private static func logTerm(
        row i: Int, y: UnsafePointer<Float>, from: Int, to: Int,
        columns: UnsafePointer<Int32>, values: UnsafePointer<Float>
    ) -> Double {
        var s: Float = 0
        for e in from..<to {
            let j = Int(columns[e])
            let dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1]
            s += values[e] * log(1 + dx * dx + dy * dy)
        }
        return Double(s)
    }

    func finalKLDivergence(_ y: [Float], exactNormalizerUpTo limit: Int) -> Double {
        var z = y.withUnsafeBufferPointer { repel($0.baseAddress!) }
        if n <= limit {
            var xs = [Float](repeating: 0, count: n), ys = xs
            y.withUnsafeBufferPointer { deinterleave($0.baseAddress!, n: n, xs: &xs, ys: &ys) }
            z = exactNormalizer(xs: xs, ys: ys, threads: threads)
        }
        let logTerm = y.withUnsafeBufferPointer { attract($0.baseAddress!, computeError: true) }
        return pLogP + logTerm + pSum * log(z)
    }
}
