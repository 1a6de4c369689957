import Dispatch
import Tensors

/// Expert weights of one MoE layer, stacked over experts, as Float32.
public struct ExpertStack: Sendable {
    /// Gate projections W_g, [n, D, d] (nil when the feature does not need them).
    public var gate: Tensor?
    /// Up projections W_p, [n, D, d].
    public var up: Tensor?
    /// Down projections W_o, [n, d, D].
    public var down: Tensor?
    /// Number of experts n, intermediate size D, hidden size d.
    public var experts: Int, intermediate: Int, hidden: Int

    public init(gate: Tensor?, up: Tensor? = nil, down: Tensor? = nil, experts: Int, intermediate: Int, hidden: Int) {
        self.gate = gate; self.up = up; self.down = down
        self.experts = experts; self.intermediate = intermediate; self.hidden = hidden
    }
}

/// The activation matrix of ERC step 2: `M[i, j] = || f_j(x_i) ||_2` for proxy tokens x_i
/// (rows of R~ = delta * R) and experts j, with f the probe feature (default `R~ W_g^T`).
///
/// Cost for the gate feature: one GEMM of `[m, d] x [d, n*D]` (2 m n D d FLOPs), done over
/// blocks of experts so that the intermediate stays under `blockBytes`.
public enum ActivationMatrix {
    /// Bytes of intermediate activations held at once.
    public static let blockBytes = 96 << 20

    /// M [m, n] for proxies `x` [m, d] against every expert of `stack`.
    public static func compute(proxies x: Tensor, stack: ExpertStack, feature: ProbeFeature = .gate) throws(AnalysisError) -> Tensor {
        let m = x.rows, n = stack.experts, D = stack.intermediate, d = stack.hidden
        guard m > 0, n > 0, D > 0, d > 0 else { throw .invalid("empty activation matrix: \(m) proxies, \(n) experts, D = \(D), d = \(d)") }
        guard x.columns == d else { throw .invalid("proxies have \(x.columns) columns, experts expect d = \(d)") }
        if feature.needsGate { guard let g = stack.gate, g.count == n * D * d else { throw .invalid("gate projections missing or of the wrong size") } }
        if feature.needsUp {
            guard let u = stack.up, u.count == n * D * d else {
                throw .invalid("feature '\(feature.rawValue)' needs the up projections, which this layer lacks")
            }
        }
        if feature.needsDown {
            guard let w = stack.down, w.count == n * d * D else { throw .invalid("feature 'output' needs the down projections, which this layer lacks") }
        }
        var out = Tensor(shape: [m, n])
        let perExpertBytes = m * D * 4 * (feature.needsUp && feature.needsGate ? 2 : 1)
        let block = max(1, min(n, blockBytes / max(1, perExpertBytes)))
        var pg = [Float](repeating: 0, count: feature.needsGate ? m * block * D : 0)
        var pu = [Float](repeating: 0, count: feature.needsUp ? m * block * D : 0)
        var po = [Float](repeating: 0, count: feature.needsDown ? m * d : 0)
        x.storage.withUnsafeBufferPointer { xp in
            guard let xb = xp.baseAddress else { return }
            var start = 0
            while start < n {
                let count = min(block, n - start)
                // P = x W^T for experts [start, start+count): [m, count*D]
                if feature.needsGate, let g = stack.gate {
                    g.storage.withUnsafeBufferPointer { gp in
                        pg.withUnsafeMutableBufferPointer { pb in
                            BLAS.gemm(
                                transB: true, m: m, n: count * D, k: d, a: xb, lda: d,
                                b: gp.baseAddress! + start * D * d, ldb: d, c: pb.baseAddress!, ldc: count * D)
                        }
                    }
                }
                if feature.needsUp, let u = stack.up {
                    u.storage.withUnsafeBufferPointer { up in
                        pu.withUnsafeMutableBufferPointer { pb in
                            BLAS.gemm(
                                transB: true, m: m, n: count * D, k: d, a: xb, lda: d,
                                b: up.baseAddress! + start * D * d, ldb: d, c: pb.baseAddress!, ldc: count * D)
                        }
                    }
                }
                switch feature {
                case .gate: norms(pg, m: m, experts: count, D: D, into: &out, column: start)
                case .up: norms(pu, m: m, experts: count, D: D, into: &out, column: start)
                case .siluGate:
                    for k in pg.indices { pg[k] = silu(pg[k]) }
                    norms(pg, m: m, experts: count, D: D, into: &out, column: start)
                case .swiglu:
                    for k in pg.indices { pg[k] = silu(pg[k]) * pu[k] }
                    norms(pg, m: m, experts: count, D: D, into: &out, column: start)
                case .output:
                    for k in pg.indices { pg[k] = silu(pg[k]) * pu[k] }
                    guard let w = stack.down else { break }
                    for j in 0..<count {
                        // h_j [m, D] (strided in pg with ld count*D) times W_o^T [D, d]
                        pg.withUnsafeBufferPointer { hp in
                            w.storage.withUnsafeBufferPointer { wp in
                                po.withUnsafeMutableBufferPointer { op in
                                    BLAS.gemm(
                                        transB: true, m: m, n: d, k: D, a: hp.baseAddress! + j * D, lda: count * D,
                                        b: wp.baseAddress! + (start + j) * d * D, ldb: D, c: op.baseAddress!, ldc: d)
                                }
                            }
                        }
                        for i in 0..<m {
                            var s = 0.0
                            for k in 0..<d { let v = Double(po[i * d + k]); s += v * v }
                            out[i, start + j] = Float(s.squareRoot())
                        }
                    }
                }
                start += count
            }
        }
        return out
    }

    @inline(__always) static func silu(_ v: Float) -> Float { v / (1 + expf(-v)) }

    /// out[i, column + j] = || p[i, j*D ..< (j+1)*D] ||_2 for a block of `experts` experts.
    static func norms(_ p: [Float], m: Int, experts: Int, D: Int, into out: inout Tensor, column: Int) {
        let ld = experts * D
        let n = out.columns
        p.withUnsafeBufferPointer { buffer in
            out.storage.withUnsafeMutableBufferPointer { ob in
                let o = UnsafeShared(ob.baseAddress)
                let shared = UnsafeShared(buffer)
                // Small matrices (training's n = 8) stay on the calling thread.
                Parallel.forEach(m, work: m * experts * D) { i in
                    let pp = shared.value
                    for j in 0..<experts {
                        var s = 0.0
                        let row = pp.baseAddress! + i * ld + j * D
                        var acc: Float = 0
                        // Blocks of 64 in Float, summed in Double: fast and accurate to ~1e-7 relative.
                        var k = 0
                        while k < D {
                            let e = min(D, k + 64)
                            acc = 0
                            for t in k..<e { acc += row[t] * row[t] }
                            if acc.isFinite && acc >= 1e-30 {
                                s += Double(acc)
                            } else {
                                // squares that overflow or underflow Float32: this block in Double
                                for t in k..<e { let v = Double(row[t]); s += v * v }
                            }
                            k = e
                        }
                        o.value?[i * n + column + j] = Float(s.squareRoot())
                    }
                }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
