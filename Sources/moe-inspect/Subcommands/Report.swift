import Analysis
import ArgumentParser
import Checkpoints
import Embedding
import Foundation
import Reports

/// Options of the commands that write figures.
struct FigureOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Figure formats, comma-separated: png, pdf, svg (default png).", valueName: "list"))
    var format: String = "png"

    @Option(help: "Pixels per inch of PNG figures, 36 to 1200 (default 150).")
    var dpi: Double = 150

    var formats: [String] { format.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() } }

    func validate() throws {
        guard !formats.isEmpty else { throw ValidationError("--format needs at least one of png, pdf, svg") }
        for f in formats where !["png", "pdf", "svg"].contains(f) { throw ValidationError("--format takes png, pdf and svg, not '\(f)'") }
        guard dpi >= 36, dpi <= 1200 else { throw ValidationError("--dpi must be between 36 and 1200") }
    }

    /// The settings of a report on `checkpoints`, saying each file written unless `quiet`.
    func settings(checkpoints: [String], quiet: Bool) -> FigureSettings {
        let progress = Progress(quiet: quiet)
        return FigureSettings(formats: formats, dpi: dpi, provenance: provenance(checkpoints: checkpoints), progress: { progress.say("wrote \($0)") })
    }

    /// Provenance recorded in PNG text chunks.
    func provenance(checkpoints: [String]) -> [String: String] {
        ["Software": "moe-inspect \(MoEInspect.version)",
         "moe-inspect:command": CommandLine.arguments.joined(separator: " "),
         "moe-inspect:checkpoint": checkpoints.joined(separator: ", ")]
    }
}

