import ArgumentParser
import Checkpoints
import Foundation
import MoELayout
import Tensors

extension MoEInspect {
    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a random OLMoE-layout checkpoint of a named or given shape.",
            discussion: """
            Presets: olmoe-1b-7b (d 2048, D 1024, 16 layers, 64 experts, top-8, vocab 50304; about
            13.9 GB in bf16, 3 shards, as the real checkpoint) and tiny. Any size option overrides the
            preset. Weights are normal with std 0.02, norms are ones; the same seed gives the same bytes.
            """)

        @Option(help: ArgumentHelp("Preset shape: olmoe-1b-7b or tiny.", valueName: "preset"))
        var like: String = "tiny"

        @Argument(help: "Output folder (must not exist unless --overwrite).")
        var output: String

        @Option(help: "Decoder layers (default: the preset's).") var layers: Int?
        @Option(help: "Routed experts per layer n.") var experts: Int?
        @Option(help: "Experts per token (top-k).") var topK: Int?
        @Option(help: "Hidden size d.") var hidden: Int?
        @Option(help: "Expert intermediate size D.") var intermediate: Int?
        @Option(help: "Vocabulary size.") var vocab: Int?
        @Option(help: "Attention heads (d must be divisible by it).") var heads: Int?
        @Option(help: ArgumentHelp("Stored dtype: bf16 (default), f16 or f32.", valueName: "dtype")) var dtype: String = "bf16"
        @Option(help: ArgumentHelp("Largest shard, e.g. 5GB (default), 200MB.", valueName: "size")) var shardSize: String = "5GB"
        @Option(help: "Random seed (default 0).") var seed: UInt64 = 0
        @Flag(help: "Replace OUT if it exists.") var overwrite = false
        @Flag(name: [.short, .long], help: "No progress on stderr.") var quiet = false

        func shape() throws -> SyntheticCheckpoint.Shape {
            guard var s = SyntheticCheckpoint.Shape.named(like) else { throw ValidationError("--like must be olmoe-1b-7b or tiny, not '\(like)'") }
            if let v = layers { s.layers = v }
            if let v = experts { s.experts = v }
            if let v = topK { s.topK = v }
            if let v = hidden { s.hiddenSize = v }
            if let v = intermediate { s.intermediateSize = v }
            if let v = vocab { s.vocabSize = v }
            if let v = heads { s.heads = v; s.kvHeads = v }
            return s
        }

        func validate() throws {
            let s = try shape()
            for (name, v) in [("layers", s.layers), ("experts", s.experts), ("top-k", s.topK), ("hidden", s.hiddenSize), ("intermediate", s.intermediateSize), ("vocab", s.vocabSize), ("heads", s.heads)] where v <= 0 {
                throw ValidationError("--\(name) must be positive")
            }
            if s.topK > s.experts { throw ValidationError("--top-k \(s.topK) exceeds --experts \(s.experts)") }
            if s.hiddenSize % s.heads != 0 { throw ValidationError("--hidden \(s.hiddenSize) is not divisible by --heads \(s.heads)") }
            guard let d = DType(userSpelling: dtype), [.bf16, .f16, .f32].contains(d) else { throw ValidationError("--dtype must be bf16, f16 or f32") }
            guard parseSize(shardSize) != nil else { throw ValidationError("--shard-size '\(shardSize)' is not a positive size such as 5GB") }
            // Every tensor's byte count, and the total, must fit in 64 bits.
            var total = 0
            for spec in SyntheticCheckpoint(shape: s, dtype: .f32).specs {
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
            let synth = SyntheticCheckpoint(shape: try shape(), dtype: DType(userSpelling: dtype) ?? .bf16, seed: seed)
            let total = synth.specs.reduce(0) { $0 + $1.byteCount }
            let progress = Progress(quiet: quiet)
            progress.say("writing \(formatBytes(total)) to \(output)")
            var written = 0, lastReport = 0
            let start = Date()
            try synth.write(to: output, maxShardBytes: parseSize(shardSize) ?? 5_000_000_000, overwrite: overwrite) { _, bytes in
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
