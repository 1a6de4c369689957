import ArgumentParser
import Checkpoints
import Foundation
import MoELayout

extension MoEInspect {
    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe a checkpoint: family, MoE and dense layers, experts, top-k, sizes, dtypes, parameter counts, problems.",
            discussion: """
                Reads only the headers and the router weights (fast on a 15 GB checkpoint). Problems
                (NaN/Inf in a router, all-zero router rows, missing experts, shape mismatches) are
                reported, not fatal; --scan-experts also scans every expert weight for NaN/Inf.
                """)

        @Argument(help: "Checkpoint: a .safetensors or .h5 file, a model.safetensors.index.json, or a folder holding one.")
        var checkpoint: String

        @Flag(help: "Print the summary as JSON.")
        var json = false

        @Flag(help: "Also scan every routed expert's weights for NaN/Inf (reads the whole checkpoint).")
        var scanExperts = false

        @OptionGroup var layoutOptions: LayoutOptions

        func run() throws {
            let model = try layoutOptions.open(checkpoint)
            let s = ModelSummary(model, scanExperts: scanExperts)
            if json { print(s.json.serialized(pretty: true)); return }
            warnAboutProblems(model)
            print(render(s, hasConfig: model.checkpoint.config != nil))
        }

        func render(_ s: ModelSummary, hasConfig: Bool) -> String {
            var lines: [String] = []
            func row(_ k: String, _ v: String) { lines.append(k.padding(toLength: 22, withPad: " ", startingAt: 0) + v) }
            row("checkpoint", s.path)
            row("format", "\(s.format), \(s.files.count) file\(s.files.count == 1 ? "" : "s"), \(formatBytes(s.totalBytes))")
            row(
                "family",
                s.family
                    + (s.modelType.map { $0 != s.family ? " (model_type \($0))" : "" } ?? (hasConfig ? " (its config has no model_type)" : " (no config.json)"))
            )
            row(
                "layers",
                "\(s.layerCount): \(s.moeLayers.count) MoE, \(s.denseLayers.count) dense"
                    + (s.denseLayers.isEmpty ? "" : " (\(s.denseLayers.map(String.init).joined(separator: ", ")))"))
            row("experts", s.expertCounts.map(String.init).joined(separator: ", ") + (s.sharedExperts ? " routed + shared" : " routed"))
            row("top-k", s.topK.map(String.init) ?? (hasConfig ? "unknown (not in the config)" : "unknown (no config)"))
            row("router scoring", s.scoring.rawValue)
            row("hidden size d", s.hiddenSize.map(String.init) ?? "-")
            row("expert size D", s.intermediateSize.map(String.init) ?? "-")
            row("dtypes", s.dtypes.sorted { $0.value > $1.value }.map { "\($0.key) (\(formatCount($0.value)))" }.joined(separator: ", "))
            row("parameters", "\(formatCount(s.totalParameters)) total" + (s.activeParameters.map { ", \(formatCount($0)) active per token" } ?? ""))
            for f in s.files { row("file", f) }
            if s.problems.isEmpty { row("problems", "none found") } else { for p in s.problems { row("problem", p) } }
            return lines.joined(separator: "\n")
        }
    }
}
