import Checkpoints
import Dispatch
import Foundation
import Tensors

/// Random DeepSeek-V3 checkpoints with the real checkpoint's tensor names, dtypes and
/// `config.json`: FP8 (F8_E4M3) linear weights with float32 128x128 `weight_scale_inv` blocks,
/// BF16 embeddings, head, norms and routers, float32 score-correction biases. For measuring the
/// analyses at DeepSeek-V3 scale without downloading it.
///
/// Not written: the multi-token-prediction module (the real checkpoint's layer 61), so the
/// config says `num_nextn_predict_layers: 0`; and `auto_map` (no remote code ships with it).
public struct SyntheticDeepseekV3: Sendable {
    /// The model shape, in the config's terms.
    public struct Shape: Sendable, Equatable {
        public var vocabSize: Int, hiddenSize: Int
        /// Intermediate size of the dense layers' MLP (`intermediate_size`).
        public var denseIntermediateSize: Int
        /// Intermediate size D of each routed expert (`moe_intermediate_size`).
        public var expertIntermediateSize: Int
        /// Dense layers first (`first_k_dense_replace`), then MoE layers.
        public var denseLayers: Int, moeLayers: Int
        public var heads: Int
        /// Routed experts n, shared experts (of size D each, stored as one MLP), experts per token.
        public var experts: Int, sharedExperts: Int, topK: Int
        /// Group-limited routing: `n_group` groups, the best `topk_group` of them searched.
        public var groups: Int, topGroups: Int
        /// Multi-head latent attention sizes.
        public var qLoraRank: Int, kvLoraRank: Int, qkNopeHeadDim: Int, qkRopeHeadDim: Int, vHeadDim: Int

        public init(
            vocabSize: Int, hiddenSize: Int, denseIntermediateSize: Int, expertIntermediateSize: Int,
            denseLayers: Int, moeLayers: Int, heads: Int, experts: Int, sharedExperts: Int, topK: Int,
            groups: Int, topGroups: Int, qLoraRank: Int, kvLoraRank: Int,
            qkNopeHeadDim: Int, qkRopeHeadDim: Int, vHeadDim: Int
        ) {
            self.vocabSize = vocabSize; self.hiddenSize = hiddenSize
            self.denseIntermediateSize = denseIntermediateSize; self.expertIntermediateSize = expertIntermediateSize
            self.denseLayers = denseLayers; self.moeLayers = moeLayers; self.heads = heads
            self.experts = experts; self.sharedExperts = sharedExperts; self.topK = topK
            self.groups = groups; self.topGroups = topGroups
            self.qLoraRank = qLoraRank; self.kvLoraRank = kvLoraRank
            self.qkNopeHeadDim = qkNopeHeadDim; self.qkRopeHeadDim = qkRopeHeadDim; self.vHeadDim = vHeadDim
        }

        /// DeepSeek-V3 (671B): d 7168, D 2048, 3 dense + 58 MoE layers, 256 routed experts
        /// (8 groups, 4 searched) and 1 shared, top-8, 128 heads, vocab 129280.
        public static let deepseekV3 = Shape(
            vocabSize: 129280, hiddenSize: 7168, denseIntermediateSize: 18432, expertIntermediateSize: 2048,
            denseLayers: 3, moeLayers: 58, heads: 128, experts: 256, sharedExperts: 1, topK: 8,
            groups: 8, topGroups: 4, qLoraRank: 1536, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128)

        /// A tiny one for tests: sizes that leave partial 128x128 blocks (d 160, D 136).
        public static let tiny = Shape(
            vocabSize: 256, hiddenSize: 160, denseIntermediateSize: 192, expertIntermediateSize: 136,
            denseLayers: 1, moeLayers: 2, heads: 2, experts: 8, sharedExperts: 1, topK: 2,
            groups: 2, topGroups: 1, qLoraRank: 32, kvLoraRank: 16, qkNopeHeadDim: 8, qkRopeHeadDim: 8, vHeadDim: 8)

        /// Decoder layers (`num_hidden_layers`).
        public var layers: Int { denseLayers + moeLayers }

