import Checkpoints
import Foundation

/// The model part of an OLMo-core run's `config.json` (the experiment config that OLMo-core's
/// `ConfigSaverCallback` writes into every step folder: `{"model": {...}, "train_module": ...}`),
/// reduced to what reading and exporting an MoE needs.
public struct OLMoCoreModelConfig: Sendable, Equatable {
    /// OLMo-core's MoE implementations; they store `w1`/`w3` differently.
    public enum MoEType: String, Sendable {
        /// `DroplessMoEMLP`: w1, w3 [n*D, d]; expert e's W_g is rows e*D..<(e+1)*D.
        case dropless
        /// `MoEMLP`: w1, w3 [n*d, D]; expert e's W_g is the transpose of rows e*d..<(e+1)*d.
        case `default`
    }

    /// Where it was read.
    public var source: String
    /// `model.block.feed_forward_moe.name`.
    public var moeType: MoEType
    /// Experts n.
    public var expertCount: Int
    /// Expert intermediate size D (`feed_forward_moe.hidden_size`).
    public var intermediateSize: Int
    /// Model width d (`d_model`).
    public var hiddenSize: Int
    /// Decoder layers.
    public var layerCount: Int
    /// Experts per token (`router.top_k`).
    public var topK: Int
    /// `router.gating_function` (`softmax` or `sigmoid`).
    public var gatingFunction: String
    /// Rows of the embedding (`vocab_size`).
    public var vocabSize: Int
    /// Attention heads and key/value heads.
    public var headCount: Int
    public var keyValueHeadCount: Int
    /// Block type, e.g. `moe_reordered_norm` (the OLMoE preset) or `moe`.
    public var blockName: String
    /// RoPE base, if the attention uses RoPE.
    public var ropeTheta: Double?
    /// RMSNorm epsilon of the block norms.
    public var normEpsilon: Double?
    /// Whether `lm_head` shares the embedding.
    public var tieWordEmbeddings: Bool
    /// The whole model config object, for checks the export makes.
    public var model: JSONValue
    /// The whole experiment config.
    public var experiment: JSONValue

    /// Reads the OLMo-core model config from `json` (an experiment config with a `model` object,
    /// or a bare model config). Returns nil when `json` is not an OLMo-core config at all.
    /// - Throws: `LayoutError.inconsistent` when it is one but does not name a known MoE type or
    ///   lacks a size: the layout of `w1`/`w3` depends on the type, which is never guessed.
    public init?(json: JSONValue, source: String) throws(LayoutError) {
        let model: JSONValue
        if let m = json["model"], m["block"] != nil, m["d_model"] != nil {
            model = m
        } else if json["block"] != nil, json["d_model"] != nil {
            model = json
        } else {
            return nil
        }
        func bad(_ r: String) -> LayoutError { .inconsistent(file: source, reason: r) }
        guard let block = model["block"], block.objectPairs != nil else { return nil }
        guard let moe = block["feed_forward_moe"], moe.objectPairs != nil else {
            throw bad("OLMo-core config: model.block has no feed_forward_moe (not an MoE run)")
        }
        guard let name = moe["name"]?.stringValue else {
            throw bad(
                "OLMo-core config: model.block.feed_forward_moe.name is missing, so the storage of w1/w3 (dropless [n*D, d] or default [n*d, D]) is unknown")
        }
        guard let t = MoEType(rawValue: name) else {
            throw bad("OLMo-core config: MoE type '\(name)' is neither 'dropless' nor 'default'; its expert weight layout is not known")
        }
        func int(_ v: JSONValue?, _ what: String) throws(LayoutError) -> Int {
            guard let i = v?.intValue, i > 0 else { throw bad("OLMo-core config: \(what) is missing or not a positive integer") }
            return i
        }
        self.source = source
        moeType = t
        expertCount = try int(moe["num_experts"], "model.block.feed_forward_moe.num_experts")
        intermediateSize = try int(moe["hidden_size"], "model.block.feed_forward_moe.hidden_size")
        hiddenSize = try int(model["d_model"], "model.d_model")
        layerCount = try int(model["n_layers"], "model.n_layers")
        vocabSize = try int(model["vocab_size"], "model.vocab_size")
        topK = try int(moe["router"]?["top_k"] ?? .int(1), "model.block.feed_forward_moe.router.top_k")
        gatingFunction = moe["router"]?["gating_function"]?.stringValue ?? "softmax"
        let attention = block["sequence_mixer"] ?? block["attention"]
        headCount = try int(attention?["n_heads"], "model.block.sequence_mixer.n_heads")
        keyValueHeadCount = attention?["n_kv_heads"]?.intValue ?? headCount
        blockName = block["name"]?.stringValue ?? "default"
        ropeTheta = attention?["rope"]?["theta"]?.doubleValue
        normEpsilon = block["layer_norm"]?["eps"]?.doubleValue
        tieWordEmbeddings = model["tie_word_embeddings"]?.boolValue ?? false
        self.model = model
        experiment = json
    }

    /// The OLMo-core config for `checkpoint`: its own config if it is one, else the first
    /// `config.json` holding one in the checkpoint's folder or the two folders above it (an
    /// unsharded export usually sits beside or below the run's step folder).
    /// - Throws: `LayoutError` when a config is found but is not usable.
    public static func find(for checkpoint: Checkpoint) throws(LayoutError) -> OLMoCoreModelConfig? {
        if let c = checkpoint.config, let s = checkpoint.configSource,
            let parsed = try OLMoCoreModelConfig(json: c.json, source: s)
        {
            return parsed
        }
        var isDir: ObjCBool = false
        var folder = checkpoint.path
        if !(FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) && isDir.boolValue) {
            folder = (folder as NSString).deletingLastPathComponent
        }
        if folder.isEmpty { folder = "." }
        for _ in 0..<3 {
            let p = (folder as NSString).appendingPathComponent("config.json")
            if p != checkpoint.configSource, FileManager.default.fileExists(atPath: p) {
                let c: ModelConfig
                do { c = try ModelConfig(contentsOf: p) } catch { throw .badLayoutFile(file: p, reason: error.description) }
                if let parsed = try OLMoCoreModelConfig(json: c.json, source: p) { return parsed }
            }
            let up = (folder as NSString).deletingLastPathComponent
            if up == folder || up.isEmpty { break }
            folder = up
        }
        return nil
    }
}
