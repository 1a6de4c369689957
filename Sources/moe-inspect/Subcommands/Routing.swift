import Analysis
import ArgumentParser
import Checkpoints
import Foundation
import MoELayout
import Models
import Reports
import Routing
import Tokenizers
import Training

extension MoEInspect {
    struct RoutingCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "routing",
            abstract: "Run tokens through checkpoints and measure their routing: load, co-activation, domains, vocabulary, saturation, and coupling on data.",
            discussion: """
                Each --data file is cut into consecutive windows of --seq-len tokens from token 0 (each its own causal \
                sequence, no BOS added; a last partial window is dropped). NAME=FILE names a domain. One decoder layer's \
                weights are in memory at a time. Per checkpoint and MoE layer (routed experts only): counts, co-activation, \
                load balance, the load-balancing loss in transformers' and OLMo-core's conventions, router entropy and top-1 \
                probability, per-domain shares, the tokens each expert receives most, and the coupling on data: agreement of \
                the router's top-k with the top-k of a_tj = ||W_g^j x_t|| (chance k/n), m_data[i][j] = mean a_tj over the \
                tokens routed to i, its ERC loss and alpha*, and its correlation with the noise-free proxy M. Several \
                checkpoints of one run add router saturation (top-k overlap with the last checkpoint).
                """)

        @Argument(
            help:
                "One or more checkpoints (files, indexes or folders; checkpoints of one run, stepN folders of one folder, give router saturation against its latest step)."
        )
        var checkpoints: [String]

        @OptionGroup var dataOptions: RoutingDataOptions

        @Option(name: .customLong("alpha"), help: ArgumentHelp("ERC alpha for the loss of m_data; repeat for several (default 1).", valueName: "A"))
        var alphas: [Double] = []

        @Option(help: ArgumentHelp("Probe feature of a_tj: gate (x W_g, the paper's), up, silu-gate, swiglu or output.", valueName: "F"))
        var feature: ProbeFeature = .gate

        @Option(help: "Seed of the coupling sample.")
        var seed: UInt64 = 0

        @OptionGroup var layoutOptions: LayoutOptions

        @Flag(help: "Print the results as JSON (one object per checkpoint).")
        var json = false

        @Option(help: ArgumentHelp("Write the per-layer summary as CSV to FILE (- for stdout).", valueName: "FILE"))
        var csv: String?

        @Option(help: ArgumentHelp("Write layer{L}.npy (int32 [T, k], the router's top-k per token) into DIR.", valueName: "DIR"))
        var assignments: String?

        @Option(help: ArgumentHelp("Write figures, tables, summary.json and index.html into DIR (replaced whole; see --overwrite).", valueName: "DIR"))
        var out: String?

        @Flag(help: "Let --out replace a non-empty folder that holds no earlier report.")
        var overwrite = false

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            guard !dataOptions.data.isEmpty else { throw ValidationError("--data is required: the tokens to run through the checkpoints") }
            for a in alphas where !(a >= 0 && a.isFinite) { throw ValidationError("--alpha must be a non-negative number") }
        }

        func run() throws {
            try protectInputs(
                [out, csv == "-" ? nil : csv, assignments].compactMap { $0 },
                from: checkpoints + dataOptions.files + [dataOptions.tokenizer, layoutOptions.layout].compactMap { $0 })
            let progress = Progress(quiet: quiet)
            let routed = try dataOptions.route(checkpoints, layout: layoutOptions, alphas: alphas, feature: feature, seed: seed, progress: progress)
            let results = routed.runs
            if let dir = assignments {
                for (i, r) in results.enumerated() {
                    try RoutingTables.writeAssignments(r, to: results.count == 1 ? dir : dir + "/\(i)-" + ((r.checkpoint as NSString).lastPathComponent))
                }
            }
            if let dir = out {
                try writeReportFolder(dir, overwrite: overwrite) { tmp in try RoutingReport.write(routed, to: tmp) }
                progress.say("wrote \(dir)")
            }
            let table = RoutingTables.summary(results)
            if let csv {
                if csv == "-" { print(table.csv, terminator: "") } else { try table.writeCSV(to: csv) }
            }
            if json { print(routed.json.serialized(pretty: true)) }
            if csv == nil && !json { print(RoutingTables.display(table).aligned()) }
        }
    }
}