        /// Why this shape is not a DeepSeek-V3 model, or nil; the settings are named by `Shape`'s
        /// properties.
        public var problem: SettingMessage? {
            let positive: [(String, Int)] = [
                ("vocabSize", vocabSize), ("hiddenSize", hiddenSize), ("denseIntermediateSize", denseIntermediateSize),
                ("expertIntermediateSize", expertIntermediateSize), ("moeLayers", moeLayers), ("heads", heads), ("experts", experts),
                ("topK", topK), ("groups", groups), ("topGroups", topGroups), ("qLoraRank", qLoraRank),
                ("kvLoraRank", kvLoraRank), ("qkNopeHeadDim", qkNopeHeadDim), ("qkRopeHeadDim", qkRopeHeadDim), ("vHeadDim", vHeadDim),
            ]
            func the(_ name: String) -> Setting { Setting(name) }
            if let (name, _) = positive.first(where: { $0.1 <= 0 }) {
                return name == "moeLayers"
                    ? "\(the(name)) (MoE layers) must be at least 1: ERC is measured on MoE layers" : "\(the(name)) must be positive"
            }
            if denseLayers < 0 { return "\(the("denseLayers")) must not be negative" }
            if sharedExperts < 0 { return "\(the("sharedExperts")) must not be negative" }
            if experts % groups != 0 {
                return "\(the("experts")) \(experts) is not divisible by \(the("groups")) \(groups) (group-limited routing splits the experts evenly)"
            }
            if topGroups > groups { return "\(the("topGroups")) \(topGroups) exceeds \(the("groups")) \(groups)" }
            if topK > topGroups * (experts / groups) {
                return "\(the("topK")) \(topK) exceeds the \(topGroups * (experts / groups)) experts in the \(topGroups) searched group(s)"
            }
            if qkRopeHeadDim % 2 != 0 { return "\(the("qkRopeHeadDim")) \(qkRopeHeadDim) must be even (rotary pairs)" }
            return nil
        }
    }

    public var shape: Shape
    /// Standard deviation of the weights (transformers' `initializer_range`).
    public var initStd: Float = 0.02
    public var seed: UInt64

    public init(shape: Shape, seed: UInt64 = 0) { self.shape = shape; self.seed = seed }

    /// The edge of the square blocks that share one scale (`weight_block_size`).
    public static let blockSize = 128
    /// The largest finite F8_E4M3 value: each block's largest magnitude is stored as it.
    static let fp8Max: Float = 448

    /// The `config.json`: the real checkpoint's keys (transformers v4 spelling, `rope_scaling`
    /// yarn with factor 40), with this shape's sizes.
    public var config: JSONValue {
        let s = shape
        return .object([
            ("architectures", .array([.string("DeepseekV3ForCausalLM")])),
            ("attention_bias", .bool(false)),
            ("attention_dropout", .number(0)),
            ("bos_token_id", .int(0)),
            ("eos_token_id", .int(min(1, s.vocabSize - 1))),
            ("ep_size", .int(1)),
            ("first_k_dense_replace", .int(s.denseLayers)),
            ("hidden_act", .string("silu")),
            ("hidden_size", .int(s.hiddenSize)),
            ("initializer_range", .number(Double(initStd))),
            ("intermediate_size", .int(s.denseIntermediateSize)),
            ("kv_lora_rank", .int(s.kvLoraRank)),
            ("max_position_embeddings", .int(163840)),
            ("model_type", .string("deepseek_v3")),
            ("moe_intermediate_size", .int(s.expertIntermediateSize)),
            ("moe_layer_freq", .int(1)),
            ("n_group", .int(s.groups)),
            ("n_routed_experts", .int(s.experts)),
            ("n_shared_experts", .int(s.sharedExperts)),
            ("norm_topk_prob", .bool(true)),
            ("num_attention_heads", .int(s.heads)),
            ("num_experts_per_tok", .int(s.topK)),
            ("num_hidden_layers", .int(s.layers)),
            ("num_key_value_heads", .int(s.heads)),
            ("num_nextn_predict_layers", .int(0)),
            ("q_lora_rank", .int(s.qLoraRank)),
            ("qk_nope_head_dim", .int(s.qkNopeHeadDim)),
            ("qk_rope_head_dim", .int(s.qkRopeHeadDim)),
            (
                "quantization_config",
                .object([
                    ("activation_scheme", .string("dynamic")),
                    ("fmt", .string("e4m3")),
                    ("quant_method", .string("fp8")),
                    ("weight_block_size", .array([.int(Self.blockSize), .int(Self.blockSize)])),
                ])
            ),
            ("rms_norm_eps", .number(1e-6)),
            (
                "rope_scaling",
                .object([
                    ("beta_fast", .int(32)), ("beta_slow", .int(1)), ("factor", .int(40)), ("mscale", .number(1)),
                    ("mscale_all_dim", .number(1)), ("original_max_position_embeddings", .int(4096)), ("type", .string("yarn")),
                ])
            ),
            ("rope_theta", .int(10000)),
            ("routed_scaling_factor", .number(2.5)),
            ("scoring_func", .string("sigmoid")),
            ("tie_word_embeddings", .bool(false)),
            ("topk_group", .int(s.topGroups)),
            ("topk_method", .string("noaux_tc")),
            ("torch_dtype", .string("bfloat16")),
            ("use_cache", .bool(true)),
            ("v_head_dim", .int(s.vHeadDim)),
            ("vocab_size", .int(s.vocabSize)),
        ])
    }

