import Checkpoints
import Foundation
import Tensors

/// The names of one expert's three projections.
public struct ExpertNames: Sendable, Equatable {
    /// W_g [D, d], W_p [D, d], W_o [d, D].
    public var gate: String, up: String?, down: String?
}

/// How a layer stores its routed experts.
public enum ExpertStorage: Sendable, Equatable {
    /// One tensor per expert and projection.
    case perExpert([ExpertNames])
    /// `gate_up_proj` [n, 2D, d] (gate rows first) and `down_proj` [n, d, D].
    case fused(gateUp: String, down: String?)
    /// OLMo-core: every expert's projections stacked in 2-D `w1` (gate), `w3` (up), `w2` (down).
    /// Dropless type: w1, w3 [n*D, d], expert e's rows e*D..<(e+1)*D as they are; default type
    /// (`transposed`): w1, w3 [n*d, D], the transpose of rows e*d..<(e+1)*d. w2 [n*D, d] in both:
    /// expert e's W_o [d, D] is the transpose of rows e*D..<(e+1)*D.
    case stacked(w1: String, w3: String?, w2: String?, transposed: Bool)
}

/// One MoE layer of a checkpoint: router, routed experts, shared experts.
public struct MoELayer: Sendable, Equatable {
    /// Decoder layer index.
    public var index: Int
    /// Router weight R [n, d].
    public var router: String
    /// The routed experts.
    public var experts: ExpertStorage
    /// Shared expert projections (Qwen2-MoE, DeepSeek), if any.
    public var shared: ExpertNames?
    /// Qwen2-MoE shared-expert gate [1, d].
    public var sharedExpertGate: String?
    /// DeepSeek-V3 score-correction bias [n].
    public var scoreCorrectionBias: String?
    /// Number of routed experts n.
    public var expertCount: Int
    /// Hidden size d.
    public var hiddenSize: Int
    /// Expert intermediate size D.
    public var intermediateSize: Int
    /// Element type of the expert weights on disk.
    public var dtype: DType
}

/// A decoder layer: MoE, or dense (no router).
public enum LayerKind: Sendable, Equatable {
    case moe(MoELayer)
    case dense(index: Int)

    /// Decoder layer index.
    public var index: Int {
        switch self {
        case let .moe(l): return l.index;
        case let .dense(i): return i
        }
    }
}

/// A checkpoint seen as a Mixture-of-Experts model: its family and its layers.
public final class MoECheckpoint: @unchecked Sendable {
    /// The checkpoint read.
    public let checkpoint: Checkpoint
    /// The layout that matched.
    public let spec: LayoutSpec
    /// Every decoder layer, in order.
    public let layers: [LayerKind]
    /// Problems found (missing experts, shape mismatches); the layers concerned are left out of `moeLayers`.
    public let problems: [String]
    /// Experts chosen per token (config, else the layout file, else nil).
    public let topK: Int?
    /// How the router scores experts.
    public let scoring: RouterScoring
    /// The run config of an OLMo-core checkpoint (its MoE type and sizes), else nil.
    public let olmoCoreConfig: OLMoCoreModelConfig?

    /// The MoE layers.
    public var moeLayers: [MoELayer] {
        layers.compactMap {
            if case let .moe(l) = $0 { return l }; return nil
        }
    }
    /// Family name (`olmoe`, `mixtral`, `qwen2_moe`, ...).
    public var family: String { spec.family }

