import ArgumentParser
import Foundation
import Reports
import Tensors

extension MoEInspect {
    struct Plot: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Plot training curves (LM and held-out loss, load-balancing and ERC loss, eps, learning rate, tokens/s) from training logs.",
            discussion:
                "Give log.csv files of moe-inspect train (the held-out loss of eval.csv beside each is drawn with it), eval.csv files alone, or run folders. Other CSV files (erc tables, analysis.csv) are refused with what they are."
        )

        @Argument(help: "One or more log.csv or eval.csv files, or run folders, of `moe-inspect train` (several: overlaid).")
        var logs: [String]

        @Option(help: ArgumentHelp("Output figure (.png, .pdf or .svg).", valueName: "FILE"))
        var out: String

        @Option(help: ArgumentHelp("Labels, comma-separated (default: the parts of the runs' paths that differ).", valueName: "list"))
        var labels: String?

        @Option(
            help: ArgumentHelp(
                "Exponential moving average of the training curves with this weight on the past, 0 to 0.999 (e.g. 0.9); the raw values stay faint behind.",
                valueName: "W"))
        var smooth: Double = 0

        @Flag(help: "Losses on a logarithmic axis.")
        var logY = false

        @Option(help: "Pixels per inch of a PNG (default 150).")
        var dpi: Double = 150

        @OptionGroup var size: FigureSizeOptions

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            _ = try figureFormat(out, option: "--out")
            try FigureOptions.validate(dpi: dpi)
            guard smooth >= 0, smooth < 1 else { throw ValidationError("--smooth takes a weight from 0 to 0.999") }
            if let l = parseList(labels), l.count != logs.count { throw ValidationError("--labels names \(l.count) logs, but \(logs.count) were given") }
        }

        func run() throws {
            try protectInputs([out], from: logs)
            let names = parseList(labels) ?? RunGrouping.distinctLabels(logs.map(Self.runPath))
            var runs: [RunCurves] = []
            for (k, path) in logs.enumerated() {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                    guard let r = try RunCurves.read(folder: path, label: names[k]) else {
                        throw CommandError("\(path): holds neither log.csv nor eval.csv of moe-inspect train")
                    }
                    runs.append(r)
                    continue
                }
                let log = try TrainingLog(path: path)
                switch log.kind {
                case .training:
                    let eval = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("eval.csv").path
                    let ev = FileManager.default.fileExists(atPath: eval) ? try? TrainingLog(path: eval) : nil
                    runs.append(RunCurves(label: names[k], log: log, eval: ev?.kind == .heldOut ? ev : nil))
                case .heldOut:
                    runs.append(RunCurves(label: names[k], log: nil, eval: log))
                case let .other(what):
                    throw CommandError("\(path): is \(what.rendered(naming: CommandLineNames.flag))")
                }
            }
            let settings = FigureSettings(dpi: dpi, width: size.width, fontScale: size.fontScale)
            let f = try TrainingCurves.figure(runs, smooth: smooth, logY: logY, maxColumns: settings.maxColumns(3))
            settings.fit(f)
            _ = try f.save(to: out, provenance: provenance(checkpoints: []))
            Progress(quiet: quiet).say("plot: \(runs.count) run(s) drawn")
            print(out)
        }

        /// The run a log stands for: its folder (a run folder stands for itself).
        static func runPath(_ log: String) -> String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: log, isDirectory: &isDir), isDir.boolValue { return log }
            return URL(fileURLWithPath: log).deletingLastPathComponent().path
        }
    }
}
