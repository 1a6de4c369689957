import ArgumentParser
import Checkpoints
import Foundation
import MoELayout
import Tensors

extension MoEInspect {
    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a random OLMoE- or DeepSeek-V3-layout checkpoint of a named or given shape.",
            discussion: """
                Presets: olmoe-1b-7b (d 2048, D 1024, 16 layers, 64 experts, top-8, vocab 50304; about
                13.9 GB in bf16, 3 shards, as the real checkpoint) and tiny. Any size option overrides the
                preset. Weights are normal with std 0.02, norms are ones; the same seed gives the same bytes.

                deepseek-v3: the real checkpoint's names, dtypes and config (FP8 e4m3 linear weights with \
                float32 128x128 weight_scale_inv blocks, each block's scale its largest |w| / 448; BF16 \
                embeddings, head, norms and routers), 3 dense layers then --layers MoE layers (default 58, \
                about 673 GB; --layers 2 is 28.5 GB), 256 experts of d 7168, D 2048, without the \
                multi-token-prediction module (num_nextn_predict_layers 0). deepseek-v3-tiny: the same names \
                and config at d 160, D 136, 8 experts, 1 dense + 2 MoE layers.
                """)

        @Option(help: ArgumentHelp("Preset shape: olmoe-1b-7b, tiny, deepseek-v3 or deepseek-v3-tiny.", valueName: "preset"))
        var like: String = "tiny"

        @Argument(help: "Output folder (must not exist unless --overwrite).")
        var output: String

        @Option(help: "Decoder layers (default: the preset's); for deepseek-v3, the MoE layers after the dense ones.") var layers: Int?
        @Option(help: "Routed experts per layer n.") var experts: Int?
        @Option(help: "Experts per token (top-k).") var topK: Int?
        @Option(help: "Hidden size d.") var hidden: Int?
        @Option(help: "Expert intermediate size D.") var intermediate: Int?
        @Option(help: "Vocabulary size.") var vocab: Int?
        @Option(help: "Attention heads (OLMoE: d must be divisible by it).") var heads: Int?
        @Option(help: ArgumentHelp("Stored dtype: bf16 (default), f16 or f32; deepseek-v3 is fp8 only.", valueName: "dtype")) var dtype: String?
        @Option(help: "deepseek-v3: dense layers before the MoE layers (first_k_dense_replace).") var denseLayers: Int?
        @Option(help: "deepseek-v3: intermediate size of the dense layers' MLP.") var denseIntermediate: Int?
        @Option(help: "deepseek-v3: shared experts per MoE layer.") var sharedExperts: Int?
        @Option(help: "deepseek-v3: expert groups (n_group).") var groups: Int?
        @Option(help: "deepseek-v3: groups searched per token (topk_group).") var topGroups: Int?
        @Option(help: "deepseek-v3: query low-rank size (q_lora_rank).") var qLoraRank: Int?
        @Option(help: "deepseek-v3: key-value low-rank size (kv_lora_rank).") var kvLoraRank: Int?
        @Option(help: "deepseek-v3: per-head query/key size without rotary part (qk_nope_head_dim).") var nopeHeadDim: Int?
        @Option(help: "deepseek-v3: per-head rotary size (qk_rope_head_dim).") var ropeHeadDim: Int?
        @Option(help: "deepseek-v3: per-head value size (v_head_dim).") var vHeadDim: Int?
        @Option(help: ArgumentHelp("Largest shard, e.g. 5GB (default), 200MB.", valueName: "size")) var shardSize: String = "5GB"
        @Option(help: "Random seed (default 0).") var seed: UInt64 = 0
        @Flag(help: "Replace OUT if it exists.") var overwrite = false
        @Flag(name: [.short, .long], help: "No progress on stderr.") var quiet = false

        /// Whether the preset is a DeepSeek-V3 one.
        var isDeepseek: Bool { like.lowercased().hasPrefix("deepseek") }

        func shape() throws -> SyntheticCheckpoint.Shape {
            guard var s = SyntheticCheckpoint.Shape.named(like) else {
                throw ValidationError("--like must be olmoe-1b-7b, tiny, deepseek-v3 or deepseek-v3-tiny, not '\(like)'")
            }
            if let v = layers { s.layers = v }
            if let v = experts { s.experts = v }
            if let v = topK { s.topK = v }
            if let v = hidden { s.hiddenSize = v }
            if let v = intermediate { s.intermediateSize = v }
            if let v = vocab { s.vocabSize = v }
            if let v = heads { s.heads = v; s.kvHeads = v }
            return s
        }

        func deepseekShape() throws -> SyntheticDeepseekV3.Shape {
            var s: SyntheticDeepseekV3.Shape
            switch like.lowercased() {
            case "deepseek-v3": s = .deepseekV3
            case "deepseek-v3-tiny": s = .tiny
            default: throw ValidationError("--like must be deepseek-v3 or deepseek-v3-tiny, not '\(like)'")
            }
            if let v = layers { s.moeLayers = v }
            if let v = experts { s.experts = v }
            if let v = topK { s.topK = v }
            if let v = hidden { s.hiddenSize = v }
            if let v = intermediate { s.expertIntermediateSize = v }
            if let v = vocab { s.vocabSize = v }
            if let v = heads { s.heads = v }
            if let v = denseLayers { s.denseLayers = v }
            if let v = denseIntermediate { s.denseIntermediateSize = v }
            if let v = sharedExperts { s.sharedExperts = v }
            if let v = groups { s.groups = v }
            if let v = topGroups { s.topGroups = v }
            if let v = qLoraRank { s.qLoraRank = v }
            if let v = kvLoraRank { s.kvLoraRank = v }
            if let v = nopeHeadDim { s.qkNopeHeadDim = v }
            if let v = ropeHeadDim { s.qkRopeHeadDim = v }
            if let v = vHeadDim { s.vHeadDim = v }
            return s
        }

        func validate() throws {
            guard parseSize(shardSize) != nil else { throw ValidationError("--shard-size '\(shardSize)' is not a positive size such as 5GB") }
            let specs: [TensorSpec]
            if isDeepseek {
                let s = try deepseekShape()
                if let problem = s.problem { throw ValidationError(problem.rendered(naming: CommandLineNames.flag)) }
                if let d = dtype, DType(userSpelling: d) != .f8e4m3 && d.lowercased() != "fp8" {
                    throw ValidationError(
                        "--dtype \(d): deepseek-v3 is stored as the real checkpoint is, FP8 (e4m3) with block scales; --dtype applies to the OLMoE presets")
                }
                specs = SyntheticDeepseekV3(shape: s).specs
            } else {
                let deepseekOnly: [(String, Int?)] = [
                    ("dense-layers", denseLayers), ("dense-intermediate", denseIntermediate), ("shared-experts", sharedExperts),
                    ("groups", groups), ("top-groups", topGroups), ("q-lora-rank", qLoraRank), ("kv-lora-rank", kvLoraRank),
                    ("nope-head-dim", nopeHeadDim), ("rope-head-dim", ropeHeadDim), ("v-head-dim", vHeadDim),
                ]
                if let (name, _) = deepseekOnly.first(where: { $0.1 != nil }) {
                    throw ValidationError("--\(name) applies to --like deepseek-v3 only")
                }
                let s = try shape()
                for (name, v) in [
                    ("layers", s.layers), ("experts", s.experts), ("top-k", s.topK), ("hidden", s.hiddenSize), ("intermediate", s.intermediateSize),
                    ("vocab", s.vocabSize), ("heads", s.heads),
                ] where v <= 0 {
                    throw ValidationError("--\(name) must be positive")
                }
                if s.topK > s.experts { throw ValidationError("--top-k \(s.topK) exceeds --experts \(s.experts)") }
                if s.hiddenSize % s.heads != 0 { throw ValidationError("--hidden \(s.hiddenSize) is not divisible by --heads \(s.heads)") }
                guard let d = DType(userSpelling: dtype ?? "bf16"), [.bf16, .f16, .f32].contains(d) else {
                    throw ValidationError("--dtype must be bf16, f16 or f32")
                }
                specs = SyntheticCheckpoint(shape: s, dtype: .f32).specs
            }
            // Every tensor's byte count (as float32, the widest), and the total, must fit in 64 bits.
            var total = 0
            for spec in specs {
                var c = 4
                for d in spec.shape {
                    let (p, o) = c.multipliedReportingOverflow(by: d)
                    guard !o else { throw ValidationError("tensor '\(spec.name)' of shape \(spec.shape) is too large") }
                    c = p
                }
                let (t, o) = total.addingReportingOverflow(c)
                guard !o else { throw ValidationError("the checkpoint would be too large") }
                total = t
            }
        }

        func run() throws {
            if FileManager.default.fileExists(atPath: output) && !overwrite {
                throw CommandError("\(output): already exists; choose another output or pass --overwrite")
            }
            let total: Int
            let write: (@escaping (String, Int) -> Void) throws -> Void
            let maxShard = parseSize(shardSize) ?? 5_000_000_000
            if isDeepseek {
                let synth = SyntheticDeepseekV3(shape: try deepseekShape(), seed: seed)
                total = synth.specs.reduce(0) { $0 + $1.byteCount }
                write = { try synth.write(to: output, maxShardBytes: maxShard, overwrite: overwrite, progress: $0) }
            } else {
                let synth = SyntheticCheckpoint(shape: try shape(), dtype: DType(userSpelling: dtype ?? "bf16") ?? .bf16, seed: seed)
                total = synth.specs.reduce(0) { $0 + $1.byteCount }
                write = { try synth.write(to: output, maxShardBytes: maxShard, overwrite: overwrite, progress: $0) }
            }
            let progress = Progress(quiet: quiet)
            progress.say("writing \(formatBytes(total)) to \(output)")
            var written = 0, lastReport = 0
            let start = Date()
            try write { _, bytes in
                written += bytes
                if written - lastReport >= 1_000_000_000 {
                    lastReport = written
                    let rate = Double(written) / max(Date().timeIntervalSince(start), 1e-3)
                    progress.say(String(format: "%@ / %@ (%.0f MB/s)", formatBytes(written), formatBytes(total), rate / 1e6))
                }
            }
            progress.say(String(format: "done in %.1f s", Date().timeIntervalSince(start)))
        }
    }
}