    /// Every tensor, in the real checkpoint's order within a layer: each FP8 weight followed by its
    /// `weight_scale_inv` [ceil(out/128), ceil(in/128)] (float32).
    public var specs: [TensorSpec] {
        let s = shape, d = s.hiddenSize
        var out = [TensorSpec(name: "model.embed_tokens.weight", dtype: .bf16, shape: [s.vocabSize, d])]
        func linear(_ name: String, _ rows: Int, _ columns: Int) {
            out.append(TensorSpec(name: name + ".weight", dtype: .f8e4m3, shape: [rows, columns]))
            out.append(TensorSpec(name: name + ".weight_scale_inv", dtype: .f32, shape: [Self.blocks(rows), Self.blocks(columns)]))
        }
        func mlp(_ prefix: String, _ intermediate: Int) {
            linear(prefix + "down_proj", d, intermediate)
            linear(prefix + "gate_proj", intermediate, d)
            linear(prefix + "up_proj", intermediate, d)
        }
        let qk = s.qkNopeHeadDim + s.qkRopeHeadDim
        for l in 0..<s.layers {
            let p = "model.layers.\(l)."
            out.append(TensorSpec(name: p + "input_layernorm.weight", dtype: .bf16, shape: [d]))
            if l < s.denseLayers {
                mlp(p + "mlp.", s.denseIntermediateSize)
            } else {
                for e in 0..<s.experts { mlp(p + "mlp.experts.\(e).", s.expertIntermediateSize) }
                out.append(TensorSpec(name: p + "mlp.gate.e_score_correction_bias", dtype: .f32, shape: [s.experts]))
                out.append(TensorSpec(name: p + "mlp.gate.weight", dtype: .bf16, shape: [s.experts, d]))
                if s.sharedExperts > 0 { mlp(p + "mlp.shared_experts.", s.expertIntermediateSize * s.sharedExperts) }
            }
            out.append(TensorSpec(name: p + "post_attention_layernorm.weight", dtype: .bf16, shape: [d]))
            out.append(TensorSpec(name: p + "self_attn.kv_a_layernorm.weight", dtype: .bf16, shape: [s.kvLoraRank]))
            linear(p + "self_attn.kv_a_proj_with_mqa", s.kvLoraRank + s.qkRopeHeadDim, d)
            linear(p + "self_attn.kv_b_proj", s.heads * (s.qkNopeHeadDim + s.vHeadDim), s.kvLoraRank)
            linear(p + "self_attn.o_proj", d, s.heads * s.vHeadDim)
            linear(p + "self_attn.q_a_proj", s.qLoraRank, d)
            out.append(TensorSpec(name: p + "self_attn.q_a_layernorm.weight", dtype: .bf16, shape: [s.qLoraRank]))
            linear(p + "self_attn.q_b_proj", s.heads * qk, s.qLoraRank)
        }
        out.append(TensorSpec(name: "model.norm.weight", dtype: .bf16, shape: [d]))
        out.append(TensorSpec(name: "lm_head.weight", dtype: .bf16, shape: [s.vocabSize, d]))
        return out
    }

    static func blocks(_ n: Int) -> Int { (n + blockSize - 1) / blockSize }

