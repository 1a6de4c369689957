import Foundation
import Models
import Tensors

/// How evenly a layer's router spreads its top-k selections, and the two conventions of the
/// load-balancing loss.
public struct LoadStatistics: Sendable, Equatable {
    /// Top-k selections per routed expert [n] (they sum to T k).
    public var counts: [Int]
    /// `coactivation[i][j]`: tokens whose top-k holds both i and j (OLMoE's co-activation);
    /// the diagonal holds `counts`.
    public var coactivation: [[Int]]
    /// Largest count over the mean count T k / n (1 when balanced).
    public var maxOverMean: Double
    /// Coefficient of variation of the counts (population std / mean; 0 when balanced).
    public var coefficientOfVariation: Double
    /// Entropy of counts / (T k) divided by log n (1 when balanced).
    public var normalizedEntropy: Double
    /// The load-balancing loss as transformers' `load_balancing_loss_func` computes it, on this
    /// layer alone: `n * sum_e f_e P_e`, P_e = mean over tokens of softmax(logits)[e] and f_e the
    /// fraction of tokens whose top-k of softmax(logits) holds e (softmax whatever the router's
    /// scoring: for softmax routers f_e = counts[e] / T, for DeepSeek-V3's sigmoid, bias-corrected,
    /// group-limited choice it is what the function computes, not the router's load). k when balanced.
    public var loadBalancingLossTransformers: Double
    /// OLMo-core's (and Megatron's) per-layer convention `(n / k) * sum_e f_e P_e`: the above / k, 1 when balanced.
    public var loadBalancingLossOLMoCore: Double
    /// Mean over tokens of the entropy (nats) of the router's distribution: softmax probabilities,
    /// or for sigmoid routers the scores normalised to sum 1.
    public var meanRouterEntropy: Double
    /// Mean over tokens of the largest probability of that distribution.
    public var meanTopProbability: Double

    /// Measures one layer's routing.
    public init(_ r: MoELayerRouting) {
        let T = r.tokens, n = r.experts, k = r.topK
        var counts = [Int](repeating: 0, count: n)
        var co = [Int](repeating: 0, count: n * n)
        r.topExperts.withUnsafeBufferPointer { chosen in
            for t in 0..<T {
                let row = chosen.baseAddress! + t * k
                for a in 0..<k {
                    let i = Int(row[a])
                    counts[i] += 1
                    for b in 0..<k { co[i * n + Int(row[b])] += 1 }
                }
            }
        }
        self.counts = counts
        coactivation = (0..<n).map { i in Array(co[(i * n)..<((i + 1) * n)]) }
        let total = Double(T * k), mean = total / Double(n)
        maxOverMean = Double(counts.max() ?? 0) / mean
        let variance = counts.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n)
        coefficientOfVariation = variance.squareRoot() / mean
        let h = counts.reduce(0.0) { acc, c in c > 0 ? acc - Double(c) / total * Foundation.log(Double(c) / total) : acc }
        normalizedEntropy = n > 1 ? h / Foundation.log(Double(n)) : 1
        // P_e from softmax(logits), the distribution's entropy and top-1 in Double (per-token
        // buffers allocated once: this runs for every token of every layer)
        var meanP = [Double](repeating: 0, count: n)
        var entropy = 0.0, top = 0.0
        var p = [Double](repeating: 0, count: n), q = [Double](repeating: 0, count: n)
        var taken = [Bool](repeating: false, count: n), softmaxCounts = [Int](repeating: 0, count: n)
        let sigmoid = r.scoring == .sigmoid
        r.logits.storage.withUnsafeBufferPointer { logits in
            r.scores.storage.withUnsafeBufferPointer { scores in
                for t in 0..<T {
                    let l = logits.baseAddress! + t * n
                    var mx = -Double.infinity
                    for e in 0..<n { mx = max(mx, Double(l[e])) }
                    var s = 0.0
                    for e in 0..<n { p[e] = Foundation.exp(Double(l[e]) - mx); s += p[e] }
                    for e in 0..<n { p[e] /= s; meanP[e] += p[e] }
                    // transformers' function takes its own top-k of softmax(logits)
                    p.withUnsafeBufferPointer { pb in
                        taken.withUnsafeMutableBufferPointer { tk in
                            guard let pp = pb.baseAddress, let tb = tk.baseAddress else { return }
                            TopK.select(pp, count: n, k: k, taken: tb) { _, best in softmaxCounts[best] += 1 }
                        }
                    }
                    if sigmoid {
                        let sc = scores.baseAddress! + t * n
                        var z = 0.0
                        for e in 0..<n { q[e] = Double(sc[e]); z += q[e] }
                        for e in 0..<n { q[e] = z > 0 ? q[e] / z : 1 / Double(n) }
                    } else {
                        for e in 0..<n { q[e] = p[e] }
                    }
                    var ht = 0.0, mt = 0.0
                    for e in 0..<n { if q[e] > 0 { ht -= q[e] * Foundation.log(q[e]) }; mt = max(mt, q[e]) }
                    entropy += ht
                    top += mt
                }
            }
        }
        var sum = 0.0
        for e in 0..<n { sum += Double(softmaxCounts[e]) / Double(T) * (meanP[e] / Double(T)) }
        loadBalancingLossTransformers = Double(n) * sum
        loadBalancingLossOLMoCore = Double(n) / Double(k) * sum
        meanRouterEntropy = entropy / Double(T)
        meanTopProbability = top / Double(T)
    }
}

