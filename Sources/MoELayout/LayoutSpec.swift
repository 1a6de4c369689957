import Checkpoints
import Foundation
import Tensors

/// Where a model family keeps its MoE tensors: name patterns with `{layer}` and `{expert}`.
///
/// The built-in families are values of this type, and so is a user's layout file (JSON with the
/// same keys; see `docs/layout-file.md`). Per-expert and fused 3-D expert tensors are both
/// described; a layer uses whichever its checkpoint holds.
public struct LayoutSpec: Sendable, Codable, Equatable {
    /// Family name shown to the user.
    public var family: String
    /// Prefix of every tensor of a decoder layer, e.g. `model.layers.{layer}.`.
    public var layerPrefix: NamePattern
    /// Router weight R [n, d].
    public var router: NamePattern
    /// Expert gate projection W_g [D, d] (feeds SiLU).
    public var expertGate: NamePattern?
    /// Expert up projection W_p [D, d].
    public var expertUp: NamePattern?
    /// Expert down projection W_o [d, D].
    public var expertDown: NamePattern?
    /// Fused gate and up projections [n, 2D, d], gate rows first.
    public var fusedGateUp: NamePattern?
    /// Fused down projections [n, d, D].
    public var fusedDown: NamePattern?
    /// Shared expert(s) gate/up/down projections, if the family has them.
    public var sharedGate: NamePattern?
    public var sharedUp: NamePattern?
    public var sharedDown: NamePattern?
    /// Qwen2-MoE's sigmoid gate on the shared expert [1, d].
    public var sharedExpertGate: NamePattern?
    /// DeepSeek-V3's score-correction bias [n].
    public var scoreCorrectionBias: NamePattern?
    /// Dense MLP gate projection, for layers without experts.
    public var denseGate: NamePattern?
    /// Router scoring: `softmax` or `sigmoid`.
    public var scoring: RouterScoring?
    /// Experts per token, when the config does not say.
    public var topK: Int?

    public init(
        family: String, layerPrefix: String = "model.layers.{layer}.", router: String,
        expertGate: String? = nil, expertUp: String? = nil, expertDown: String? = nil,
        fusedGateUp: String? = nil, fusedDown: String? = nil,
        sharedGate: String? = nil, sharedUp: String? = nil, sharedDown: String? = nil,
        sharedExpertGate: String? = nil, scoreCorrectionBias: String? = nil,
        denseGate: String? = nil, scoring: RouterScoring? = nil, topK: Int? = nil
    ) {
        self.family = family
        self.layerPrefix = NamePattern(layerPrefix)
        self.router = NamePattern(router)
        self.expertGate = expertGate.map(NamePattern.init)
        self.expertUp = expertUp.map(NamePattern.init)
        self.expertDown = expertDown.map(NamePattern.init)
        self.fusedGateUp = fusedGateUp.map(NamePattern.init)
        self.fusedDown = fusedDown.map(NamePattern.init)
        self.sharedGate = sharedGate.map(NamePattern.init)
        self.sharedUp = sharedUp.map(NamePattern.init)
        self.sharedDown = sharedDown.map(NamePattern.init)
        self.sharedExpertGate = sharedExpertGate.map(NamePattern.init)
        self.scoreCorrectionBias = scoreCorrectionBias.map(NamePattern.init)
        self.denseGate = denseGate.map(NamePattern.init)
        self.scoring = scoring
        self.topK = topK
    }

    /// Reads a user layout file (JSON).
    public static func load(_ path: String) throws(LayoutError) -> LayoutSpec {
        let data: [UInt8]
        do { data = try ReadOnlyFile.contents(of: path, limit: 1 << 20) } catch { throw .badLayoutFile(file: path, reason: error.description) }
        return try parse(Data(data), file: path)
    }

    /// Decodes and validates the text of a layout file; `file` names it in errors.
    public static func parse(_ data: Data, file path: String) throws(LayoutError) -> LayoutSpec {
        let spec: LayoutSpec
        do { spec = try JSONDecoder().decode(LayoutSpec.self, from: data) } catch let e as DecodingError {
            throw .badLayoutFile(file: path, reason: "not a valid layout file: \(LayoutSpec.describe(e))")
        } catch {
            throw .badLayoutFile(file: path, reason: "not a valid layout file: \(error)")
        }
        try spec.validate(file: path)
        return spec
    }

