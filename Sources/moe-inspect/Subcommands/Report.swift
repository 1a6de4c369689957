import Analysis
import ArgumentParser
import Foundation
import Reports

extension MoEInspect {
    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run every analysis and write figures, CSV tables, summary.json and an index.html into a folder.",
            discussion: """
                Several checkpoints make series over training: they are ordered by the step in their paths (step1000, \
                checkpoint-1000, ...) and grouped into runs by the folder above the step (or --runs); each run is one line. \
                Per-layer figures show each run's latest checkpoint. With --tables DIR the report is built from the tables of \
                `moe-inspect erc --csv/--json` alone (one job per checkpoint on a cluster), without the checkpoints. \
                With --data the tokens also run through every checkpoint and the page gains the figures of `routing` \
                (saturation over each run, agreement, load, m_data beside M, co-activation, domains). \
                Open DIR/index.html in a browser.
                """)

        @Argument(help: "One or more checkpoints (several: series over training, by run and step).")
        var checkpoints: [String] = []

        @Option(help: ArgumentHelp("Output folder (new, empty, or an earlier report with --overwrite; '.' works).", valueName: "DIR"))
        var out: String

        @Option(
            help: ArgumentHelp(
                "Run labels, comma-separated: one per checkpoint (checkpoints sharing a label form a run) or one per run folder found.", valueName: "list"))
        var runs: String?

        @Option(help: ArgumentHelp("Build the report from the erc tables (--csv or --json files) in DIR instead of checkpoints.", valueName: "DIR"))
        var tables: String?

        @OptionGroup var figures: FigureOptions
        @OptionGroup var analysis: AnalysisOptions
        @OptionGroup(title: "Routing on data (adds the figures of `routing` to the page)") var dataOptions: RoutingDataOptions
        @OptionGroup var layoutOptions: LayoutOptions

        @Flag(help: "Replace OUT when it holds an earlier report (a folder with other files is never replaced).")
        var overwrite = false

        @Flag(help: "Skip the t-SNE maps (they take about 20 s on an OLMoE-1B-7B layer).")
        var noTsne = false

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            if tables != nil && !checkpoints.isEmpty { throw ValidationError("give checkpoints or --tables DIR, not both") }
            if tables == nil && checkpoints.isEmpty { throw ValidationError("give one or more checkpoints, or --tables DIR") }
            if tables != nil && !dataOptions.data.isEmpty { throw ValidationError("--data runs tokens through checkpoints; it cannot be used with --tables") }
        }

        func run() throws {
            try protectInputs([out], from: checkpoints + dataOptions.files + [tables, layoutOptions.layout, dataOptions.tokenizer].compactMap { $0 })
            let start = Date()
            let progress = Progress(quiet: quiet)
            if let dir = tables {
                let dest = try ReportDestination.check(out, overwrite: overwrite, inputs: [dir])
                let read = try ERCTableReader.read(dir)
                for s in read.skipped { progress.say("\(s.file): skipped: \(s.reason)") }
                let report = CouplingReport(
                    figures.settings(checkpoints: read.checkpoints.map(\.checkpoint), quiet: quiet),
                    info: BuildInfo.pageInfo(checkpoints: [], others: read.files.map { ("table", $0) }))
                var written: [ReportFigure] = []
                try dest.write { tmp in written = try report.write(tables: read.checkpoints, alphas: read.alphas, to: tmp) }
                progress.say(
                    String(
                        format: "report: %d checkpoints from %d tables, %d figures in %@/index.html (%.1f s)",
                        read.checkpoints.count, read.files.count, written.count, out, Date().timeIntervalSince(start)))
                print(out + "/index.html")
                return
            }
            let dest = try ReportDestination.check(out, overwrite: overwrite, inputs: checkpoints)
            let options = analysis.options
            let series = try analyseSeries(checkpoints, runs: runs, layout: layoutOptions, options: options, quiet: quiet)
            var maps: [ReportMap] = []
            if !noTsne {
                for g in series.groups {
                    guard let lastIndex = g.members.last else { continue }
                    let last = series.results[lastIndex]
                    do {
                        var made = try ReportMaps.make(try layoutOptions.open(last.checkpoint), analysed: last.layers, seed: analysis.seed, say: progress.say)
                        if series.groups.count > 1 {
                            made = made.map { m in
                                var m = m
                                m.name += "_" + CouplingReport.fileName(g.label)
                                m.title += " (\(g.label))"
                                return m
                            }
                        }
                        maps += made
                    } catch {
                        progress.say("\(last.checkpoint): t-SNE map skipped: \(error)")
                    }
                }
            }
            let curves = try series.groups.compactMap { g in try g.folder.flatMap { try RunCurves.read(folder: $0, label: g.label) } }
            let routing =
                dataOptions.data.isEmpty
                ? nil
                : try dataOptions.route(
                    series.results.map(\.checkpoint), layout: layoutOptions, alphas: options.alphas, feature: options.feature, seed: options.seed,
                    progress: progress)
            let report = CouplingReport(
                figures.settings(checkpoints: checkpoints, quiet: quiet),
                info: BuildInfo.pageInfo(checkpoints: series.results.map(\.checkpoint)))
            var written: [ReportFigure] = []
            try dest.write { tmp in
                written = try report.write(series.results, runs: series.groups, options: options, maps: maps, curves: curves, routing: routing, to: tmp)
            }
            progress.say(String(format: "report: %d figures in %@/index.html (%.1f s)", written.count, out, Date().timeIntervalSince(start)))
            print(out + "/index.html")
        }
    }
}
