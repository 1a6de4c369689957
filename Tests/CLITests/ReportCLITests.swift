import Foundation
import Testing

/// `report`, `compare` and `plot` as a user runs them on runs shaped like real ones: checkpoints
/// given in shell-glob order, several runs, an alpha ablation, outputs that must not destroy anything.
@Suite struct ReportCLITests {
    let cli = CLITests()

    /// Trains small runs into `root/runs/NAME` (steps 20 ... 120, every 20: `step100` sorts
    /// before `step20` by name); each takes well under a second.
    static func makeRuns(_ cli: CLITests, root: String, _ runs: [(name: String, ercWeight: String, alpha: String)]) throws {
        for r in runs {
            let t = try cli.run([
                "train", "--init", CLITests.fixtures + "/training/tiny-config.json", "--data", CLITests.fixtures + "/corpus/kjv-train.txt",
                "--eval-data", CLITests.fixtures + "/corpus/kjv-eval.txt", "--out", root + "/runs/" + r.name, "--steps", "120",
                "--batch-size", "4", "--seq-len", "64", "--lr", "3e-3", "--save-every", "20", "--eval-batches", "2",
                "--erc-weight", r.ercWeight, "--erc-alpha", r.alpha, "-q",
            ])
            #expect(t.status == 0, "\(t.stderr)")
        }
    }