    /// A decoding error in words: which key, what was wrong.
    static func describe(_ e: DecodingError) -> String {
        func at(_ path: [CodingKey]) -> String { path.isEmpty ? "the top level" : "'" + path.map(\.stringValue).joined(separator: ".") + "'" }
        switch e {
        case let .keyNotFound(k, c): return "missing key '\(k.stringValue)'" + (c.codingPath.isEmpty ? "" : " in \(at(c.codingPath))")
        case let .typeMismatch(_, c): return "\(at(c.codingPath)) has the wrong type (\(c.debugDescription))"
        case let .valueNotFound(_, c): return "\(at(c.codingPath)) is null"
        case let .dataCorrupted(c): return c.codingPath.isEmpty ? "not JSON (\(c.debugDescription))" : "\(at(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }

    /// Checks every pattern's fields: per-expert tensors need `{layer}` and `{expert}`, per-layer
    /// tensors `{layer}` and no `{expert}`, each field at most once and no unknown `{field}`; a
    /// layer needs its experts' gate projections (per expert or fused).
    /// - Throws: `LayoutError.badLayoutFile` naming the key and what is wrong.
    public func validate(file: String) throws(LayoutError) {
        func check(_ key: String, _ p: NamePattern?, expert: Bool) throws(LayoutError) {
            guard let p else { return }
            if let unknown = p.unknownFields.first {
                throw .badLayoutFile(file: file, reason: "'\(key)': unknown field '{\(unknown)}' (only {layer} and {expert} exist)")
            }
            guard p.count(.layer) == 1 else {
                throw .badLayoutFile(file: file, reason: "'\(key)': the pattern '\(p.text)' must contain {layer} exactly once")
            }
            if expert {
                guard p.count(.expert) == 1 else {
                    throw .badLayoutFile(file: file, reason: "'\(key)': the pattern '\(p.text)' must contain {expert} exactly once (one tensor per expert)")
                }
            } else if p.count(.expert) > 0 {
                throw .badLayoutFile(file: file, reason: "'\(key)': the pattern '\(p.text)' is one tensor per layer and must not contain {expert}")
            }
        }
        try check("layerPrefix", layerPrefix, expert: false)
        try check("router", router, expert: false)
        try check("expertGate", expertGate, expert: true)
        try check("expertUp", expertUp, expert: true)
        try check("expertDown", expertDown, expert: true)
        try check("fusedGateUp", fusedGateUp, expert: false)
        try check("fusedDown", fusedDown, expert: false)
        try check("sharedGate", sharedGate, expert: false)
        try check("sharedUp", sharedUp, expert: false)
        try check("sharedDown", sharedDown, expert: false)
        try check("sharedExpertGate", sharedExpertGate, expert: false)
        try check("scoreCorrectionBias", scoreCorrectionBias, expert: false)
        try check("denseGate", denseGate, expert: false)
        guard expertGate != nil || fusedGateUp != nil else {
            throw .badLayoutFile(file: file, reason: "needs 'expertGate' (one tensor per expert) or 'fusedGateUp': ERC probes the experts' gate projections")
        }
        if expertGate != nil && fusedGateUp != nil {
            throw .badLayoutFile(file: file, reason: "gives both 'expertGate' and 'fusedGateUp'; a layer stores its experts one way")
        }
        if let k = topK, k < 1 { throw .badLayoutFile(file: file, reason: "'topK' must be at least 1") }
    }

    // MARK: - Built-in families

    static let mlp = "model.layers.{layer}.mlp."

    /// OLMoE (and the same naming in Qwen3-MoE and DeepSeek-V2 routed experts).
    public static let olmoe = LayoutSpec(
        family: "olmoe", router: mlp + "gate.weight",
        expertGate: mlp + "experts.{expert}.gate_proj.weight", expertUp: mlp + "experts.{expert}.up_proj.weight",
        expertDown: mlp + "experts.{expert}.down_proj.weight",
        fusedGateUp: mlp + "experts.gate_up_proj", fusedDown: mlp + "experts.down_proj",
        denseGate: mlp + "gate_proj.weight", scoring: .softmax)

    /// Mixtral: `block_sparse_moe`, experts' `w1` (gate), `w3` (up), `w2` (down).
    public static let mixtral = LayoutSpec(
        family: "mixtral", router: "model.layers.{layer}.block_sparse_moe.gate.weight",
        expertGate: "model.layers.{layer}.block_sparse_moe.experts.{expert}.w1.weight",
        expertUp: "model.layers.{layer}.block_sparse_moe.experts.{expert}.w3.weight",
        expertDown: "model.layers.{layer}.block_sparse_moe.experts.{expert}.w2.weight",
        fusedGateUp: "model.layers.{layer}.block_sparse_moe.experts.gate_up_proj",
        fusedDown: "model.layers.{layer}.block_sparse_moe.experts.down_proj", scoring: .softmax)

    /// Qwen2-MoE: OLMoE naming plus one shared expert and its sigmoid gate; dense layers possible.
    public static let qwen2Moe: LayoutSpec = {
        var s = olmoe
        s.family = "qwen2_moe"
        s.sharedGate = NamePattern(mlp + "shared_expert.gate_proj.weight")
        s.sharedUp = NamePattern(mlp + "shared_expert.up_proj.weight")
        s.sharedDown = NamePattern(mlp + "shared_expert.down_proj.weight")
        s.sharedExpertGate = NamePattern(mlp + "shared_expert_gate.weight")
        return s
    }()

    /// FlexOlmo (what OLMo-core's Hugging Face export writes for MoE models): OLMoE naming.
    public static let flexOlmo: LayoutSpec = {
        var s = olmoe; s.family = "flex_olmo"; return s
    }()

    /// Qwen3-MoE: OLMoE naming, no shared expert.
    public static let qwen3Moe: LayoutSpec = {
        var s = olmoe; s.family = "qwen3_moe"; return s
    }()

    /// DeepSeek-V2: shared experts (plural), dense first layers.
    public static let deepseekV2: LayoutSpec = {
        var s = olmoe
        s.family = "deepseek_v2"
        s.sharedGate = NamePattern(mlp + "shared_experts.gate_proj.weight")
        s.sharedUp = NamePattern(mlp + "shared_experts.up_proj.weight")
        s.sharedDown = NamePattern(mlp + "shared_experts.down_proj.weight")
        return s
    }()

    /// DeepSeek-V3: as V2 plus the score-correction bias and sigmoid scoring.
    public static let deepseekV3: LayoutSpec = {
        var s = deepseekV2
        s.family = "deepseek_v3"
        s.scoreCorrectionBias = NamePattern(mlp + "gate.e_score_correction_bias")
        s.scoring = .sigmoid
        return s
    }()

    /// The built-in families, in the order names are tried when the config does not say.
    public static let builtIn: [LayoutSpec] = [deepseekV3, qwen2Moe, deepseekV2, mixtral, olmoe, qwen3Moe]

    /// The built-in spec for a `model_type`, if known.
    public static func forModelType(_ t: String) -> LayoutSpec? {
        switch t {
        case "olmoe": return olmoe
        case "flex_olmo": return flexOlmo
        case "mixtral": return mixtral
        case "qwen2_moe": return qwen2Moe
        case "qwen3_moe": return qwen3Moe
        case "deepseek_v2": return deepseekV2
        case "deepseek_v3": return deepseekV3
        default: return nil
        }
    }
}

/// Errors of the layout layer; each names the checkpoint.
public enum LayoutError: SettingNamingError, Sendable {
    /// No family's names fit: lists the names that could not be placed.
    case unrecognized(file: String, unplaced: [String], total: Int)
    /// A layout file could not be used.
    case badLayoutFile(file: String, reason: String)
    /// A layer's tensors are inconsistent in a way that stops an analysis.
    case inconsistent(file: String, reason: String)
    /// A layout file was given, but no tensor matches its router pattern.
    case layoutDoesNotFit(file: String, router: String)
    /// The checkpoint has no MoE layer (with the problems that kept layers out).
    case noMoELayers(file: String, problems: [String])
    /// Layers were asked for that are not MoE layers.
    case notMoELayers(file: String, asked: [Int], available: [Int])

    public func description(naming name: (Setting) -> String) -> String {
        switch self {
        case let .unrecognized(f, names, total):
            let shown = names.prefix(8).map(quoted).joined(separator: ", ")
            let more = total > 8 ? " and \(total - 8) more" : ""
            return "\(f): no known MoE layout fits; could not place \(shown)\(more) (write a layout file and pass it as \(name(.layoutFile)), see docs/layout-file.md)"
        case let .badLayoutFile(f, r): return "\(f): \(r)"
        case let .inconsistent(f, r): return "\(f): \(r)"
        case let .layoutDoesNotFit(f, router):
            return
                "\(f): no tensor matches the layout file's router pattern '\(router)'; check the pattern against the checkpoint's tensor names"
        case let .noMoELayers(f, problems):
            return "\(f): no MoE layer found" + (problems.isEmpty ? "" : " (\(problems.joined(separator: "; ")))")
        case let .notMoELayers(f, asked, available):
            return
                "\(f): layer(s) \(asked.map(String.init).joined(separator: ", ")) are not MoE layers (MoE layers: \(available.map(String.init).joined(separator: ", ")))"
        }
    }
}

/// The settings of the layout layer that messages name.
extension Setting {
    /// A layout file that places a checkpoint's tensors (docs/layout-file.md).
    package static let layoutFile: Setting = "layoutFile"
}

/// How a router turns its logits into expert weights.
public enum RouterScoring: String, Sendable, Codable, CaseIterable {
    /// softmax over the n logits (OLMoE, Mixtral, Qwen, DeepSeek-V2).
    case softmax
    /// an independent sigmoid per expert (DeepSeek-V3).
    case sigmoid

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let s = RouterScoring(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "must be softmax or sigmoid, not '\(text)'"))
        }
        self = s
    }
}