/// Writes a report folder atomically: `body` fills a temporary sibling folder, which then
/// replaces `dir`. An existing `dir` is replaced only when it is empty, an earlier report of this
/// tool (it holds `summary.json`), or `overwrite` is given; nothing of the old folder is kept.
func writeReportFolder(_ dir: String, overwrite: Bool, _ body: (String) throws -> Void) throws {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    var replace = false
    if fm.fileExists(atPath: dir, isDirectory: &isDir) {
        guard isDir.boolValue else { throw CommandError("\(dir): exists and is not a folder") }
        let entries = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        if !entries.isEmpty && !fm.fileExists(atPath: dir + "/summary.json") && !overwrite {
            throw CommandError("\(dir): folder is not empty and holds no earlier report; choose another --out or pass --overwrite")
        }
        replace = true
    }
    let parent = (dir as NSString).deletingLastPathComponent
    if !parent.isEmpty { try AtomicOutput.makeFolder(parent) }
    let tmp = try AtomicOutput.temporaryFolder(for: dir)
    do { try body(tmp) } catch {
        try? fm.removeItem(atPath: tmp)
        throw error
    }
    try AtomicOutput.commitFolder(tmp, to: dir, replace: replace)
}

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
            let start = Date()
            let options = analysis.options
            let runs = try runCoupling(checkpoints, layout: layoutOptions, options: options, quiet: quiet)
            let report = CouplingReport(figures.settings(checkpoints: checkpoints, quiet: quiet))
            let progress = Progress(quiet: quiet)
            var maps: [(name: String, title: String, map: ExpertMap)] = []
            if !noTsne, let last = checkpoints.last, let lastRun = runs.last {
                // Maps of the layers that analysed cleanly (within --layers); a failure skips the map.
                let good = Set(lastRun.layers.filter(\.isOK).map(\.layer))
                let model = try layoutOptions.open(last)
                let usable = model.moeLayers.filter { good.contains($0.index) }
                if let first = usable.first {
                    do {
                        progress.say("t-SNE of layer \(first.index)'s W_g rows and router rows")
                        let neurons = try ExpertPoints.neurons(model, layer: first, perExpert: 64, seed: analysis.seed)
                        maps.append(("tsne_neurons_layer\(first.index)", "t-SNE of W_g rows and router rows, layer \(first.index)",
                                     try ExpertMap.make(neurons, tsne: reportTSNE(points: neurons.data.rows, columns: neurons.data.columns), labelBy: "expert")))
                        let experts = try ExpertPoints.experts(model, layers: usable, allProjections: false, seed: analysis.seed)
                        if experts.data.rows >= 8 {
                            progress.say("t-SNE of the experts of \(usable.count) layer(s)")
                            maps.append(("tsne_experts", "t-SNE of the experts of \(usable.count == 1 ? "layer \(first.index)" : "\(usable.count) MoE layers") (W_g)",
                                         try ExpertMap.make(experts, tsne: reportTSNE(points: experts.data.rows, columns: experts.data.columns),
                                                            labelBy: usable.count > 1 ? "layer" : "expert")))
                        }
                    } catch {
                        progress.say("\(last): t-SNE map skipped: \(error)")
                    }
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

extension MoEInspect {
    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare checkpoints (e.g. MoE vs MoE+ERC): the coupling figures side by side on shared scales, plus a table of differences per layer.")

        @Argument(help: "Two (or more) checkpoints to compare, in order.")
        var checkpoints: [String]

        @Option(help: ArgumentHelp("Output folder.", valueName: "DIR"))
        var out: String

        @Option(help: ArgumentHelp("Labels, comma-separated, e.g. \"MoE,MoE+ERC\" (default: the checkpoints' folder names).", valueName: "list"))
        var labels: String?

        @Option(help: ArgumentHelp("Training logs of the runs, comma-separated in the same order (log.csv of moe-inspect train): adds their training curves.", valueName: "list"))
        var logs: String?

        @OptionGroup var figures: FigureOptions
        @OptionGroup var analysis: AnalysisOptions
        @OptionGroup var layoutOptions: LayoutOptions

        @Flag(help: "Replace OUT even when it is a non-empty folder that holds no earlier report (an earlier report in OUT is always replaced whole).")
        var overwrite = false

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        var labelList: [String] {
            if let l = labels { return l.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            return checkpoints.map { ($0 as NSString).lastPathComponent }
        }

        func validate() throws {
            guard checkpoints.count >= 2 else { throw ValidationError("compare needs at least two checkpoints") }
            guard labelList.count == checkpoints.count else { throw ValidationError("--labels names \(labelList.count) checkpoints, but \(checkpoints.count) were given") }
            if let l = logs, l.split(separator: ",").count != checkpoints.count { throw ValidationError("--logs names \(l.split(separator: ",").count) logs, but \(checkpoints.count) checkpoints were given") }
        }

        func run() throws {
            let start = Date()
            let options = analysis.options
            let runs = try runCoupling(checkpoints, layout: layoutOptions, options: options, quiet: quiet)
            let report = ComparisonReport(figures.settings(checkpoints: checkpoints, quiet: quiet))
            let progress = Progress(quiet: quiet)
            let logFiles = try (logs?.split(separator: ",").map { try TrainingLog(path: String($0)) }) ?? []
            var written: [ReportFigure] = []
            try writeReportFolder(out, overwrite: overwrite) { tmp in
                written = try report.write(runs, labels: labelList, options: options, logs: logFiles, to: tmp)
            }
            progress.say(String(format: "compare: %d figures in %@/index.html (%.1f s)", written.count, out, Date().timeIntervalSince(start)))
            print(out + "/index.html")
        }
    }

    struct Plot: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Plot training curves (LM, load-balancing and ERC loss, eps, learning rate, tokens/s) from training logs.")

        @Argument(help: "One or more log.csv files written by `moe-inspect train` (several: overlaid).")
        var logs: [String]

        @Option(help: ArgumentHelp("Output figure (.png, .pdf or .svg).", valueName: "FILE"))
        var out: String

        @Option(help: ArgumentHelp("Labels, comma-separated (default: the logs' folder names).", valueName: "list"))
        var labels: String?

        @Option(help: "Pixels per inch of a PNG (default 150).")
        var dpi: Double = 150

        func validate() throws {
            guard ["png", "pdf", "svg"].contains((out as NSString).pathExtension.lowercased()) else { throw ValidationError("--out must end in .png, .pdf or .svg") }
            guard dpi >= 36, dpi <= 1200 else { throw ValidationError("--dpi must be between 36 and 1200") }
        }

        func run() throws {
            let parsed = try logs.map { try TrainingLog(path: $0) }
            let names = labels.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
                ?? logs.map { (($0 as NSString).deletingLastPathComponent as NSString).lastPathComponent }
            guard names.count == logs.count else { throw ValidationError("--labels names \(names.count) logs, but \(logs.count) were given") }
            let f = try TrainingCurves.figure(parsed, labels: names)
            f.dpi = dpi
            _ = try f.save(to: out, provenance: ["Software": "moe-inspect \(MoEInspect.version)", "moe-inspect:command": CommandLine.arguments.joined(separator: " ")])
            print(out)
        }
    }
}

/// t-SNE settings for report maps: scikit-learn's defaults, perplexity lowered for few points.
func reportTSNE(points: Int, columns: Int) -> TSNE {
    var t = TSNE(perplexity: min(30, max(2, Double(points - 1) / 3)), method: .barnesHut, iterations: 1000, seed: 0)
    if columns > 50 { t.reducedDimensions = min(50, points) }
    return t
}
