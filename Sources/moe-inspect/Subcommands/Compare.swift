import Analysis
import ArgumentParser
import Checkpoints
import Foundation
import Reports

extension MoEInspect {
    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Compare any number of checkpoints or runs (e.g. MoE vs MoE+ERC, or an alpha ablation): the coupling figures side by side on shared scales, plus a table per layer.",
            discussion: """
                A run folder (of moe-inspect train, or any folder of stepN checkpoints) stands for its latest checkpoint, \
                and brings its training curves and held-out loss (eval.csv). Labels come from the parts of the paths that \
                differ (runs/vanilla/step400, runs/erc/step400 -> vanilla, erc) and are always unique. --by NAME orders the \
                checkpoints by a value parsed from their paths (alpha0.5, erc-alpha=1, alpha_2) or labels (--labels \
                alpha=0.5,alpha=1) and draws held-out loss, alpha*, eps and ERC loss against it. With --data the tokens run \
                through every checkpoint and the page gains the figures of `routing` for each (agreement side by side, \
                load, m_data beside M, co-activation, domains).
                """)

        @Argument(help: "Two or more checkpoints or run folders.")
        var checkpoints: [String]

        @Option(help: ArgumentHelp("Output folder (new, empty, or an earlier report with --overwrite; '.' works).", valueName: "DIR"))
        var out: String

        @Option(help: ArgumentHelp("Labels, comma-separated, e.g. \"MoE,MoE+ERC\" (default: the parts of the paths that differ).", valueName: "list"))
        var labels: String?

        @Option(
            help: ArgumentHelp(
                "Training logs of the runs, comma-separated in the same order (log.csv of moe-inspect train; default: each run folder's own).",
                valueName: "list"))
        var logs: String?

        @Option(
            help: ArgumentHelp(
                "Order by a parameter named in the paths or labels (e.g. alpha for runs/alpha0.5, runs/alpha1) and draw the quantities against it.",
                valueName: "NAME"))
        var by: String?

        @OptionGroup var figures: FigureOptions
        @OptionGroup var analysis: AnalysisOptions
        @OptionGroup(title: "Routing on data (adds the figures of `routing` for every checkpoint)") var dataOptions: RoutingDataOptions
        @OptionGroup var layoutOptions: LayoutOptions

        @Flag(help: "Replace OUT when it holds an earlier report (a folder with other files is never replaced).")
        var overwrite = false

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            guard checkpoints.count >= 2 else { throw ValidationError("compare needs at least two checkpoints or runs") }
            if let l = parseList(labels) {
                guard l.count == checkpoints.count else { throw ValidationError("--labels names \(l.count) checkpoints, but \(checkpoints.count) were given") }
                if let e = l.firstIndex(where: \.isEmpty) { throw ValidationError("--labels: label \(e + 1) is empty") }
                if let d = l.first(where: { x in l.filter { $0 == x }.count > 1 }) {
                    throw ValidationError("--labels names '\(d)' twice; labels must be unique")
                }
            }
            if let l = parseList(logs), l.count != checkpoints.count {
                throw ValidationError("--logs names \(l.count) logs, but \(checkpoints.count) checkpoints were given")
            }
            if let by, by.isEmpty || by.contains(where: { $0.isWhitespace }) { throw ValidationError("--by takes a parameter name such as alpha") }
        }

        func run() throws {
            try protectInputs(
                [out],
                from: checkpoints + dataOptions.files + [layoutOptions.layout, dataOptions.tokenizer].compactMap { $0 }
                    + (logs?.split(separator: ",").map(String.init) ?? []))
            let start = Date()
            let progress = Progress(quiet: quiet)
            let inputs = checkpoints.map(ResolvedInput.resolve)
            let logPaths = parseList(logs)
            let dest = try ReportDestination.check(out, overwrite: overwrite, inputs: inputs.map(\.checkpoint) + (logPaths ?? []))
            let names = parseList(labels) ?? RunGrouping.distinctLabels(inputs.map(\.given))
            // The --by value of each input, before anything is read.
            var values: [Double?] = Array(repeating: nil, count: inputs.count)
            if let by {
                for (k, input) in inputs.enumerated() {
                    let texts = (labels != nil ? [names[k]] : []) + RunGrouping.components(input.given).reversed()
                    guard let v = texts.lazy.compactMap({ ByParameterFigures.value(of: by, in: $0) }).first else {
                        throw CommandError(
                            "--by \(by): no value of \(by) in \(input.given) (name the folders like \(by)0.5 or erc-\(by)=1, or give --labels \(by)=0.5,...)")
                    }
                    values[k] = v
                }
            }
            let options = analysis.options
            let results = try runCoupling(inputs.map(\.checkpoint), layout: layoutOptions, options: options, quiet: quiet)
            var items: [ComparisonItem] = []
            for (k, input) in inputs.enumerated() {
                let numbers = CheckpointNumbers(results[k], run: names[k], options: options)
                var curves: RunCurves?
                if let logPaths {
                    let log = try TrainingLog(path: logPaths[k])
                    let eval = URL(fileURLWithPath: logPaths[k]).deletingLastPathComponent().appendingPathComponent(RunLog.File.eval.rawValue).path
                    curves = RunCurves(label: names[k], log: log, eval: FileManager.default.fileExists(atPath: eval) ? try TrainingLog(path: eval) : nil)
                } else if let folder = input.runFolder {
                    curves = try RunCurves.read(folder: folder, label: names[k])
                }
                var heldOut: Double?
                if let ev = curves?.eval, let step = numbers.step, let steps = ev.columns["step"], let losses = ev.columns["eval_loss"] {
                    heldOut = Array(zip(steps, losses)).last(where: { Int($0.0) == step && $0.1.isFinite })?.1
                }
                items.append(ComparisonItem(label: names[k], coupling: results[k], numbers: numbers, value: values[k], heldOutLoss: heldOut, curves: curves))
            }
            if by != nil {
                items = items.enumerated().sorted { ($0.element.value ?? 0, $0.offset) < ($1.element.value ?? 0, $1.offset) }.map(\.element)
                if let v = items.map(\.value).first(where: { x in items.filter { $0.value == x }.count > 1 }), let v {
                    progress.say("compare: several checkpoints have \(by ?? "") = \(Readings.number(v)); they are drawn at the same place")
                }
            }
            let routing =
                dataOptions.data.isEmpty
                ? nil
                : try dataOptions.route(
                    items.map(\.coupling.checkpoint), layout: layoutOptions, alphas: options.alphas, feature: options.feature, seed: options.seed,
                    progress: progress)
            let report = ComparisonReport(
                figures.settings(checkpoints: checkpoints, quiet: quiet),
                info: BuildInfo.pageInfo(checkpoints: inputs.map(\.checkpoint), others: (logPaths ?? []).map { ("log", $0) }))
            var written: [ReportFigure] = []
            try dest.write { tmp in written = try report.write(items, options: options, by: by, routing: routing, to: tmp) }
            progress.say(
                String(
                    format: "compare: %d checkpoints, %d figures in %@/index.html (%.1f s)", items.count, written.count, out, Date().timeIntervalSince(start)))
            print(out + "/index.html")
        }
    }
}