    /// Recognises the layout of `checkpoint`.
    /// - Parameter layout: a user layout that replaces detection.
    /// - Throws: `LayoutError.unrecognized` listing names no family could place.
    public init(_ checkpoint: Checkpoint, layout: LayoutSpec? = nil) throws(LayoutError) {
        self.checkpoint = checkpoint
        let names = checkpoint.tensors.map { $0.name }
        if layout == nil, OLMoCoreLayout.matches(names) {
            let d = try OLMoCoreLayout.describe(checkpoint, names: names)
            spec = OLMoCoreLayout.spec
            layers = d.layers
            problems = d.problems
            topK = d.config.topK
            scoring = RouterScoring(rawValue: d.config.gatingFunction) ?? .softmax
            olmoCoreConfig = d.config
            return
        }
        olmoCoreConfig = nil
        let spec: LayoutSpec
        if let layout {
            spec = layout
        } else if let t = checkpoint.config?.modelType, let s = LayoutSpec.forModelType(t),
            names.contains(where: { s.router.match($0) != nil })
        {
            spec = s
        } else if let s = LayoutSpec.builtIn.first(where: { MoECheckpoint.fits($0, names) }) {
            spec = s
        } else {
            let unplaced = names.filter { !MoECheckpoint.isKnownNonMoE($0) }
            throw .unrecognized(file: checkpoint.path, unplaced: Array(unplaced.prefix(8)), total: unplaced.count)
        }
        self.spec = spec
        var problems: [String] = []
        var layers: [LayerKind] = []
        var routers: [Int: String] = [:]
        var allLayers = Set<Int>()
        for n in names {
            if let m = spec.router.match(n), let l = m.layer { routers[l] = n }
            if let m = spec.layerPrefix.matchPrefix(n) { allLayers.insert(m) }
        }
        if routers.isEmpty {
            if layout != nil { throw .layoutDoesNotFit(file: checkpoint.path, router: spec.router.text) }
            throw .unrecognized(file: checkpoint.path, unplaced: [spec.router.text], total: 1)
        }
        allLayers.formUnion(routers.keys)
        for l in allLayers.sorted() {
            guard let r = routers[l] else { layers.append(.dense(index: l)); continue }
            switch MoECheckpoint.describeLayer(l, router: r, spec: spec, checkpoint: checkpoint, names: names) {
            case let .success(layer): layers.append(.moe(layer))
            case let .failure(p): problems.append("layer \(l): \(p.message)"); layers.append(.dense(index: l))
            }
        }
        self.layers = layers
        self.problems = problems
        topK = checkpoint.config?.topK ?? spec.topK
        if let text = checkpoint.config?.string("scoring_func"), RouterScoring(rawValue: text) == nil {
            problems.append(
                "config.json: unknown scoring_func '\(text)'; \((spec.scoring ?? .softmax).rawValue) assumed (the ERC measures do not depend on it)")
        }
        scoring = checkpoint.config?.string("scoring_func").flatMap(RouterScoring.init(rawValue:)) ?? spec.scoring ?? .softmax
    }

    static func fits(_ s: LayoutSpec, _ names: [String]) -> Bool {
        let hasRouter = names.contains { s.router.match($0) != nil }
        guard hasRouter else { return false }
        let experts = names.contains { n in
            (s.expertGate?.match(n) != nil) || (s.fusedGateUp?.match(n) != nil)
        }
        guard experts else { return false }
        // Family markers that must be present for the more specific families.
        if let b = s.scoreCorrectionBias, !names.contains(where: { b.match($0) != nil }) { return false }
        if let g = s.sharedExpertGate, !names.contains(where: { g.match($0) != nil }) { return false }
        if let g = s.sharedGate, !names.contains(where: { g.match($0) != nil }) { return false }
        return true
    }

    /// Names every transformer has beside its MoE blocks (attention, norms, embeddings, dense MLPs).
    static func isKnownNonMoE(_ n: String) -> Bool {
        let markers = ["embed_tokens", "lm_head", "norm", "self_attn", "attention", "rotary", ".mlp.gate_proj", ".mlp.up_proj", ".mlp.down_proj", "wte", "wpe"]
        return markers.contains { n.contains($0) }
    }