    /// Writes the checkpoint folder `path` (created atomically; must not exist unless `overwrite`),
    /// in shards of at most `maxShardBytes` with an index, one tensor at a time.
    ///
    /// Norm weights are ones and score-correction biases zeros (transformers' init). Every other
    /// weight is w ~ N(0, initStd^2) drawn in bands of 128 rows, band b of tensor t from
    /// `SeededGenerator(seed).split(t << 24 | b)` (so the bytes do not depend on the thread
    /// count). FP8 weights are then quantised as DeepSeek's own block quantiser does: per 128x128
    /// block, `scale_inv = amax(|w|) / 448` and the stored code is `fp8(w / scale_inv)` (round to
    /// nearest even), so each block's largest magnitude is stored as 448 and the dequantised
    /// weights `fp8 * scale_inv` are w up to FP8 rounding (relative error at most 2^-4, well
    /// under 1% on the standard deviation): std `initStd`, as a real init. A scale is written
    /// before its weight (safetensors orders float32 first), so each FP8 weight is drawn twice.
    public func write(
        to path: String, maxShardBytes: Int = 5_000_000_000, overwrite: Bool = false,
        progress: (String, Int) -> Void = { _, _ in }
    ) throws {
        let all = specs
        let order = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1.name, $0) })
        let shapes = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0.shape) })
        let root = SeededGenerator(seed: seed)
        let std = initStd
        try AtomicOutput.buildFolder(at: path, replace: overwrite) { tmp in
            try SafetensorsWriter.writeFolder(all, folder: tmp, maxShardBytes: maxShardBytes) { spec, buffer in
                progress(spec.name, spec.byteCount)
                if spec.name.hasSuffix("norm.weight") {
                    SyntheticCheckpoint.fill(spec, buffer, with: 1)
                } else if spec.name.hasSuffix("e_score_correction_bias") {
                    SyntheticCheckpoint.fill(spec, buffer, with: 0)
                } else if spec.name.hasSuffix(".weight_scale_inv") {
                    let weight = String(spec.name.dropLast("_scale_inv".count))
                    guard let shape = shapes[weight], let key = order[weight] else {
                        throw CheckpointError.malformed(file: path, reason: "'\(spec.name)' has no weight beside it")
                    }
                    Self.quantise(
                        rows: shape[0], columns: shape[1], std: std, generator: root, key: UInt64(key),
                        codes: nil, scales: buffer.bindMemory(to: Float.self))
                } else if spec.dtype == .f8e4m3 {
                    Self.quantise(
                        rows: spec.shape[0], columns: spec.shape[1], std: std, generator: root,
                        key: UInt64(order[spec.name] ?? 0), codes: buffer.bindMemory(to: UInt8.self), scales: nil)
                } else {
                    SyntheticCheckpoint.fillNormal(spec, buffer, std: std, root: root, key: UInt64(order[spec.name] ?? 0))
                }
            }
            try AtomicOutput.write(config.serialized(pretty: true) + "\n", to: tmp + "/config.json")
        }
    }

    /// Draws a [rows, columns] normal weight band by band (128 rows each, in parallel) and
    /// quantises it in 128x128 blocks: writes the FP8 codes [rows, columns] into `codes` and/or the
    /// block scales [ceil(rows/128), ceil(columns/128)] into `scales`.
    static func quantise(
        rows: Int, columns: Int, std: Float, generator: SeededGenerator, key: UInt64,
        codes: UnsafeMutableBufferPointer<UInt8>?, scales: UnsafeMutableBufferPointer<Float>?
    ) {
        let bands = blocks(rows), blockColumns = blocks(columns)
        let out = UnsafeShared((codes?.baseAddress, scales?.baseAddress))
        DispatchQueue.concurrentPerform(iterations: bands) { b in
            let (codeBase, scaleBase) = out.value
            let first = b * blockSize, height = min(blockSize, rows - first)
            var g = generator.split(key << 24 | UInt64(b))
            let w = UnsafeMutableBufferPointer<Float>.allocate(capacity: height * columns)
            let amax = UnsafeMutableBufferPointer<Float>.allocate(capacity: blockColumns)
            defer { w.deallocate(); amax.deallocate() }
            g.fillNormal(w, std: std)
            for k in 0..<blockColumns {
                var m: Float = 0
                for r in 0..<height {
                    for c in (k * blockSize)..<min(columns, (k + 1) * blockSize) { m = max(m, abs(w[r * columns + c])) }
                }
                // scale_inv = amax / 448 (1 for an all-zero block, which N(0, std^2) never gives)
                amax[k] = m > 0 ? m / fp8Max : 1
            }
            if let scaleBase { for k in 0..<blockColumns { scaleBase[b * blockColumns + k] = amax[k] } }
            guard let codeBase else { return }
            for r in 0..<height {
                let row = codeBase + (first + r) * columns
                for k in 0..<blockColumns {
                    let scale = amax[k]
                    for c in (k * blockSize)..<min(columns, (k + 1) * blockSize) { row[c] = Conversion.f8e4m3Code(w[r * columns + c] / scale) }
                }
            }
        }
    }
}
