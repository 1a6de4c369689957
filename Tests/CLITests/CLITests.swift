import Foundation
import Testing

/// End-to-end runs of the built `moe-inspect` binary on the fixtures.
@Suite struct CLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let fixtures = root + "/fixtures"

    /// The binary: $MOE_INSPECT_BIN, else the one built beside this test bundle (the products
    /// folder of the build that is running, as swift-argument-parser's test helpers find it).
    static var binary: String? {
        if let b = ProcessInfo.processInfo.environment["MOE_INSPECT_BIN"], FileManager.default.isExecutableFile(atPath: b) { return b }
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            Bundle.main.bundleURL,
        ]
        for dir in candidates where FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("moe-inspect").path) {
            return dir.appendingPathComponent("moe-inspect").path
        }
        return nil
    }

    struct Run { var status: Int32; var stdout: String; var stderr: String }

    func run(_ args: [String], environment: [String: String] = [:], cwd: String? = nil) throws -> Run {
        let bin = try #require(CLITests.binary, "build moe-inspect first (make test does)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func temporaryFolder() -> String {
        let p = NSTemporaryDirectory() + "moe-cli-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    @Test func helpExplainsEveryCommand() throws {
        let top = try run(["--help"])
        #expect(top.status == 0)
        for c in ["info", "erc", "epsilon", "similarity", "convert", "synth"] {
            #expect(top.stdout.contains(c))
            let h = try run([c, "--help"])
            #expect(h.status == 0, "\(c)")
            #expect(h.stdout.contains("USAGE"), "\(c)")
        }
        #expect(try run(["erc", "--help"]).stdout.contains("default 1"))
    }

    @Test func infoOnEveryFamily() throws {
        for (f, family) in [
            ("olmoe-tiny", "olmoe"), ("mixtral-tiny", "mixtral"), ("qwen2-moe-tiny", "qwen2_moe"), ("deepseek-v3-tiny", "deepseek_v3"),
            ("olmoe-tiny.h5", "olmoe"),
        ] {
            let r = try run(["info", CLITests.fixtures + "/" + f])
            #expect(r.status == 0, "\(f): \(r.stderr)")
            #expect(r.stdout.contains(family))
        }
        let j = try run(["info", "--json", CLITests.fixtures + "/deepseek-v3-tiny"])
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any]
        #expect(obj?["dense_layers"] as? [Int] == [0])
        #expect(obj?["moe_layers"] as? [Int] == [1, 2])
        #expect(obj?["parameters_total"] as? Int == 51664)
    }

    @Test(arguments: [
        "empty.safetensors", "header-length-too-large.safetensors", "shape-overflow.safetensors",
        "duplicate-names.safetensors", "unknown-dtype.safetensors", "missing-shard", "corrupt.h5", "garbage.h5",
    ])
    func malformedInputGetsOneLineAndExitCode1(_ file: String) throws {
        let path = CLITests.fixtures + "/malformed/" + file
        let r = try run(["info", path])
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("moe-inspect: error: "), "\(r.stderr)")
        #expect(r.stderr.contains("malformed/" + file))
    }

    @Test func convertRoundTripAndNoOverwrite() throws {
        let dir = temporaryFolder()
        #expect(try run(["convert", CLITests.fixtures + "/olmoe-tiny", dir + "/m.h5", "-q"]).status == 0)
        #expect(try run(["convert", dir + "/m.h5", dir + "/back", "--dtype", "bf16", "-q"]).status == 0)
        let info = try run(["info", dir + "/back"])
        #expect(info.stdout.contains("BF16") && info.stdout.contains("olmoe"))
        let again = try run(["convert", CLITests.fixtures + "/olmoe-tiny", dir + "/m.h5", "-q"])
        #expect(again.status == 1 && again.stderr.contains("already exists; choose another output or pass --overwrite"), "\(again.stderr)")
        #expect(try run(["convert", CLITests.fixtures + "/olmoe-tiny", dir + "/x", "--dtype", "f7"]).status != 0)
    }

    @Test func ercTableHasTheDocumentedColumnsAndPyTorchValues() throws {
        let r = try run(["erc", CLITests.fixtures + "/olmoe-tiny", "--no-noise", "--alpha", "1", "--alpha", "0.5", "--csv", "-", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(
            lines.first?.hasPrefix(
                "checkpoint,step,layer,n_experts,alpha,erc_loss,erc_specialization,erc_precision,eps_mean,eps_min,eps_max,router_cos_mean_abs,m_diag_mean,m_offdiag_mean,coupling_alpha"
            ) == true)
        #expect(lines.count == 1 + 2 * 2)
        // Layer 0, alpha 1: PyTorch (fixtures/erc/expected.json).
        let expected =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CLITests.fixtures + "/erc/expected.json"))) as? [String: Any]
        let layer0 = ((expected?["models"] as? [String: Any])?["olmoe-tiny"] as? [String: Any]).flatMap {
            ($0["layers"] as? [String: Any])?["0"] as? [String: Any]
        }
        let want = ((layer0?["alphas"] as? [String: Any])?["1.0"] as? [String: Any]).flatMap { ($0["clean"] as? [String: Double])?["loss"] }
        let cells = lines[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(cells[2] == "0" && cells[4] == "1")
        let got = try #require(Double(cells[5]))
        #expect(abs(got - (want ?? .nan)) <= 1e-4 * abs(want ?? 1))
        let bad = try run(["erc", CLITests.fixtures + "/olmoe-tiny", "--layers", "7"])
        #expect(bad.status == 1 && bad.stderr.contains("not MoE layers"))
        let dir = temporaryFolder()
        #expect(try run(["erc", CLITests.fixtures + "/qwen2-moe-tiny", "--matrices", dir, "-q"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/layer2_activation.csv"))
        #expect(FileManager.default.fileExists(atPath: dir + "/layer0_router_cosine.csv"))
    }

    @Test func synthThenAnalyse() throws {
        let dir = temporaryFolder()
        let s = try run(["synth", "--like", "tiny", "--layers", "3", "--experts", "4", dir + "/s", "-q"])
        #expect(s.status == 0, "\(s.stderr)")
        let e = try run(["epsilon", dir + "/s", "--csv", "-", "-q"])
        #expect(e.stdout.split(separator: "\n").count == 1 + 3 * 4)
        #expect(try run(["synth", "--like", "tiny", "--top-k", "9", dir + "/t"]).status != 0)
    }
}