/// The share of one domain's tokens routed to each expert (OLMoE's domain specialization).
public struct DomainShares: Sendable, Equatable {
    /// The domain.
    public var name: String
    /// Its tokens in this analysis.
    public var tokens: Int
    /// `shares[e]`: the fraction of the domain's tokens whose top-k holds e (uniform routing: k/n).
    public var shares: [Double]
    /// `shares[e] / (k/n)`: 1 for an expert the domain uses as often as uniform routing would.
    public var specialization: [Double]
    /// The domain's specialization score: the total-variation distance between its expert
    /// distribution `shares / k` and the uniform 1/n (0 when uniform, at most 1 - k/n).
    public var score: Double

    /// Shares of every domain, from the router's top-k [T * k] and each token's domain.
    public static func measure(topExperts: [Int32], topK k: Int, experts n: Int, domainOfToken: [Int], names: [String]) -> [DomainShares] {
        var hits = [[Int]](repeating: [Int](repeating: 0, count: n), count: names.count)
        var tokens = [Int](repeating: 0, count: names.count)
        for (t, d) in domainOfToken.enumerated() {
            tokens[d] += 1
            for s in 0..<k { hits[d][Int(topExperts[t * k + s])] += 1 }
        }
        let uniform = Double(k) / Double(n)
        return names.indices.map { d in
            let T = Double(max(tokens[d], 1))
            let shares = hits[d].map { Double($0) / T }
            let score = 0.5 * shares.reduce(0.0) { $0 + abs($1 / Double(k) - 1 / Double(n)) }
            return DomainShares(name: names[d], tokens: tokens[d], shares: shares, specialization: shares.map { $0 / uniform }, score: score)
        }
    }
}

/// A token an expert receives often (vocabulary specialization).
public struct ExpertToken: Sendable, Equatable {
    /// The input token id.
    public var id: Int32
    /// Times the expert was in this token's top-k.
    public var count: Int
    /// count / the expert's count: the share of the expert's tokens that are this one.
    public var share: Double
    /// count / occurrences of the token: the share of the token's occurrences routed to the expert
    /// (OLMoE's vocabulary specialization).
    public var specialization: Double

    /// The `top` most frequent input tokens of every expert [n], ties to the smaller id.
    public static func measure(tokens: [Int32], topExperts: [Int32], topK k: Int, experts n: Int, counts: [Int], top: Int) -> [[ExpertToken]] {
        var perExpert = [[Int32: Int]](repeating: [:], count: n)
        var occurrences: [Int32: Int] = [:]
        for (t, id) in tokens.enumerated() {
            occurrences[id, default: 0] += 1
            for s in 0..<k { perExpert[Int(topExperts[t * k + s])][id, default: 0] += 1 }
        }
        return (0..<n).map { e in
            perExpert[e].sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(top).map { id, c in
                ExpertToken(
                    id: id, count: c, share: Double(c) / Double(max(counts[e], 1)),
                    specialization: Double(c) / Double(max(occurrences[id] ?? 1, 1)))
            }
        }
    }
}
