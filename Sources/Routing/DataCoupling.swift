import Analysis
import Foundation
import Models
import Tensors

/// Expert-router coupling measured on tokens: does the router send each token to the experts
/// that respond to it most?
///
/// With x_t the MoE input of token t and `a_tj = ||f_j(x_t)||` the probe feature of expert j
/// (the paper's `x W_g^j`, or another `ProbeFeature`):
/// - `agreement` = mean over tokens of |TopK_router(t) ∩ TopK_a(t)| / k (chance k / n);
/// - `mData[i][j]` = mean of a_tj over the tokens whose router top-k holds i: the data version of
///   the paper's activation matrix M, whose row i the router row R[i] stands in for (nil when no
///   token reaches i);
/// - its ERC loss per alpha and coupling threshold alpha*, over the experts that received tokens;
/// - the Pearson correlation of `mData[i][j] / mData[i][i]` with the noise-free proxy's
///   `M[i][j] / M[i][i]` over i != j: how well the router rows stand in for the tokens.
public struct DataCoupling: Sendable {
    /// Tokens the coupling was measured on (all, or a seeded sample).
    public var tokens: Int
    /// The probe feature.
    public var feature: ProbeFeature
    /// Mean top-k overlap of the router's choice with the k largest a_tj, over k.
    public var agreement: Double
    /// k / n: the agreement of a choice independent of a.
    public var chance: Double
    /// `mData[i]`, nil for an expert no sampled token was routed to.
    public var mData: [[Double]?]
    /// The noise-free proxy matrix M[i][j] = ||f_j(R[i])||.
    public var proxy: [[Double]]
    /// Experts with data (rows of `mData` that are not nil), ascending.
    public var expertsWithData: [Int]
    /// ERC loss of `mData` per alpha (over `expertsWithData`).
    public var losses: [(alpha: Double, loss: ERCLoss)]
    /// alpha*: the smallest alpha at which the loss of `mData` is zero.
    public var couplingThreshold: Double
    /// Pearson correlation of the row-normalised off-diagonal entries of `mData` and M (nan if undefined).
    public var proxyCorrelation: Double
    /// Remarks (experts without tokens, ...).
    public var notes: [String]

    /// Tokens whose a_tj are computed at a time.
    static let blockTokens = 1024

    /// Measures the coupling of one layer.
    /// - Parameters:
    ///   - routing: the layer as the forward pass handed it out.
    ///   - sample: token rows to use (ascending), or nil for all.
    ///   - feature: the probe feature.
    ///   - alphas: ERC alphas.
    public init(_ routing: MoELayerRouting, sample: [Int]?, feature: ProbeFeature, alphas: [Double]) throws(AnalysisError) {
        let n = routing.experts, k = routing.topK, d = routing.hidden
        guard let input = routing.input else { throw .invalid("layer \(routing.layer): the forward pass kept no MoE input to measure coupling on") }
        let rows = sample ?? Array(0..<routing.tokens)
        let w = routing.weights
        let D = w.gate.shape.count == 3 ? w.gate.shape[1] : 0
        let stack = ExpertStack(gate: w.gate, up: w.up, down: w.down, experts: n, intermediate: D, hidden: d)
        let m = try ActivationMatrix.compute(proxies: w.router, stack: stack, feature: feature)  // [n, n]
        tokens = rows.count
        self.feature = feature
        chance = Double(k) / Double(n)
        var overlap = 0
        var sums = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        var hits = [Int](repeating: 0, count: n)
        var order = [Int](repeating: 0, count: n)
        // a_tj for a block of tokens at a time: memory follows the block, not T
        var b0 = 0
        while b0 < rows.count {
            let block = rows[b0..<min(rows.count, b0 + DataCoupling.blockTokens)]
            var x = Tensor(shape: [block.count, d])
            for (i, t) in block.enumerated() {
                x.storage.replaceSubrange((i * d)..<((i + 1) * d), with: input.storage[(t * d)..<((t + 1) * d)])
            }
            let a = try ActivationMatrix.compute(proxies: x, stack: stack, feature: feature)  // [block, n]
            for (i, t) in block.enumerated() {
                let row = a.storage[(i * n)..<((i + 1) * n)]
                let base = row.startIndex
                for e in 0..<n { order[e] = e }
                order.sort { row[base + $0] != row[base + $1] ? row[base + $0] > row[base + $1] : $0 < $1 }
                let topA = Set(order.prefix(k))
                for s in 0..<k {
                    let e = Int(routing.topExperts[t * k + s])
                    if topA.contains(e) { overlap += 1 }
                    hits[e] += 1
                    for j in 0..<n { sums[e][j] += Double(row[base + j]) }
                }
            }
            b0 += block.count
        }
        agreement = rows.isEmpty ? .nan : Double(overlap) / Double(rows.count * k)
        let mData: [[Double]?] = (0..<n).map { i in hits[i] > 0 ? sums[i].map { $0 / Double(hits[i]) } : nil }
        let proxy = (0..<n).map { i in (0..<n).map { Double(m[i, $0]) } }
        self.mData = mData
        self.proxy = proxy
        let with = (0..<n).filter { mData[$0] != nil }
        expertsWithData = with
        var notes: [String] = []
        let without = (0..<n).filter { mData[$0] == nil }
        if !without.isEmpty {
            notes.append(
                "expert(s) \(without.map(String.init).joined(separator: ", ")) received none of the \(rows.count) tokens: null m_data rows; ERC loss and alpha* over the other \(with.count)"
            )
        }
        var sub = Tensor(shape: [with.count, with.count])
        for (r, i) in with.enumerated() {
            for (c, j) in with.enumerated() { sub[r, c] = Float(mData[i]?[j] ?? 0) }
        }
        losses = with.count >= 2 ? alphas.map { ($0, ERCLoss(activation: sub, alpha: $0)) } : []
        couplingThreshold = with.count >= 2 ? ERCLoss.couplingThreshold(sub) : .nan
        if with.count < 2 { notes.append("fewer than 2 experts received tokens: no ERC loss") }
        var xs: [Double] = [], ys: [Double] = []
        for i in with {
            guard let row = mData[i], row[i] > 0, proxy[i][i] > 0 else { continue }
            for j in 0..<n where j != i {
                xs.append(row[j] / row[i])
                ys.append(proxy[i][j] / proxy[i][i])
            }
        }
        proxyCorrelation = pearson(xs, ys)
        self.notes = notes
    }
}

/// Pearson correlation of two equally long samples (nan when fewer than 2 or constant).
public func pearson(_ x: [Double], _ y: [Double]) -> Double {
    let n = Double(x.count)
    guard x.count >= 2, x.count == y.count else { return .nan }
    let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
    var sxy = 0.0, sxx = 0.0, syy = 0.0
    for i in x.indices {
        let a = x[i] - mx, b = y[i] - my
        sxy += a * b; sxx += a * a; syy += b * b
    }
    guard sxx > 0, syy > 0 else { return .nan }
    return sxy / (sxx * syy).squareRoot()
}

/// A seeded sample of `count` of the rows 0..<total, ascending (all rows when count >= total).
public func sampleRows(total: Int, count: Int, seed: UInt64) -> [Int] {
    guard count < total else { return Array(0..<total) }
    var g = SeededGenerator(seed: seed ^ 0xC0_0B11_4E5A)
    var pool = Array(0..<total)
    for i in 0..<count {
        let j = i + Int(g.next() % UInt64(total - i))
        pool.swapAt(i, j)
    }
    return Array(pool.prefix(count)).sorted()
}
