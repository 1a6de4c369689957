import Analysis
import Foundation
import MoELayout
import Models

/// What a routing analysis computes.
public struct RoutingOptions: Sendable {
    /// ERC alphas at which to evaluate the loss of m_data.
    public var alphas: [Double] = [1]
    /// The probe feature of a_tj (as in `erc`).
    public var feature: ProbeFeature = .gate
    /// Tokens to measure the coupling on (a seeded sample; nil: all; 0: no coupling).
    public var couplingTokens: Int?
    /// Seed of the coupling sample.
    public var seed: UInt64 = 0
    /// Input tokens listed per expert (vocabulary specialization).
    public var topTokens: Int = 10

    /// Options with the defaults of the command line.
    public init(alphas: [Double] = [1], feature: ProbeFeature = .gate, couplingTokens: Int? = nil, seed: UInt64 = 0, topTokens: Int = 10) {
        self.alphas = alphas; self.feature = feature; self.couplingTokens = couplingTokens; self.seed = seed; self.topTokens = topTokens
    }
}

/// Everything measured on one MoE layer of one checkpoint.
public struct LayerRouting: Sendable {
    /// Decoder layer index.
    public var layer: Int
    /// Tokens T, routed experts n (shared experts excluded), experts per token k.
    public var tokens: Int, experts: Int, topK: Int
    /// Load, co-activation and the load-balancing losses.
    public var load: LoadStatistics
    /// Per-domain expert shares.
    public var domains: [DomainShares]
    /// Per expert, the input tokens it receives most.
    public var topTokens: [[ExpertToken]]
    /// Coupling on data (nil when switched off or failed; see `notes`).
    public var coupling: DataCoupling?
    /// The router's top-k expert ids per token [T * k], window order.
    public var assignments: [Int32]
    /// Mean top-k overlap with the last checkpoint's routing on the same tokens (several checkpoints).
    public var saturation: Double?
    /// Remarks.
    public var notes: [String]
}

/// One checkpoint's routing.
public struct CheckpointRouting: Sendable {
    /// The checkpoint as given.
    public var checkpoint: String
    /// Training step parsed from the path, if any.
    public var step: Int?
    /// Model family.
    public var family: String
    /// The MoE layers in order.
    public var layers: [LayerRouting]
    /// Seconds in the forward pass (reading and running every layer), and in the coupling on data.
    public var forwardSeconds: Double, couplingSeconds: Double
}

/// Runs checkpoints over token windows and measures their routing, one layer's weights in memory
/// at a time.
public enum RoutingAnalysis {
    /// Runs one checkpoint.
    /// - Parameters:
    ///   - progress: called after every decoder layer with its index and seconds.
    /// - Throws: `ModelsError` when the model cannot run.
    public static func run(
        _ model: CausalModel, data: TokenWindows, options: RoutingOptions, path: String,
        progress: (Int, Double) -> Void = { _, _ in }
    ) throws(ModelsError) -> CheckpointRouting {
        let domainOfToken = data.domainOfToken, names = data.domains.map(\.name)
        let sample: [Int]? = options.couplingTokens.map { sampleRows(total: data.tokenCount, count: $0, seed: options.seed) }
        var layers: [LayerRouting] = []
        var couplingSeconds = 0.0
        let t0 = Date()
        _ = try model.forward(
            tokens: data.tokens, windowLength: data.windowLength, keepMoEInput: options.couplingTokens != 0, layerDone: progress
        ) { r in
            let load = LoadStatistics(r)
            var notes: [String] = []
            var coupling: DataCoupling?
            if options.couplingTokens != 0 {
                let c0 = Date()
                do { coupling = try DataCoupling(r, sample: sample, feature: options.feature, alphas: options.alphas) } catch {
                    notes.append("coupling not measured: \(error)")
                }
                couplingSeconds += Date().timeIntervalSince(c0)
                notes += coupling?.notes ?? []
            }
            let silent = load.counts.indices.filter { load.counts[$0] == 0 }
            if !silent.isEmpty { notes.append("expert(s) \(silent.map(String.init).joined(separator: ", ")) received no token") }
            layers.append(
                LayerRouting(
                    layer: r.layer, tokens: r.tokens, experts: r.experts, topK: r.topK, load: load,
                    domains: DomainShares.measure(topExperts: r.topExperts, topK: r.topK, experts: r.experts, domainOfToken: domainOfToken, names: names),
                    topTokens: ExpertToken.measure(
                        tokens: data.tokens, topExperts: r.topExperts, topK: r.topK, experts: r.experts,
                        counts: load.counts, top: options.topTokens),
                    coupling: coupling, assignments: r.topExperts, saturation: nil, notes: notes))
        }
        let total = Date().timeIntervalSince(t0)
        return CheckpointRouting(
            checkpoint: path, step: CouplingAnalysis.step(fromPath: path), family: model.architecture.family,
            layers: layers, forwardSeconds: total - couplingSeconds, couplingSeconds: couplingSeconds)
    }