extension CLITests {
    @Test func reportCompareAndPlotWriteTheirFiles() throws {
        let dir = temporaryFolder()
        let r = try run(["report", CLITests.fixtures + "/olmoe-tiny", "--out", dir + "/rep", "--format", "png,svg", "--dpi", "72", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["index.html", "summary.json", "tables/erc.csv", "figures/activation_all_layers.png", "figures/coupling_profile.svg"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/rep/" + f), "\(f)")
        }
        // A folder with someone's files is not written into.
        try "mine".write(toFile: dir + "/rep2-keep.txt", atomically: true, encoding: .utf8)
        let refused = try run(["report", CLITests.fixtures + "/olmoe-tiny", "--out", dir, "-q"])
        #expect(refused.status == 1 && refused.stderr.contains("not empty"))
        let c = try run([
            "compare", CLITests.fixtures + "/olmoe-tiny", CLITests.fixtures + "/qwen3-moe-tiny", "--labels", "A,B", "--out", dir + "/cmp", "--dpi", "72", "-q",
        ])
        #expect(c.status == 0, "\(c.stderr)")
        let diff = try String(contentsOfFile: dir + "/cmp/tables/differences.csv", encoding: .utf8)
        #expect(diff.hasPrefix("layer,alpha,erc_loss_A,erc_loss_B,erc_loss_diff"))
        try "step,lm_loss,erc_loss\n1,5.0,0.1\n2,4.5,0.08\n".write(toFile: dir + "/log.csv", atomically: true, encoding: .utf8)
        let p = try run(["plot", dir + "/log.csv", "--out", dir + "/curves.pdf"])
        #expect(p.status == 0, "\(p.stderr)")
        let pdf = try Data(contentsOf: URL(fileURLWithPath: dir + "/curves.pdf"))
        #expect(pdf.starts(with: Data("%PDF".utf8)))
        #expect(try run(["plot", dir + "/log.csv", "--out", dir + "/x.gif"]).status != 0)
    }
}

extension CLITests {
    @Test func trainSavesCheckpointsTheOtherCommandsRead() throws {
        let dir = temporaryFolder()
        let corpus = CLITests.fixtures + "/corpus/kjv-eval.txt"
        let r = try run([
            "train", "--init", CLITests.fixtures + "/training/tiny-config.json", "--data", corpus, "--out", dir + "/run",
            "--steps", "6", "--batch-size", "2", "--seq-len", "32", "--save-every", "3", "--erc-weight", "1", "-q",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["log.csv", "step3/model.safetensors", "step6/config.json"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/run/" + f), "\(f)")
        }
        let log = try String(contentsOfFile: dir + "/run/log.csv", encoding: .utf8)
        #expect(log.hasPrefix("step,tokens,lr,loss,lm_loss,lb_loss,z_loss,erc_loss,eps_mean,grad_norm,tokens_per_s"))
        let erc = try run(["erc", dir + "/run/step3", dir + "/run/step6", "--csv", "-", "-q"])
        #expect(erc.status == 0)
        #expect(erc.stdout.contains("/run/step6,6,0,8,1,"))
        // Tokens outside the vocabulary: the error names the position.
        try Data([1, 2, 3, 200, 250]).write(to: URL(fileURLWithPath: dir + "/bad.bin"))
        var small = try String(contentsOfFile: CLITests.fixtures + "/training/tiny-config.json", encoding: .utf8)
        small = small.replacingOccurrences(of: "\"vocab_size\": 256", with: "\"vocab_size\": 100")
        try small.write(toFile: dir + "/small.json", atomically: true, encoding: .utf8)
        let bad = try run(["train", "--init", dir + "/small.json", "--data", dir + "/bad.bin", "--data-dtype", "uint8", "--out", dir + "/bad", "-q"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("position 3"), "\(bad.stderr)")
    }

    /// `--precision bf16` without oneDNN's BF16 products (forced here by asking for OpenBLAS)
    /// trains with the products emulated in Float32 and says so on stderr: a bf16 run (its
    /// losses are not the fp32 run's, yet near them), never a quiet fp32 run, never a refusal
    /// on a machine whose CPU lacks BF16 units.
    @Test func bf16WithoutBF16KernelsIsEmulatedWithAWarning() throws {
        let dir = temporaryFolder()
        func train(_ precision: String) throws -> (Run, [Double]) {
            let r = try run(
                [
                    "train", "--init", CLITests.fixtures + "/training/tiny-config.json", "--data", CLITests.fixtures + "/corpus/kjv-eval.txt",
                    "--out", dir + "/" + precision, "--steps", "3", "--batch-size", "2", "--seq-len", "16", "--precision", precision, "-q",
                ],
                environment: ["MOE_INSPECT_GEMM": "openblas"])
            let log = (try? String(contentsOfFile: dir + "/" + precision + "/log.csv", encoding: .utf8)) ?? ""
            let header = log.split(separator: "\n").first.map { $0.split(separator: ",").map(String.init) } ?? []
            let column = header.firstIndex(of: "lm_loss") ?? 0
            let losses = log.split(separator: "\n").dropFirst().compactMap { Double($0.split(separator: ",", omittingEmptySubsequences: false)[column]) }
            return (r, losses)
        }
        let (bf16, bf16Losses) = try train("bf16")
        #expect(bf16.status == 0, "\(bf16.stderr)")
        #expect(
            bf16.stderr == "moe-inspect: warning: --precision bf16: MOE_INSPECT_GEMM=openblas asks for OpenBLAS, which has no BF16 products; "
                + "the BF16-rounded operands are multiplied in Float32 (the same numbers, without the speed-up)\n", "\(bf16.stderr)")
        let (fp32, fp32Losses) = try train("fp32")
        #expect(fp32.status == 0 && fp32.stderr.isEmpty, "\(fp32.stderr)")
        #expect(bf16Losses.count == 3 && fp32Losses.count == 3, "\(bf16Losses) \(fp32Losses)")
        #expect(bf16Losses != fp32Losses, "the bf16 run gave the fp32 run's losses: nothing was rounded")
        for (x, y) in zip(bf16Losses, fp32Losses) { #expect(abs(x - y) / y < 2e-2, "bf16 \(x) against fp32 \(y)") }
    }
}

extension CLITests {
    @Test func badOptionsAreRefusedNotObeyed() throws {
        for args in [
            ["erc", CLITests.fixtures + "/olmoe-tiny", "--samples", "2305843009213693952"],
            ["erc", CLITests.fixtures + "/olmoe-tiny", "--layers", "0-2000000000"],
            ["erc", CLITests.fixtures + "/olmoe-tiny", "--no-noise", "--samples", "4"],
            ["synth", NSTemporaryDirectory() + "never", "--shard-size", "nan"],
            ["report", CLITests.fixtures + "/olmoe-tiny", "--out", NSTemporaryDirectory() + "never", "--format", ""],
        ] {
            let r = try run(args)
            #expect(r.status != 0, "\(args)")
        }
        #expect(!FileManager.default.fileExists(atPath: NSTemporaryDirectory() + "never"))
        // A report replaces an earlier report whole (with --overwrite): nothing of the old one is left.
        let dir = temporaryFolder() + "/rep"
        #expect(try run(["report", CLITests.fixtures + "/deepseek-v3-tiny", "--out", dir, "--no-tsne", "--dpi", "50", "-q"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/figures/activation_layer2.png"))
        #expect(try run(["report", CLITests.fixtures + "/olmoe-tiny", "--out", dir, "--no-tsne", "--dpi", "50", "--overwrite", "-q"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: dir + "/figures/activation_layer2.png"))
        #expect(FileManager.default.fileExists(atPath: dir + "/figures/activation_layer1.png"))
        // A log with a repeated column is an error, not a trap.
        try "step,lm_loss,lm_loss\n1,2,3\n".write(toFile: dir + "-dup.csv", atomically: true, encoding: .utf8)
        let p = try run(["plot", dir + "-dup.csv", "--out", dir + "-p.png"])
        #expect(p.status == 1 && p.stderr.contains("appears twice"))
    }
}

extension CLITests {
    /// `synth --like deepseek-v3-tiny` read back by `info` and `erc` (FP8 dequantised), against
    /// PyTorch's float64 values on the dequantised weights (fixtures/deepseek-v3-synth/make_expected.py).
    @Test func deepseekV3SynthIsReadByInfoAndERC() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try run(["synth", "--like", "deepseek-v3-tiny", dir + "/ds", "--shard-size", "300KB", "-q"])
        #expect(s.status == 0, "\(s.stderr)")
        let info = try run(["info", "--json", dir + "/ds"])
        #expect(info.status == 0, "\(info.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
        #expect(obj?["family"] as? String == "deepseek_v3")
        #expect(obj?["dense_layers"] as? [Int] == [0] && obj?["moe_layers"] as? [Int] == [1, 2])
        let r = try run(["erc", dir + "/ds", "--no-noise", "--alpha", "1", "--alpha", "0.5", "--csv", "-", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",").map(String.init)
        #expect(lines.count == 1 + 2 * 2)
        let layers = try #require(try loadFixtureJSON("deepseek-v3-synth/expected.json")["layers"] as? [String: [String: Any]])
        for line in lines.dropFirst() {
            let row = Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
            let want = try #require(layers[row["layer"] ?? ""])
            let alpha = Double(row["alpha"] ?? "") == 1 ? "1.0" : "0.5"
            let at = try #require((want["alphas"] as? [String: [String: Double]])?[alpha])
            for (column, value) in [
                ("erc_loss", at["loss"]), ("erc_specialization", at["specialization"]), ("erc_precision", at["precision"]),
                ("eps_mean", want["eps_mean"] as? Double), ("m_diag_mean", want["m_diag_mean"] as? Double),
                ("m_offdiag_mean", want["m_offdiag_mean"] as? Double), ("coupling_alpha", want["coupling_alpha"] as? Double),
            ] {
                let got = try #require(Double(row[column] ?? ""), "\(column)")
                let v = try #require(value)
                #expect(abs(got - v) <= 1e-4 * abs(v), "layer \(row["layer"] ?? "") alpha \(alpha) \(column): \(got) vs PyTorch \(v)")
            }
        }
    }

    /// The library names settings by their properties; the tool shows its flags in their place.
    @Test func libraryMessagesNameTheFlags() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let train = ["train", "--init", CLITests.fixtures + "/corpus/demo-config.json", "--data", CLITests.fixtures + "/corpus/kjv-eval.txt", "--out", dir + "/run", "-q"]
        for (args, says) in [
            (["--steps", "0"], "--steps must be at least 1, got 0"),
            (["--optimizer", "sgd", "--weight-decay", "0.1"], "--weight-decay does not apply to plain SGD (no momentum, no weight decay); use --optimizer adamw"),
            (["--schedule", "cosine", "--steps", "5", "--warmup", "5"], "--warmup 5 leaves no steps for the cosine decay of 5 steps"),
            (["--train", "routers"], "--train: unknown parameter group 'routers'"),
            (["--data", CLITests.fixtures + "/corpus/README.md", "--data-dtype", "uint8", "--seq-len", "600", "--batch-size", "1"],
             "503 tokens hold no window of --seq-len + 1 = 601 tokens"),
        ] {
            let r = try run(train + args)
            #expect(r.status != 0 && r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        let routing = try run(["routing", CLITests.fixtures + "/olmoe-tiny", "--data", CLITests.fixtures + "/corpus/README.md", "--data-dtype", "uint8", "--seq-len", "1000"])
        #expect(routing.status != 0 && routing.stderr.contains("503 tokens do not fill one window of 1000 (lower --seq-len)"), "\(routing.stderr)")
    }

    @Test func deepseekV3SynthRefusesWhatDoesNotFit() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (args, says) in [
            (["--like", "deepseek-v3-tiny", "--layers", "0"], "--layers (MoE layers) must be at least 1"),
            (["--like", "deepseek-v3-tiny", "--experts", "9"], "--experts 9 is not divisible by --groups 2"),
            (["--like", "deepseek-v3", "--dtype", "bf16"], "FP8"),
            (["--like", "tiny", "--groups", "2"], "deepseek-v3 only"),
            (["--like", "deepseek-v4"], "--like must be"),
        ] {
            let r = try run(["synth", dir + "/x"] + args)
            #expect(r.status != 0 && r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/x"))
    }

    func loadFixtureJSON(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: CLITests.fixtures + "/" + relative))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }
}
