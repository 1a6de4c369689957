import Analysis
import ArgumentParser
import Foundation
import Reports

extension MoEInspect {
    struct ERC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "erc",
            abstract: "Measure expert-router coupling: ERC loss (specialization + precision), noise bound eps, alpha*, M statistics.",
            discussion:
                "One row per checkpoint, MoE layer and alpha. Several checkpoints (e.g. run/step*) make a series over training: they are listed run by run (the folder above the step, or --runs), each run in the order of the step parsed from names like step1000. coupling_alpha is alpha*, the smallest alpha at which the noise-free ERC loss is zero. Layers whose weights hold NaN/Inf get a status instead of numbers. The --csv and --json tables are what `report --tables DIR` reads."
        )

        @Argument(help: "One or more checkpoints (files, indexes or folders).")
        var checkpoints: [String]

        @Option(help: ArgumentHelp("Run labels, comma-separated: one per checkpoint or one per run folder found (the run column).", valueName: "list"))
        var runs: String?

        @OptionGroup var analysis: AnalysisOptions
        @OptionGroup var layoutOptions: LayoutOptions
        @OptionGroup var output: TableOutputOptions

        @Option(help: ArgumentHelp("Write each layer's activation matrix M (noise-free) and router cosine matrix as CSV into DIR.", valueName: "DIR"))
        var matrices: String?

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func run() throws {
            try protectInputs([output.csv, matrices], from: checkpoints + [layoutOptions.layout].compactMap { $0 })
            let options = analysis.options
            let series = try analyseSeries(checkpoints, runs: runs, layout: layoutOptions, options: options, quiet: quiet)
            let results = series.results
            if let dir = matrices {
                for (i, r) in results.enumerated() {
                    try CouplingTables.writeMatrices(r, to: results.count == 1 ? dir : dir + "/\(i)-" + ((r.checkpoint as NSString).lastPathComponent))
                }
            }
            // Checkpoints without a step belong to no run unless --runs names one.
            var labels = series.runLabels
            for g in series.groups where g.folder == nil && runs == nil { for m in g.members { labels[m] = "" } }
            let table = CouplingTables.erc(results, options: options, runs: labels)
            try output.emit(table, display: CouplingTables.ercDisplay(table))
        }
    }
}