    private static func describeLayer(
        _ l: Int, router: String, spec: LayoutSpec, checkpoint: Checkpoint,
        names: [String]
    ) -> Result<MoELayer, LayerProblem> {
        guard let r = checkpoint.info(router) else { return .failure(LayerProblem("router missing")) }
        guard r.shape.count == 2, r.shape[0] > 0, r.shape[1] > 0 else {
            return .failure(LayerProblem("router '\(router)' has shape \(r.shape), expected [n, d]"))
        }
        let n = r.shape[0], d = r.shape[1]
        if let e = checkpoint.config?.expertCount, e != n {
            return .failure(LayerProblem("router has \(n) rows but the config says \(e) experts"))
        }
        var storage: ExpertStorage
        var D = 0
        var knownD: Int?
        var dtype = r.dtype
        if let gp = spec.expertGate, checkpoint.contains(gp.name(layer: l, expert: 0)) {
            var experts: [ExpertNames] = []
            var missing: [Int] = []
            for e in 0..<n {
                let g = gp.name(layer: l, expert: e)
                guard let gi = checkpoint.info(g) else { missing.append(e); continue }
                guard gi.shape.count == 2, gi.shape[1] == d else { return .failure(LayerProblem("'\(g)' has shape \(gi.shape), expected [D, \(d)]")) }
                guard gi.shape[0] > 0 else { return .failure(LayerProblem("'\(g)' has shape \(gi.shape): an expert with no intermediate units")) }
                if knownD == nil { knownD = gi.shape[0]; D = gi.shape[0]; dtype = gi.dtype }
                guard gi.shape[0] == D else { return .failure(LayerProblem("'\(g)' has shape \(gi.shape), expected [\(D), \(d)]")) }
                let up = spec.expertUp.map { $0.name(layer: l, expert: e) }
                let down = spec.expertDown.map { $0.name(layer: l, expert: e) }
                if let u = up {
                    guard let ui = checkpoint.info(u) else { return .failure(LayerProblem("expert \(e) up projection '\(u)' missing")) }
                    guard ui.shape == [D, d] else { return .failure(LayerProblem("'\(u)' has shape \(ui.shape), expected [\(D), \(d)]")) }
                }
                if let w = down {
                    guard let wi = checkpoint.info(w) else { return .failure(LayerProblem("expert \(e) down projection '\(w)' missing")) }
                    guard wi.shape == [d, D] else { return .failure(LayerProblem("'\(w)' has shape \(wi.shape), expected [\(d), \(D)]")) }
                }
                experts.append(ExpertNames(gate: g, up: up, down: down))
            }
            if !missing.isEmpty {
                return .failure(
                    LayerProblem("router has \(n) experts but expert(s) \(missing.prefix(10).map(String.init).joined(separator: ", ")) are missing"))
            }
            storage = .perExpert(experts)
        } else if let fp = spec.fusedGateUp, checkpoint.contains(fp.name(layer: l)) {
            let g = fp.name(layer: l)
            guard let gi = checkpoint.info(g), gi.shape.count == 3, gi.shape[0] == n, gi.shape[2] == d, gi.shape[1] % 2 == 0 else {
                return .failure(LayerProblem("fused '\(g)' has shape \(checkpoint.info(g)?.shape ?? []), expected [\(n), 2D, \(d)]"))
            }
            D = gi.shape[1] / 2
            dtype = gi.dtype
            let down = spec.fusedDown.map { $0.name(layer: l) }
            if let w = down, let wi = checkpoint.info(w), wi.shape != [n, d, D] {
                return .failure(LayerProblem("fused '\(w)' has shape \(wi.shape), expected [\(n), \(d), \(D)]"))
            }
            storage = .fused(gateUp: g, down: down.flatMap { checkpoint.contains($0) ? $0 : nil })
        } else {
            return .failure(
                LayerProblem(
                    "router present but no expert weights found (looked for '\(spec.expertGate?.name(layer: l, expert: 0) ?? spec.fusedGateUp?.name(layer: l) ?? "?")')"
                ))
        }
        var shared: ExpertNames?
        if let sg = spec.sharedGate?.name(layer: l), checkpoint.contains(sg) {
            shared = ExpertNames(gate: sg, up: spec.sharedUp?.name(layer: l), down: spec.sharedDown?.name(layer: l))
        }
        let seg = spec.sharedExpertGate?.name(layer: l)
        let bias = spec.scoreCorrectionBias?.name(layer: l)
        return .success(
            MoELayer(
                index: l, router: router, experts: storage, shared: shared,
                sharedExpertGate: seg.flatMap { checkpoint.contains($0) ? $0 : nil },
                scoreCorrectionBias: bias.flatMap { checkpoint.contains($0) ? $0 : nil },
                expertCount: n, hiddenSize: d, intermediateSize: D, dtype: dtype))
    }
}

extension NamePattern {
    /// The layer number if `name` starts with this (prefix) pattern.
    func matchPrefix(_ name: String) -> Int? {
        // A prefix pattern ends in a literal; try every cut of `name` at that literal.
        guard case let .literal(last)? = tokens.last else { return match(name)?.layer }
        let u = Array(name.utf8)
        var i = 0
        while i + last.count <= u.count {
            if u[i..<(i + last.count)].elementsEqual(last) {
                if let m = match(String(decoding: u[0..<(i + last.count)], as: UTF8.self)), let l = m.layer { return l }
            }
            i += 1
        }
        return nil
    }
}

/// Why a layer could not be read as an MoE layer.
struct LayerProblem: Error {
    let message: String
    init(_ m: String) { message = m }
}