    /// Router saturation (OLMoE): for every checkpoint and layer, the mean over tokens of
    /// |TopK(t) ∩ TopK_last(t)| / k against the last checkpoint's routing of the same tokens.
    /// Meaningful for checkpoints of one run; a layer that cannot be compared with the last
    /// checkpoint's (other layers, experts or top-k: another model) gets none and a note.
    public static func addSaturation(_ results: inout [CheckpointRouting]) {
        addSaturation(ordered: Array(results.indices), &results)
    }

    /// Saturation within runs: checkpoints are grouped by the folder that holds their `stepN`
    /// folder, and each run is compared with its own latest step, never with another run's (two
    /// runs route the same tokens differently whatever their saturation). A checkpoint alone in
    /// its run gets none and a note.
    public static func addSaturationByRun(_ results: inout [CheckpointRouting]) {
        let groups = Dictionary(grouping: results.indices, by: { (results[$0].checkpoint as NSString).deletingLastPathComponent })
        for (_, members) in groups {
            guard members.count >= 2 else {
                if results.count >= 2 {
                    for c in members {
                        for l in results[c].layers.indices { results[c].layers[l].notes.append("no router saturation: no other checkpoint of its run") }
                    }
                }
                continue
            }
            addSaturation(
                ordered: members.sorted { (stepNumber(results[$0].checkpoint) ?? Int.min) < (stepNumber(results[$1].checkpoint) ?? Int.min) }, &results)
        }
    }

    /// The step of a `.../stepN` path.
    static func stepNumber(_ path: String) -> Int? {
        let last = (path as NSString).lastPathComponent
        return last.hasPrefix("step") ? Int(last.dropFirst(4)) : nil
    }

    /// Saturation of the checkpoints `ordered` (indices into `results`) against the last of them.
    static func addSaturation(ordered: [Int], _ results: inout [CheckpointRouting]) {
        guard ordered.count >= 2, let lastIndex = ordered.last else { return }
        let last = results[lastIndex]
        let reference = Dictionary(uniqueKeysWithValues: last.layers.map { ($0.layer, $0) })
        for c in ordered {
            for l in results[c].layers.indices {
                let mine = results[c].layers[l]
                guard let ref = reference[mine.layer], ref.topK == mine.topK, ref.tokens == mine.tokens, ref.experts == mine.experts else {
                    results[c].layers[l].notes.append("no router saturation: the last checkpoint's layer \(mine.layer) differs (layers, experts or top-k)")
                    continue
                }
                results[c].layers[l].saturation = overlap(mine.assignments, ref.assignments, topK: mine.topK)
            }
        }
    }

    /// Mean over tokens of |a(t) ∩ b(t)| / k for two top-k assignments [T * k].
    public static func overlap(_ a: [Int32], _ b: [Int32], topK k: Int) -> Double {
        let T = min(a.count, b.count) / max(k, 1)
        guard T > 0 else { return .nan }
        var shared = 0
        for t in 0..<T {
            let x = a[(t * k)..<((t + 1) * k)], y = b[(t * k)..<((t + 1) * k)]
            for e in x where y.contains(e) { shared += 1 }
        }
        return Double(shared) / Double(T * k)
    }
}
