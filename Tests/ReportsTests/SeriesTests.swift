import Analysis
import Checkpoints
import Foundation
import Plotting
import Testing

@testable import Reports

/// Checkpoints ordered by step and grouped into runs; captions computed per run.
@Suite struct SeriesTests {
    @Test func checkpointsAreOrderedByTheStepInTheirPathNotByName() throws {
        let groups = try RunGrouping.group(["r/step100", "r/step1000", "r/step20"])
        #expect(groups.count == 1)
        #expect(groups[0].members == [2, 0, 1])
        #expect(groups[0].label == "r")
    }

    @Test func theFolderAboveTheStepMakesTheRun() throws {
        let groups = try RunGrouping.group(["runs/a/step400", "runs/b/step100", "./runs/a/step100", "runs/b/step400"])
        #expect(groups.map(\.label) == ["a", "b"])
        #expect(groups[0].members == [2, 0])
        #expect(groups[1].members == [1, 3])
    }

    @Test func aRepeatedStepInOneRunNamesBothPaths() {
        #expect {
            try RunGrouping.group(["runs/a/step100", "runs/a/step200", "runs/a/../a/step100"])
        } throws: { e in
            let d = "\(e)"
            return d.contains("step 100 twice") && d.contains("runs/a/step100") && d.contains("runs/a/../a/step100")
        }
    }

    @Test func runLabelsPerCheckpointOrPerRun() throws {
        // One label per checkpoint: flat files of two runs.
        let flat = try RunGrouping.group(["x/step1.safetensors", "y/step1.safetensors", "x/step2.safetensors"], labels: ["A", "B", "A"])
        #expect(flat.map(\.label) == ["A", "B"])
        #expect(flat[0].members == [0, 2])
        // One label per run folder found.
        let named = try RunGrouping.group(["a/step1", "a/step2", "b/step1"], labels: ["MoE", "MoE+ERC"])
        #expect(named.map(\.label) == ["MoE", "MoE+ERC"])
        #expect(throws: ReportError.self) { try RunGrouping.group(["a/step1", "a/step2", "b/step1"], labels: ["x", "y", "z", "w"]) }
        #expect(throws: ReportError.self) { try RunGrouping.group(["a/step1", "b/step1"], labels: ["x", ""]) }
    }

    @Test func labelsComeFromThePartsThatDifferAndAreAlwaysUnique() {
        #expect(RunGrouping.distinctLabels(["runs/vanilla/step400", "runs/erc/step400"]) == ["vanilla", "erc"])
        #expect(RunGrouping.distinctLabels(["A/step400", "B/step400"]) == ["A", "B"])
        #expect(RunGrouping.distinctLabels(["run/step400", "run/step800"]) == ["step400", "step800"])
        #expect(RunGrouping.distinctLabels(["x/m.safetensors", "x/m.safetensors"]) == ["m.safetensors", "m.safetensors (2)"])
        #expect(RunGrouping.distinctLabels(["fixtures/olmoe-tiny"]) == ["olmoe-tiny"])
        let labels = RunGrouping.distinctLabels(["a/b/c/step1", "a/x/y/step1", "a/b/c/step1"])
        #expect(Set(labels).count == 3)
    }

    @Test func sentencesStayTrueWhenValuesAreZeroOrEqual() {
        #expect(Readings.change(from: 0.01, at: "step 100", to: 0.004, at: "step 400") == "from 0.01 at step 100 to 0.004 at step 400 (-60%)")
        #expect(Readings.change(from: 0, at: "step 1", to: 0, at: "step 2") == "0 at both step 1 and step 2")
        #expect(Readings.change(from: 0, at: "step 1", to: 0.5, at: "step 2") == "from 0 at step 1 to 0.5 at step 2")
        #expect(!Readings.change(from: 1, at: "a", to: 1.00001, at: "b").contains("%"))
        #expect(Readings.percent(0.04) == "+0.04%")
        // The ERC loss per layer when every layer's loss is zero.
        var l0 = LayerNumbers(layer: 0, experts: 4), l1 = LayerNumbers(layer: 1, experts: 4)
        l0.erc = [ERCNumbers(alpha: 1, loss: 0, specialization: 0, precision: 0)]
        l1.erc = [ERCNumbers(alpha: 1, loss: 0, specialization: 0, precision: 0)]
        let reading = CouplingReport.ercReading([l0, l1], alpha: 1)
        #expect(reading.contains("zero in every layer"))
        #expect(!reading.contains("highest") && !reading.contains("0%"))
    }

    /// Two runs whose means go up, each from its own start: captions say so run by run.
    static func twoRuns() -> [CheckpointNumbers] {
        func c(_ run: String, _ step: Int, _ loss: Double, _ alpha: Double) -> CheckpointNumbers {
            let layers = (0..<2).map { k -> LayerNumbers in
                var l = LayerNumbers(layer: k, experts: 4)
                l.erc = [
                    ERCNumbers(alpha: 1, loss: loss * Double(k + 1) / 1.5, specialization: loss / 2, precision: loss / 2),
                    ERCNumbers(alpha: 0.5, loss: 2 * loss, specialization: loss, precision: loss),
                ]
                l.couplingAlpha = alpha; l.epsMean = 0.6; l.epsMin = 0.5; l.epsMax = 0.7; l.cosineMeanAbs = 0.15
                l.mDiagonalMean = 2; l.mOffDiagonalMean = 1
                return l
            }
            return CheckpointNumbers(checkpoint: "runs/\(run)/step\(step)", step: step, run: run, layers: layers)
        }
        return [c("vanilla", 400, 0.02, 2.2), c("erc", 100, 0.005, 1.0), c("vanilla", 100, 0.01, 2.0), c("erc", 400, 0.006, 0.8)]
    }

    @Test func seriesCaptionsAreComputedPerRun() throws {
        let series = RunSeries.gather(Self.twoRuns())
        #expect(series.map(\.label) == ["vanilla", "erc"])
        #expect(series[0].checkpoints.map(\.step) == [100, 400])
        let reading = Readings.series(series, .ercLoss(1))
        #expect(reading.contains("vanilla: from 0.01 at step 100 to 0.02 at step 400 (+100%)"), "\(reading)")
        #expect(reading.contains("erc: from 0.005 at step 100 to 0.006 at step 400 (+20%)"), "\(reading)")
        #expect(!reading.contains("-40%") && !reading.contains("-70%"))
        let verdict = CouplingReport.verdict(series, alpha: 1)
        #expect(verdict.first?.hasPrefix("erc (step 400) has, against vanilla (step 400), a lower α* in both layers (mean 2.2 → 0.8)") == true, "\(verdict)")
    }

    @Test func aReportFromTablesDrawsEveryRunAndEveryAlpha() throws {
        let dir = NSTemporaryDirectory() + "moe-series-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let report = CouplingReport(FigureSettings(dpi: 50))
        let figures = try report.write(tables: Self.twoRuns(), alphas: [1, 0.5], to: dir)
        let stems = Set(figures.map(\.stem))
        for s in [
            "series_erc_loss", "series_erc_loss_by_layer", "series_epsilon", "series_coupling_alpha", "series_router_cosine",
            "erc_by_layer", "erc_by_layer_alpha0.5", "coupling_alpha",
        ] {
            #expect(stems.contains(s), "\(s)")
        }
        let erc = try #require(figures.first { $0.stem == "series_erc_loss" })
        #expect(erc.reading.contains("(α = 1)") && erc.reading.contains("(α = 0.5)"))
        // The table lists each run's checkpoints in step order, with the run.
        let csv = try String(contentsOfFile: dir + "/tables/erc.csv", encoding: .utf8)
        let rows = try CSV.parse(csv, source: "erc.csv").records
        let run = try #require(rows.first?.firstIndex(of: "run")), step = try #require(rows.first?.firstIndex(of: "step"))
        let order = rows.dropFirst().map { "\($0[run])@\($0[step])" }
        #expect(order.first == "vanilla@100" && order.last == "erc@400")
        #expect(FileManager.default.fileExists(atPath: dir + "/" + ReportMarker.name))
    }

    @Test func ercTablesReadBackAsTheyWereWritten() throws {
        let dir = NSTemporaryDirectory() + "moe-tables-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let all = Self.twoRuns()
        let csv = CouplingTables.erc(Array(all.prefix(2)), alphas: [1, 0.5])
        let json = CouplingTables.erc(Array(all.suffix(2)), alphas: [1, 0.5])
        try csv.writeCSV(to: dir + "/a.csv")
        try (json.json.serialized(pretty: true) + "\n").write(toFile: dir + "/sub/b.json", atomically: true, encoding: .utf8)
        try "step,tokens,eval_loss,eval_tokens\n1,2,3,4\n".write(toFile: dir + "/eval.csv", atomically: true, encoding: .utf8)
        let read = try ERCTableReader.read(dir)
        #expect(read.files.count == 2)
        #expect(read.skipped.count == 1)
        #expect(read.alphas == [1, 0.5])
        #expect(read.checkpoints.count == 4)
        for c in all {
            let back = try #require(read.checkpoints.first { $0.checkpoint == c.checkpoint })
            #expect(back.run == c.run && back.step == c.step)
            for (a, b) in zip(c.layers, back.layers) {
                #expect(a.layer == b.layer && a.experts == b.experts && a.status == b.status)
                #expect(abs(a.couplingAlpha - b.couplingAlpha) <= 1e-6 * a.couplingAlpha)
                for (x, y) in zip(a.erc, b.erc) { #expect(x.alpha == y.alpha && abs(x.loss - y.loss) <= 1e-6 * max(x.loss, 1e-12)) }
            }
        }
        // A table cut short, or an empty one (a failed job), is an error naming it.
        try "checkpoint,layer\nx,1".write(toFile: dir + "/c.csv", atomically: true, encoding: .utf8)
        #expect { try ERCTableReader.read(dir) } throws: { "\($0)".contains("c.csv") }
        try "".write(toFile: dir + "/c.csv", atomically: true, encoding: .utf8)
        #expect { try ERCTableReader.read(dir) } throws: { "\($0)".contains("c.csv") && "\($0)".contains("empty") }
    }

    @Test func stdColumnsOnlyWithSeveralNoiseSamples() {
        var one = Self.twoRuns()[0]
        one.noiseSamples = 1
        let display = CouplingTables.ercDisplay(CouplingTables.erc([one], alphas: [1]))
        #expect(!display.columns.contains("±std"))
        var many = one
        many.noiseSamples = 8
        many.layers[0].erc[0].lossStd = 0.001
        #expect(CouplingTables.ercDisplay(CouplingTables.erc([many], alphas: [1])).columns.contains("±std"))
    }

    @Test func byParameterValuesAreReadFromNames() {
        #expect(ByParameterFigures.value(of: "alpha", in: "alpha0.5") == 0.5)
        #expect(ByParameterFigures.value(of: "alpha", in: "erc-alpha=1") == 1)
        #expect(ByParameterFigures.value(of: "alpha", in: "Alpha_2") == 2)
        #expect(ByParameterFigures.value(of: "alpha", in: "alpha1e-3") == 0.001)
        #expect(ByParameterFigures.value(of: "alpha", in: "alpha0.5-seed1") == 0.5)
        #expect(ByParameterFigures.value(of: "alpha", in: "salpha1") == nil)
        #expect(ByParameterFigures.value(of: "alpha", in: "alpha") == nil)
        #expect(ByParameterFigures.value(of: "weight", in: "erc-weight=0.01") == 0.01)
    }

    @Test func comparisonColumnsAreUnique() throws {
        let all = Self.twoRuns()
        let t = try ComparisonReport.differences([("A", all[0]), ("B", all[1]), ("C", all[2])], alphas: [1])
        #expect(Set(t.columns).count == t.columns.count)
        #expect(throws: ReportError.self) { try ComparisonReport.differences([("A", all[0]), ("diff", all[1])], alphas: [1]) }
    }

    @Test func fingerprintsAreSHA256() throws {
        var h = SHA256()
        h.update("abc")
        #expect(h.hexDigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var e = SHA256()
        #expect(e.hexDigest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var m = SHA256()
        for _ in 0..<1000 { m.update([UInt8](repeating: 0x61, count: 1000)) }
        #expect(m.hexDigest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        var odd = SHA256()
        odd.update("abcdbcdecdefdefgefghfghighijhi"); odd.update("jkijkljklmklmnlmnomnopnopq")
        #expect(odd.hexDigest() == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func allZeroLossesGetAnAxisFromZero() throws {
        let f = Figure()
        f.axes[0].y.includesZero = true
        try f.axes[0].plot(x: [1, 2, 3], y: [0, 0, 0])
        #expect(f.layout().axes[0].y.limits == 0...1)
    }
}
