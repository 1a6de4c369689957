import Checkpoints
import Dispatch
import Foundation
import Tensors

/// Random OLMoE-layout checkpoints of a named or given shape, for testing pipelines at full size
/// without downloading anything.
public struct SyntheticCheckpoint: Sendable {
    /// The model shape.
    public struct Shape: Sendable, Equatable {
        public var vocabSize: Int, hiddenSize: Int, intermediateSize: Int, layers: Int
        public var heads: Int, kvHeads: Int, experts: Int, topK: Int

        public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int, kvHeads: Int, experts: Int, topK: Int) {
            self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
            self.layers = layers; self.heads = heads; self.kvHeads = kvHeads; self.experts = experts; self.topK = topK
        }

        /// OLMoE-1B-7B: d 2048, D 1024, 16 layers, 64 experts, top-8, vocab 50304 (about 6.9B parameters).
        public static let olmoe1B7B = Shape(
            vocabSize: 50304, hiddenSize: 2048, intermediateSize: 1024, layers: 16, heads: 16, kvHeads: 16, experts: 64, topK: 8)
        /// A tiny model for tests and demos.
        public static let tiny = Shape(vocabSize: 256, hiddenSize: 64, intermediateSize: 32, layers: 2, heads: 4, kvHeads: 4, experts: 8, topK: 2)

