import Analysis
import ArgumentParser
import Checkpoints
import Foundation
import Reports

extension MoEInspect {
    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a training run: analyse each new complete stepN checkpoint once and keep its series report up to date.",
            discussion: """
                Scans RUN_DIR every --every seconds for stepN folders (Hugging Face: config.json and the weights, every \
                shard of the index present with its whole data; OLMo-core: model_and_optim/.metadata, written last, and \
                every .distcp it names) whose files have not changed for --settle seconds, so a checkpoint still being \
                written is never read. Each is analysed once: REPORT_DIR/ledger.json lists them, REPORT_DIR/tables holds \
                one erc table per checkpoint, and REPORT_DIR/report (index.html) is rebuilt whole after each, from the \
                tables and the run's log.csv/eval.csv. Killed and started again, it continues where it stopped.
                """)

        @Argument(help: "The run folder to follow (where the trainer writes stepN folders).")
        var runDir: String

        @Option(
            help: ArgumentHelp(
                "The watch folder: ledger.json, tables/, report/index.html (new, empty, or one this command made for the same run).", valueName: "REPORT_DIR"))
        var out: String

        @Option(help: ArgumentHelp("Seconds between scans (default 60).", valueName: "SECONDS"))
        var every: Double = 60

        @Option(help: ArgumentHelp("Seconds a checkpoint's files must stay unchanged before it is read (default 5).", valueName: "SECONDS"))
        var settle: Double = 5

        @Flag(help: "Scan once, analyse what is complete, write the report, and exit.")
        var once = false

        @OptionGroup var figures: FigureOptions
        @OptionGroup var analysis: AnalysisOptions
        @OptionGroup var layoutOptions: LayoutOptions

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            guard every >= 0.05, every <= 86_400 else { throw ValidationError("--every takes 0.05 to 86400 seconds") }
            guard settle >= 0, settle <= 86_400 else { throw ValidationError("--settle takes 0 to 86400 seconds") }
        }

        /// The analysis options in words, recorded in the ledger.
        var optionsText: String {
            let o = analysis.options
            return "alpha=" + o.alphas.map { String(format: "%g", $0) }.joined(separator: ",")
                + " feature=\(o.feature.rawValue) noise=\(o.noise ? "on" : "off") samples=\(o.samples) seed=\(o.seed) layers=\(analysis.selection.layers.map { "\($0)" } ?? "all")"
        }

        /// Makes or reopens the watch folder; returns its ledger.
        func prepare(runPath: String, folder: String) throws -> WatchLedger {
            let fm = FileManager.default
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: folder, isDirectory: &isDir) {
                guard isDir.boolValue else { throw CommandError("\(out): exists and is not a folder") }
                let entries = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { !AtomicOutput.isTemporaryName($0) }
                if entries.contains(WatchLedger.marker) {
                    // Leftovers of a kill: temporary files and folders of atomic writes.
                    for dir in [folder, folder + "/tables"] {
                        for e in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where AtomicOutput.isTemporaryName(e) {
                            try? fm.removeItem(atPath: dir + "/" + e)
                        }
                    }
                    guard fm.fileExists(atPath: folder + "/" + WatchLedger.fileName) else { return WatchLedger(run: runPath, options: optionsText) }
                    let ledger = try WatchLedger.read(folder)
                    guard ledger.run == runPath else { throw CommandError("\(out): follows another run (\(ledger.run)); choose another REPORT_DIR") }
                    guard ledger.options == optionsText else {
                        throw CommandError(
                            "\(out): was made with \(ledger.options), not \(optionsText); its series must keep one setting: use the same options or another REPORT_DIR"
                        )
                    }
                    return ledger
                }
                guard entries.isEmpty else {
                    throw CommandError(
                        "\(out): is not empty and is not a watch folder of moe-inspect (no \(WatchLedger.marker)); choose an empty or new folder")
                }
            }
            try AtomicOutput.makeFolder(folder + "/tables")
            try AtomicOutput.write("moe-inspect watch folder of \(runPath)\n", to: folder + "/" + WatchLedger.marker)
            let ledger = WatchLedger(run: runPath, options: optionsText)
            try ledger.write(folder)
            return ledger
        }

        func run() throws {
            let progress = Progress(quiet: quiet)
            let runPath = AtomicOutput.absolute(runDir)
            let folder = AtomicOutput.absolute(out)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: runPath, isDirectory: &isDir), isDir.boolValue else { throw CommandError("\(runDir): no such folder") }
            if folder == runPath || runPath.hasPrefix(folder + "/") { throw CommandError("\(out): holds the run \(runDir); choose another REPORT_DIR") }
            if CheckpointScanner.step(ofFolderName: (folder as NSString).lastPathComponent) != nil && (folder as NSString).deletingLastPathComponent == runPath
            {
                throw CommandError("\(out): would be read as a checkpoint of the run; choose another name")
            }
            var ledger = try prepare(runPath: runPath, folder: folder)
            let label = RunGrouping.distinctLabels([runPath]).first ?? "run"
            let options = analysis.options
            var previous: [Int: CheckpointScanner.Candidate] = [:]
            var said: [Int: String] = [:]
            var rendered = false
            if !ledger.entries.isEmpty { progress.say("watch: \(ledger.entries.count) checkpoint(s) already analysed, continuing") }
            while true {
                var changed = false
                let seen = CheckpointScanner.scan(runPath)
                for c in seen where !ledger.has(step: c.step) {
                    if let why = CheckpointScanner.incomplete(c, previous: previous[c.step], settle: settle) {
                        if said[c.step] != why { progress.say("watch: waiting for step \(c.step): \(why)"); said[c.step] = why }
                        continue
                    }
                    let start = Date()
                    let results = try runCoupling([c.path], layout: layoutOptions, options: options, quiet: true)
                    let table = "tables/step\(c.step).csv"
                    try CouplingTables.erc(results, options: options, runs: [label]).writeCSV(to: folder + "/" + table)
                    ledger.entries.append(
                        .init(
                            step: c.step, checkpoint: c.path, table: table, bytes: c.files.values.reduce(0) { $0 + $1.size },
                            analysedAt: ISO8601DateFormatter().string(from: Date())))
                    try ledger.write(folder)
                    changed = true
                    progress.say(
                        String(format: "watch: step %d analysed (%d layers, %.1f s)", c.step, results.first?.layers.count ?? 0, Date().timeIntervalSince(start))
                    )
                }
                previous = Dictionary(seen.map { ($0.step, $0) }, uniquingKeysWith: { a, _ in a })
                if (changed || !rendered) && !ledger.entries.isEmpty {
                    try render(folder: folder, runPath: runPath, label: label)
                    rendered = true
                    progress.say("watch: \(out)/report/index.html (\(ledger.entries.count) checkpoints)")
                }
                if once { break }
                Thread.sleep(forTimeInterval: every)
            }
            if ledger.entries.isEmpty { progress.say("watch: no complete checkpoint in \(runDir) yet") }
            print(out + "/report/index.html")
        }

        /// Rebuilds REPORT_DIR/report whole from the tables and the run's logs.
        func render(folder: String, runPath: String, label: String) throws {
            let read = try ERCTableReader.read(folder + "/tables")
            let curves = try RunCurves.read(folder: runPath, label: label)
            let info = BuildInfo.pageInfo(checkpoints: [], others: read.files.map { ("table", $0) }, refreshSeconds: once ? nil : max(5, Int(every.rounded())))
            let report = CouplingReport(figures.settings(checkpoints: read.checkpoints.map(\.checkpoint), quiet: true), info: info)
            try AtomicOutput.buildFolder(at: folder + "/report", replace: FileManager.default.fileExists(atPath: folder + "/report")) { tmp in
                try report.write(tables: read.checkpoints, alphas: read.alphas, curves: curves.map { [$0] } ?? [], to: tmp)
            }
        }
    }
}