    /// The step folders of a run in shell-glob (name) order.
    static func globbed(_ run: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("step") }.sorted().map { run + "/" + $0 }
    }

    func csvRows(_ path: String) throws -> [[String: String]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        guard let header = lines.first else { return [] }
        return lines.dropFirst().map { Dictionary(zip(header, $0), uniquingKeysWith: { a, _ in a }) }
    }

    @Test func seriesOfTwoRunsInGlobOrder() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.makeRuns(cli, root: root, [("vanilla", "0", "1"), ("erc", "1", "1")])
        let glob = try Self.globbed(root + "/runs/vanilla") + Self.globbed(root + "/runs/erc")
        #expect(glob[0].hasSuffix("step100"))  // what a shell gives
        let r = try cli.run(["report"] + glob + ["--out", root + "/rep", "--alpha", "1", "--alpha", "0.5", "--no-tsne", "--dpi", "50", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        // Tables: a run column, each run's checkpoints in step order.
        let rows = try csvRows(root + "/rep/tables/erc.csv").filter { $0["layer"] == "0" && $0["alpha"] == "1" }
        #expect(
            rows.map { "\($0["run"] ?? "")@\($0["step"] ?? "")" } == [
                "vanilla@20", "vanilla@40", "vanilla@60", "vanilla@80", "vanilla@100", "vanilla@120",
                "erc@20", "erc@40", "erc@60", "erc@80", "erc@100", "erc@120",
            ])
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/rep/summary.json"))) as? [String: Any]
        let figures = (summary?["figures"] as? [[String: Any]]) ?? []
        let readings = Dictionary(
            figures.compactMap { f in (f["name"] as? String).map { ($0, f["reading"] as? String ?? "") } }, uniquingKeysWith: { a, _ in a })
        for s in ["series_erc_loss", "series_epsilon", "series_coupling_alpha", "series_router_cosine", "series_erc_loss_by_layer", "training_curves"] {
            #expect(readings[s] != nil, "\(s)")
        }
        // The caption speaks of each run from its own first to its own last step.
        let erc = readings["series_erc_loss"] ?? ""
        #expect(erc.contains("vanilla: ") && erc.contains("erc: ") && erc.contains("at step 20") && erc.contains("at step 120"), "\(erc)")
        #expect(erc.contains("(α = 0.5)"))
        #expect(!erc.contains("at step 120 to"), "\(erc)")  // no line from one run's end to the other's
        // The same step twice in one run is refused, naming both paths.
        let twice = try cli.run(["report", glob[0], root + "/runs/vanilla/../vanilla/step100", "--out", root + "/rep2", "-q"])
        #expect(twice.status == 1 && twice.stderr.contains("step 100 twice") && twice.stderr.contains("../vanilla/step100"), "\(twice.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/rep2"))
    }

    @Test func reportFolderSafety() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ckpt = CLITests.fixtures + "/olmoe-tiny"
        let base = ["--no-tsne", "--dpi", "40", "-q"]
        #expect(try cli.run(["report", ckpt, "--out", root + "/rep"] + base).status == 0)
        #expect(FileManager.default.fileExists(atPath: root + "/rep/.moe-inspect-report"))
        // An earlier report is replaced only with --overwrite.
        let again = try cli.run(["report", ckpt, "--out", root + "/rep"] + base)
        #expect(again.status == 1 && again.stderr.contains("--overwrite"), "\(again.stderr)")
        #expect(try cli.run(["report", CLITests.fixtures + "/deepseek-v3-tiny", "--out", root + "/rep", "--overwrite"] + base).status == 0)
        #expect(FileManager.default.fileExists(atPath: root + "/rep/figures/activation_layer2.png"))
        #expect(!FileManager.default.fileExists(atPath: root + "/rep/figures/activation_layer0.png"))
        // A folder of the user's, even with a summary.json, is never replaced, --overwrite or not.
        try FileManager.default.createDirectory(atPath: root + "/mine", withIntermediateDirectories: true)
        try "{}".write(toFile: root + "/mine/summary.json", atomically: true, encoding: .utf8)
        try "notes".write(toFile: root + "/mine/notes.txt", atomically: true, encoding: .utf8)
        for extra in [[], ["--overwrite"]] {
            let r = try cli.run(["report", ckpt, "--out", root + "/mine"] + base + extra)
            #expect(r.status == 1 && r.stderr.contains("not a report folder"), "\(r.stderr)")
            let c = try cli.run(["compare", ckpt, CLITests.fixtures + "/qwen3-moe-tiny", "--out", root + "/mine"] + base.filter { $0 != "--no-tsne" } + extra)
            #expect(c.status == 1 && c.stderr.contains("not a report folder"), "\(c.stderr)")
        }
        #expect(FileManager.default.fileExists(atPath: root + "/mine/notes.txt"))
        // A report never replaces its input.
        try FileManager.default.createDirectory(atPath: root + "/in", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: ckpt + "/model.safetensors", toPath: root + "/in/model.safetensors")
        try FileManager.default.copyItem(atPath: ckpt + "/config.json", toPath: root + "/in/config.json")
        try "moe-inspect report\n".write(toFile: root + "/in/.moe-inspect-report", atomically: true, encoding: .utf8)
        let onInput = try cli.run(["report", root + "/in", "--out", root + "/in", "--overwrite"] + base)
        #expect(onInput.status == 1 && onInput.stderr.contains("input"), "\(onInput.stderr)")
        #expect(FileManager.default.fileExists(atPath: root + "/in/model.safetensors"))
        let csvOnInput = try cli.run(["erc", root + "/in", "--csv", root + "/in/model.safetensors", "-q"])
        #expect(csvOnInput.status == 1 && csvOnInput.stderr.contains("read from the input"), "\(csvOnInput.stderr)")
    }

    /// `--out .` and `./` used to crash (Foundation traps on `"."` in deletingLastPathComponent).
    @Test func outIntoTheCurrentFolder() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (k, out) in [".", "./"].enumerated() {
            let dir = root + "/here\(k)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let r = try cli.run(["report", CLITests.fixtures + "/olmoe-tiny", "--out", out, "--no-tsne", "--dpi", "40", "-q"], cwd: dir)
            #expect(r.status == 0, "\(out): \(r.stderr)")
            #expect(FileManager.default.fileExists(atPath: dir + "/index.html"))
            #expect(FileManager.default.fileExists(atPath: dir + "/.moe-inspect-report"))
            let c = try cli.run(
                ["compare", CLITests.fixtures + "/olmoe-tiny", CLITests.fixtures + "/qwen3-moe-tiny", "--out", out, "--overwrite", "--dpi", "40", "-q"],
                cwd: dir)
            #expect(c.status == 0, "\(out): \(c.stderr)")
            #expect(FileManager.default.fileExists(atPath: dir + "/tables/differences.csv"))
            #expect(!FileManager.default.fileExists(atPath: dir + "/figures/tsne_experts.png"))  // the old report is gone whole
            let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
            #expect(left.isEmpty, "\(left)")
        }
    }

    @Test func threeWayComparisonByAlpha() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.makeRuns(cli, root: root, [("erc-alpha2", "1", "2"), ("erc-alpha0.5", "1", "0.5"), ("erc-alpha1", "1", "1")])
        let runs = ["erc-alpha2", "erc-alpha0.5", "erc-alpha1"].map { root + "/runs/" + $0 }
        let r = try cli.run(["compare"] + runs + ["--by", "alpha", "--out", root + "/cmp", "--dpi", "50", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let by = try csvRows(root + "/cmp/tables/by_alpha.csv")
        #expect(by.map { $0["alpha"] ?? "" } == ["0.5", "1", "2"])
        #expect(by.map { $0["label"] ?? "" } == ["erc-alpha0.5", "erc-alpha1", "erc-alpha2"])
        #expect(by.allSatisfy { Double($0["held_out_loss"] ?? "") != nil }, "\(by)")  // from each run's eval.csv at step 120
        #expect(by.allSatisfy { $0["step"] == "120" })  // a run stands for its latest checkpoint
        for f in ["figures/by_alpha.png", "figures/training_curves.png", "figures/coupling_profile.png", "index.html"] {
            #expect(FileManager.default.fileExists(atPath: root + "/cmp/" + f), "\(f)")
        }
        // Labels are unique, so are the columns and the JSON keys.
        let header = try String(contentsOfFile: root + "/cmp/tables/differences.csv", encoding: .utf8).split(separator: "\n")[0].split(separator: ",")
        #expect(Set(header).count == header.count)
        // Same-named checkpoints of two runs get the run as label.
        let same = try cli.run(["compare", runs[0] + "/step120", runs[1] + "/step120", "--out", root + "/cmp2", "--dpi", "40", "-q"])
        #expect(same.status == 0, "\(same.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/cmp2/summary.json"))) as? [String: Any]
        #expect(summary?["labels"] as? [String] == ["erc-alpha2", "erc-alpha0.5"])
        // A value that cannot be found is an error that says how to give it.
        let missing = try cli.run(["compare", runs[0], CLITests.fixtures + "/olmoe-tiny", "--by", "alpha", "--out", root + "/cmp3", "-q"])
        #expect(missing.status == 1 && missing.stderr.contains("--labels"), "\(missing.stderr)")
        let dup = try cli.run(["compare", runs[0], runs[1], "--labels", "A,A", "--out", root + "/cmp4", "-q"])
        #expect(dup.status != 0 && dup.stderr.contains("unique"))
    }

    @Test func plotValidatesItsInputsAndDrawsHeldOutLoss() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.makeRuns(cli, root: root, [("a", "1", "1")])
        let run = root + "/runs/a"
        for args in [
            [run + "/log.csv"], [run + "/eval.csv"], [run], [run + "/log.csv", "--smooth", "0.9", "--log-y", "--width", "paper", "--font-scale", "0.8"],
        ] {
            let p = try cli.run(["plot"] + args + ["--out", root + "/p.png", "-q"])
            #expect(p.status == 0, "\(args): \(p.stderr)")
            #expect(p.stderr.isEmpty, "\(p.stderr)")
        }
        // The last one asked for --width paper: 3.3 inches at 150 dpi.
        let png = try Data(contentsOf: URL(fileURLWithPath: root + "/p.png"))
        #expect(png.count > 24 && png[16..<20].reduce(0) { $0 << 8 | Int($1) } == 495)
        // An erc table and analysis.csv are said to be what they are, not drawn empty.
        #expect(try cli.run(["erc", CLITests.fixtures + "/olmoe-tiny", "--csv", root + "/erc.csv", "-q"]).status == 0)
        let erc = try cli.run(["plot", root + "/erc.csv", "--out", root + "/q.png"])
        #expect(erc.status == 1 && erc.stderr.contains("table of moe-inspect erc"), "\(erc.stderr)")
        let analysis = try cli.run(["plot", run + "/analysis.csv", "--out", root + "/q.png"])
        #expect(analysis.status == 1 && analysis.stderr.contains("per-layer"), "\(analysis.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/q.png"))
        #expect(try cli.run(["plot", run + "/log.csv", "--smooth", "1", "--out", root + "/q.png"]).status != 0)
    }

    @Test func versionSaysTheCommitWhenTheBinarySitsInACheckout() throws {
        let v = try cli.run(["--version"])
        #expect(v.status == 0)
        #expect(v.stdout.hasPrefix("0."), "\(v.stdout)")
        #expect(v.stdout.contains("commit"))
    }
}