        /// A preset by name (`olmoe-1b-7b`, `tiny`).
        public static func named(_ n: String) -> Shape? {
            switch n.lowercased() {
            case "olmoe-1b-7b", "olmoe": return olmoe1B7B
            case "tiny": return tiny
            default: return nil
            }
        }
    }

    public var shape: Shape
    /// Stored dtype of the weights.
    public var dtype: DType
    /// Standard deviation of the normal weights (transformers' `initializer_range`).
    public var initStd: Float = 0.02
    public var seed: UInt64

    public init(shape: Shape, dtype: DType = .bf16, seed: UInt64 = 0) { self.shape = shape; self.dtype = dtype; self.seed = seed }

    /// The `config.json` of an `OlmoeForCausalLM` of this shape (transformers v5 keys).
    public var config: JSONValue {
        let s = shape
        return .object([
            ("architectures", .array([.string("OlmoeForCausalLM")])),
            ("attention_bias", .bool(false)),
            ("attention_dropout", .number(0)),
            ("clip_qkv", .null),
            ("dtype", .string(dtype == .bf16 ? "bfloat16" : dtype == .f16 ? "float16" : "float32")),
            ("eos_token_id", .int(min(50279, s.vocabSize - 1))),
            ("hidden_act", .string("silu")),
            ("hidden_size", .int(s.hiddenSize)),
            ("initializer_range", .number(Double(initStd))),
            ("intermediate_size", .int(s.intermediateSize)),
            ("max_position_embeddings", .int(4096)),
            ("model_type", .string("olmoe")),
            ("norm_topk_prob", .bool(false)),
            ("num_attention_heads", .int(s.heads)),
            ("num_experts", .int(s.experts)),
            ("num_experts_per_tok", .int(s.topK)),
            ("num_hidden_layers", .int(s.layers)),
            ("num_key_value_heads", .int(s.kvHeads)),
            ("output_router_logits", .bool(false)),
            ("pad_token_id", .int(1)),
            ("rms_norm_eps", .number(1e-5)),
            ("rope_parameters", .object([("rope_theta", .number(10000)), ("rope_type", .string("default"))])),
            ("router_aux_loss_coef", .number(0.01)),
            ("tie_word_embeddings", .bool(false)),
            ("vocab_size", .int(s.vocabSize)),
        ])
    }

    /// Every tensor of the model, in the order transformers lists them.
    public var specs: [TensorSpec] {
        let s = shape, d = s.hiddenSize, D = s.intermediateSize
        let hd = d / s.heads
        var out = [TensorSpec(name: "model.embed_tokens.weight", dtype: dtype, shape: [s.vocabSize, d])]
        for l in 0..<s.layers {
            let p = "model.layers.\(l)."
            out += [
                TensorSpec(name: p + "self_attn.q_proj.weight", dtype: dtype, shape: [d, d]),
                TensorSpec(name: p + "self_attn.k_proj.weight", dtype: dtype, shape: [s.kvHeads * hd, d]),
                TensorSpec(name: p + "self_attn.v_proj.weight", dtype: dtype, shape: [s.kvHeads * hd, d]),
                TensorSpec(name: p + "self_attn.o_proj.weight", dtype: dtype, shape: [d, d]),
                TensorSpec(name: p + "self_attn.q_norm.weight", dtype: dtype, shape: [d]),
                TensorSpec(name: p + "self_attn.k_norm.weight", dtype: dtype, shape: [s.kvHeads * hd]),
                TensorSpec(name: p + "mlp.gate.weight", dtype: dtype, shape: [s.experts, d]),
            ]
            for e in 0..<s.experts {
                out += [
                    TensorSpec(name: p + "mlp.experts.\(e).gate_proj.weight", dtype: dtype, shape: [D, d]),
                    TensorSpec(name: p + "mlp.experts.\(e).up_proj.weight", dtype: dtype, shape: [D, d]),
                    TensorSpec(name: p + "mlp.experts.\(e).down_proj.weight", dtype: dtype, shape: [d, D]),
                ]
            }
            out += [
                TensorSpec(name: p + "input_layernorm.weight", dtype: dtype, shape: [d]),
                TensorSpec(name: p + "post_attention_layernorm.weight", dtype: dtype, shape: [d]),
            ]
        }
        out += [
            TensorSpec(name: "model.norm.weight", dtype: dtype, shape: [d]),
            TensorSpec(name: "lm_head.weight", dtype: dtype, shape: [s.vocabSize, d]),
        ]
        return out
    }

    /// Writes the checkpoint folder `path` (created atomically; must not exist unless `overwrite`).
    /// Norm weights are ones; every other weight is normal with std `initStd`, drawn in fixed
    /// chunks from generators split off `seed` by tensor and chunk, so the bytes do not depend on
    /// the thread count.
    public func write(
        to path: String, maxShardBytes: Int = 5_000_000_000, overwrite: Bool = false,
        progress: (String, Int) -> Void = { _, _ in }
    ) throws {
        let all = specs
        let order = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1.name, $0) })
        let root = SeededGenerator(seed: seed)
        try AtomicOutput.buildFolder(at: path, replace: overwrite) { tmp in
            try SafetensorsWriter.writeFolder(all, folder: tmp, maxShardBytes: maxShardBytes) { spec, buffer in
                progress(spec.name, spec.byteCount)
                if spec.name.hasSuffix("norm.weight") {
                    SyntheticCheckpoint.fill(spec, buffer, with: 1)
                } else {
                    SyntheticCheckpoint.fillNormal(spec, buffer, std: initStd, root: root, key: UInt64(order[spec.name] ?? 0))
                }
            }
            try AtomicOutput.write(config.serialized(pretty: true) + "\n", to: tmp + "/config.json")
        }
    }

    /// Fills `buffer` with `spec`'s elements all equal to `value`, in its dtype.
    static func fill(_ spec: TensorSpec, _ buffer: UnsafeMutableRawBufferPointer, with value: Float) {
        let count = spec.shape.reduce(1, *)
        var values = [Float](repeating: value, count: count)
        values.withUnsafeMutableBufferPointer { v in
            if let s = v.baseAddress, let d = buffer.baseAddress { Conversion.encode(spec.dtype, from: s, count: count, into: d) }
        }
    }

    /// Fills `buffer` with normal draws of std `std` in `spec`'s dtype, drawn in chunks of 2^20
    /// elements on every core, chunk c from `root.split(key << 24 | c)`: the bytes do not depend
    /// on the thread count.
    static func fillNormal(_ spec: TensorSpec, _ buffer: UnsafeMutableRawBufferPointer, std: Float, root: SeededGenerator, key: UInt64) {
        let count = spec.shape.reduce(1, *)
        let chunk = 1 << 20
        let chunks = (count + chunk - 1) / chunk
        let out = UnsafeShared(buffer.baseAddress)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let start = c * chunk, n = min(chunk, count - start)
            var g = root.split(key << 24 | UInt64(c))
            let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
            defer { values.deallocate() }
            g.fillNormal(values, std: std)
            if let base = out.value, let src = values.baseAddress {
                Conversion.encode(spec.dtype, from: src, count: n, into: base + start * spec.dtype.byteSize)
            }
        }
    }
}
