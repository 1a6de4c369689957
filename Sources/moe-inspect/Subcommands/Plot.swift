import ArgumentParser
import Foundation
import Reports

extension MoEInspect {
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
            _ = try figureFormat(out, option: "--out")
            try FigureOptions.validate(dpi: dpi)
        }

        func run() throws {
            try protectInputs([out], from: logs)
            let parsed = try logs.map { try TrainingLog(path: $0) }
            let names = labels.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
                ?? logs.map { (($0 as NSString).deletingLastPathComponent as NSString).lastPathComponent }
            guard names.count == logs.count else { throw ValidationError("--labels names \(names.count) logs, but \(logs.count) were given") }
            let f = try TrainingCurves.figure(parsed, labels: names)
            f.dpi = dpi
            _ = try f.save(to: out, provenance: provenance(checkpoints: []))
            print(out)
        }
    }
}
