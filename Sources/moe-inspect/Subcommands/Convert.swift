import ArgumentParser
import Checkpoints
import Foundation
import MoELayout
import Tensors

extension MoEInspect {
    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert a checkpoint between safetensors and HDF5, optionally casting floating tensors.",
            discussion: """
                The output format follows OUT: a name ending in .h5/.hdf5 is an HDF5 file (tensors as
                nested groups, config as the `config` attribute); one ending in .safetensors is a single
                file (config.json written beside it if none is there); anything else is a Hugging Face
                folder (model.safetensors or shards + index, and config.json). Without --dtype the bytes
                are copied unchanged. Nothing existing is replaced unless --overwrite.

                An OLMo-core checkpoint (a stepN folder of a training run, or its unsharded
                safetensors export with the run's config.json) written to a folder becomes a Hugging
                Face flex_olmo model, as OLMo-core's own export writes it: per-expert tensor names and
                the config translated. Written to a .safetensors file, it keeps OLMo-core's names (an
                unsharded export, the run's config.json beside it).
                """)

        @Argument(help: "Input checkpoint (file, index, folder, or OLMo-core stepN folder).")
        var input: String

        @Argument(help: "Output path (.h5/.hdf5, .safetensors, or a folder).")
        var output: String

        @Option(help: ArgumentHelp("Cast floating-point tensors to bf16, f16 or f32 (default: keep).", valueName: "dtype"))
        var dtype: String?

        @Option(help: ArgumentHelp("Largest shard for folder output, e.g. 5GB, 200MB (default 5GB).", valueName: "size"))
        var shardSize: String = "5GB"

        @Flag(help: "gzip-compress HDF5 datasets (chunks of about 1 MB).")
        var compress = false

        @Flag(help: "OLMo-core checkpoints: also copy the optimizer state (optim.* tensors; .safetensors/.h5 output only).")
        var optimizerState = false

        @Flag(help: "Replace OUT if it exists (only after the new output is complete).")
        var overwrite = false

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            if let d = dtype, !["bf16", "f16", "f32", "bfloat16", "float16", "float32", "fp16", "fp32"].contains(d.lowercased()) {
                throw ValidationError("--dtype must be bf16, f16 or f32, not '\(d)'")
            }
            if optimizerState && CheckpointConverter.target(for: output) == .safetensorsFolder {
                throw ValidationError("--optimizer-state needs a .safetensors or .h5 output: a Hugging Face folder holds no optimizer state")
            }
            guard let s = parseSize(shardSize), s > 0 else { throw ValidationError("--shard-size '\(shardSize)' is not a size such as 5GB") }
        }

        func run() throws {
            try protectInputs([output], from: [input])
            let source = try Checkpoint.open(input, includeOptimizerState: optimizerState)
            let progress = Progress(quiet: quiet)
            let target = dtype.flatMap { DType(userSpelling: $0) }
            if CheckpointConverter.target(for: output) == .safetensorsFolder, OLMoCoreLayout.matches(source.tensors.map(\.name)) {
                let start = Date()
                try OLMoCoreExport.write(
                    try MoECheckpoint(source), to: output, dtype: target, overwrite: overwrite,
                    maxShardBytes: parseSize(shardSize) ?? 5_000_000_000)
                progress.say(String(format: "wrote %@ (Hugging Face flex_olmo) in %.1f s", output, Date().timeIntervalSince(start)))
                return
            }
            var done = 0
            let start = Date()
            try CheckpointConverter.convert(
                source, to: output, dtype: target, overwrite: overwrite,
                maxShardBytes: parseSize(shardSize) ?? 5_000_000_000, compress: compress
            ) { _ in
                done += 1
                if done % 200 == 0 { progress.say("converted \(done)/\(source.tensors.count) tensors") }
            }
            progress.say(String(format: "wrote %@ (%d tensors) in %.1f s", output, source.tensors.count, Date().timeIntervalSince(start)))
        }
    }
}
