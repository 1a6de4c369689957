import Analysis
import ArgumentParser
import Foundation
import Reports

extension MoEInspect {
    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run every analysis and write figures, CSV tables, summary.json and an index.html into a folder.",
            discussion: "With several checkpoints of one run (e.g. run/step*), the report adds series over training (ERC loss, eps, alpha*, router similarity); per-layer figures show the last checkpoint. Open DIR/index.html in a browser.")

        @Argument(help: "One or more checkpoints (several: a series over training, in the order given).")
        var checkpoints: [String]

        @Option(help: ArgumentHelp("Output folder.", valueName: "DIR"))
        var out: String

        @OptionGroup var figures: FigureOptions
        @OptionGroup var analysis: AnalysisOptions
        @OptionGroup var layoutOptions: LayoutOptions

        @Flag(help: "Replace OUT even when it is a non-empty folder that holds no earlier report (an earlier report in OUT is always replaced whole).")
        var overwrite = false

        @Flag(help: "Skip the t-SNE maps (they take about 20 s on an OLMoE-1B-7B layer).")
        var noTsne = false

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func run() throws {
            try protectInputs([out], from: checkpoints + [layoutOptions.layout].compactMap { $0 })
            let start = Date()
            let options = analysis.options
            let runs = try runCoupling(checkpoints, layout: layoutOptions, options: options, quiet: quiet)
            let report = CouplingReport(figures.settings(checkpoints: checkpoints, quiet: quiet))
            let progress = Progress(quiet: quiet)
            var maps: [ReportMap] = []
            if !noTsne, let last = checkpoints.last, let lastRun = runs.last {
                do {
                    maps = try ReportMaps.make(try layoutOptions.open(last), analysed: lastRun.layers, seed: analysis.seed, say: progress.say)
                } catch {
                    progress.say("\(last): t-SNE map skipped: \(error)")
                }
            }
            var written: [ReportFigure] = []
            try writeReportFolder(out, overwrite: overwrite) { tmp in
                written = try report.write(runs, options: options, maps: maps, to: tmp)
            }
            progress.say(String(format: "report: %d figures in %@/index.html (%.1f s)", written.count, out, Date().timeIntervalSince(start)))
            print(out + "/index.html")
        }
    }
}
