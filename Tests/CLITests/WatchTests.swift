import Foundation
import Testing

/// `watch` beside a trainer writing into the same folder: a checkpoint half written is never
/// read, a completed one is analysed once, and a killed watch continues where it stopped.
@Suite struct WatchTests {
    let cli = CLITests()

    func ledgerSteps(_ dir: String) -> [Int] {
        guard let d = FileManager.default.contents(atPath: dir + "/ledger.json"),
            let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
            let c = o["checkpoints"] as? [[String: Any]]
        else { return [] }
        return c.compactMap { $0["step"] as? Int }
    }

    func ledgerTimes(_ dir: String) -> [Int: String] {
        guard let d = FileManager.default.contents(atPath: dir + "/ledger.json"),
            let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
            let c = o["checkpoints"] as? [[String: Any]]
        else { return [:] }
        return Dictionary(c.compactMap { e in (e["step"] as? Int).map { ($0, e["analysed_at"] as? String ?? "") } }, uniquingKeysWith: { a, _ in a })
    }

    func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return condition()
    }

    /// Writes a Hugging Face checkpoint `step` into `run`: config first, then the weights
    /// (only the first `fraction` of their bytes).
    func writeCheckpoint(_ run: String, step: Int, fraction: Double = 1) throws {
        let dir = run + "/step\(step)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(contentsOf: URL(fileURLWithPath: CLITests.fixtures + "/olmoe-tiny/config.json")).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let w = try Data(contentsOf: URL(fileURLWithPath: CLITests.fixtures + "/olmoe-tiny/model.safetensors"))
        try w.prefix(Int(Double(w.count) * fraction)).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
    }

    @Test func followsARunWhileItIsWritten() throws {
        let bin = try #require(CLITests.binary)
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let run = root + "/run", out = root + "/watch"
        try writeCheckpoint(run, step: 100)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["watch", run, "--out", out, "--every", "0.2", "--settle", "1", "--dpi", "40", "-q"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // SIGKILL: a child of the test process inherits its blocked signals, SIGTERM among them.
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        #expect(waitFor(60) { ledgerSteps(out) == [100] && FileManager.default.fileExists(atPath: out + "/report/index.html") })

        // Half a checkpoint: present for several scans, never analysed.
        try writeCheckpoint(run, step: 200, fraction: 0.5)
        Thread.sleep(forTimeInterval: 3)
        #expect(ledgerSteps(out) == [100])
        #expect(!FileManager.default.fileExists(atPath: out + "/tables/step200.csv"))
        // Completed: analysed once, and the report follows.
        let w = try Data(contentsOf: URL(fileURLWithPath: CLITests.fixtures + "/olmoe-tiny/model.safetensors"))
        let h = try #require(FileHandle(forWritingAtPath: run + "/step200/model.safetensors"))
        try h.seekToEnd()
        try h.write(contentsOf: w.suffix(from: w.count / 2))
        try h.close()
        #expect(waitFor(60) { ledgerSteps(out) == [100, 200] })
        #expect(
            waitFor(30) {
                ((try? String(contentsOfFile: out + "/report/tables/erc.csv", encoding: .utf8)) ?? "").contains("/run/step200,200,")
            })
        let first = ledgerTimes(out)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()

        // Killed and started again: continues, analysing only what is new.
        try writeCheckpoint(run, step: 300)
        Thread.sleep(forTimeInterval: 1.2)
        let again = try cli.run(["watch", run, "--out", out, "--once", "--settle", "1", "--dpi", "40"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("2 checkpoint(s) already analysed"), "\(again.stderr)")
        #expect(ledgerSteps(out) == [100, 200, 300])
        let second = ledgerTimes(out)
        #expect(second[100] == first[100] && second[200] == first[200])
        let html = try String(contentsOfFile: out + "/report/index.html", encoding: .utf8)
        #expect(html.contains("step 300") || html.contains("step300"))
        #expect(FileManager.default.fileExists(atPath: out + "/report/figures/series_erc_loss.png"))
        // Other options than the ledger's would break the series: refused.
        let other = try cli.run(["watch", run, "--out", out, "--once", "--alpha", "0.5"])
        #expect(other.status == 1 && other.stderr.contains("was made with"), "\(other.stderr)")
    }

    @Test func anOLMoCoreCheckpointIsReadOnlyOnceItsMetadataIsWritten() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let run = root + "/run", out = root + "/watch"
        let src = CLITests.fixtures + "/olmo-core/dropless/step3"
        let dst = run + "/step3"
        let fm = FileManager.default
        try fm.createDirectory(atPath: dst + "/model_and_optim", withIntermediateDirectories: true)
        try fm.copyItem(atPath: src + "/config.json", toPath: dst + "/config.json")
        for f in try fm.contentsOfDirectory(atPath: src + "/model_and_optim") where f != ".metadata" {
            try fm.copyItem(atPath: src + "/model_and_optim/" + f, toPath: dst + "/model_and_optim/" + f)
        }
        let before = try cli.run(["watch", run, "--out", out, "--once", "--settle", "0", "--dpi", "40"])
        #expect(before.status == 0, "\(before.stderr)")
        #expect(before.stderr.contains(".metadata"), "\(before.stderr)")
        #expect(ledgerSteps(out).isEmpty)
        try fm.copyItem(atPath: src + "/model_and_optim/.metadata", toPath: dst + "/model_and_optim/.metadata")
        let after = try cli.run(["watch", run, "--out", out, "--once", "--settle", "0", "--dpi", "40"])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(ledgerSteps(out) == [3])
        #expect(fm.fileExists(atPath: out + "/report/index.html"))
    }

    @Test func reportFromTablesAlone() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // One erc job per checkpoint (as a SLURM array would run them), then one report.
        for s in [100, 200] { try writeCheckpoint(root + "/run", step: s) }
        try FileManager.default.createDirectory(atPath: root + "/tables", withIntermediateDirectories: true)
        #expect(try cli.run(["erc", root + "/run/step100", "--alpha", "1", "--alpha", "0.5", "--csv", root + "/tables/step100.csv", "-q"]).status == 0)
        let j = try cli.run(["erc", root + "/run/step200", "--alpha", "1", "--alpha", "0.5", "--json", "-q"])
        try j.stdout.write(toFile: root + "/tables/step200.json", atomically: true, encoding: .utf8)
        let r = try cli.run(["report", "--tables", root + "/tables", "--out", root + "/rep", "--dpi", "40", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["series_erc_loss", "series_epsilon", "series_coupling_alpha", "series_router_cosine", "coupling_alpha", "erc_by_layer"] {
            #expect(FileManager.default.fileExists(atPath: root + "/rep/figures/\(f).png"), "\(f)")
        }
        let csv = try String(contentsOfFile: root + "/rep/tables/erc.csv", encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 1 + 2 * 2 * 2)
        // Checkpoints and --tables together make no sense.
        #expect(try cli.run(["report", root + "/run/step100", "--tables", root + "/tables", "--out", root + "/x"]).status != 0)
    }
}
