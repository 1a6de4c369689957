import Analysis
import ArgumentParser
import Foundation
import Reports

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
            try protectInputs([out], from: checkpoints + [layoutOptions.layout].compactMap { $0 }
                + (logs?.split(separator: ",").map(String.init) ?? []))
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
}
