import Foundation
import Testing

/// A training run stopped at every file-system step of its saves (and of its logs) resumes to
/// exactly the run that was never stopped: same checkpoints byte for byte, same log rows.
@Suite(.serialized) struct KillResumeTests {
    let cli = CLITests()

    static let trainArguments = [
        "train", "--init", CLITests.fixtures + "/corpus/demo-config.json",
        "--data", CLITests.fixtures + "/corpus/kjv-eval.txt", "--eval-data", CLITests.fixtures + "/corpus/kjv-eval.txt",
        "--steps", "4", "--save-every", "2", "--batch-size", "2", "--seq-len", "16", "--eval-batches", "1",
        "--schedule", "cosine", "--warmup", "1", "--erc-weight", "1", "-q",
    ]

    func run(_ args: [String], faultAt: Int? = nil) throws -> CLITests.Run {
        try cli.run(args, environment: faultAt.map { ["MOE_INSPECT_FAULT_AT": String($0)] } ?? [:])
    }

    /// What must agree between two runs: every file but the speed column of log.csv.
    func snapshot(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: dir) else { return out }
        for case let rel as String in e {
            var isDir: ObjCBool = false
            _ = fm.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir)
            if isDir.boolValue { continue }
            var d = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + rel))
            if rel == "log.csv" {
                let lines = String(decoding: d, as: UTF8.self).split(separator: "\n").map {
                    $0.split(separator: ",", omittingEmptySubsequences: false).dropLast().joined(separator: ",")
                }
                d = Data(lines.joined(separator: "\n").utf8)
            }
            if rel.hasSuffix("trainer_state.json") { continue }  // holds the data path only, compared via resume itself
            out[rel] = d
        }
        return out
    }

    @Test func killAtEveryFileSystemStepThenResumeIsExact() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let reference = root + "/reference"
        let r = try run(Self.trainArguments + ["--out", reference])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try snapshot(reference)
        #expect(expected.keys.contains("step4/model.safetensors"))
        var stops = 0
        for n in 1...400 {
            let dir = root + "/run\(n)"
            let first = try run(Self.trainArguments + ["--out", dir], faultAt: n)
            if first.status == 0 { break }  // n is past the last file-system step
            #expect(first.status == 77, "fault \(n): \(first.stderr)")
            stops += 1
            let saved =
                FileManager.default.fileExists(atPath: dir + "/step2/trainer_state.json")
                || FileManager.default.fileExists(atPath: dir + "/step4/trainer_state.json")
            // Before the first save there is nothing to resume: the same command starts over.
            let second = saved ? try run(["train", "--resume", dir, "-q"]) : try run(Self.trainArguments + ["--out", dir])
            #expect(second.status == 0, "fault \(n): \(second.stderr)")
            let got = try snapshot(dir)
            #expect(Set(got.keys) == Set(expected.keys), "fault \(n): files \(Set(got.keys).symmetricDifference(expected.keys))")
            for (k, v) in expected where got[k] != v { Issue.record("fault \(n): \(k) differs from the uninterrupted run") }
            try? FileManager.default.removeItem(atPath: dir)
        }
        #expect(stops >= 20, "only \(stops) file-system steps were interrupted")
        print("kill/resume: \(stops) interruption points, each resumed exactly")
    }
}

/// No output replaces an input (issue 10, item 8).
@Suite struct OutputSafetyTests {
    let cli = CLITests()

    @Test func outputsNeverReplaceInputs() throws {
        let dir = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ck = dir + "/ck"
        try FileManager.default.copyItem(atPath: CLITests.fixtures + "/olmoe-tiny", toPath: ck)
        try "{\"model_max_length\": 8}".write(toFile: ck + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: ck + "/model.safetensors"))
        for args in [
            ["erc", ck, "--csv", ck + "/model.safetensors", "-q"], ["convert", ck, ck, "--overwrite", "-q"],
            ["report", ck, "--out", dir, "--no-tsne", "-q"], ["similarity", ck, "--csv", ck + "/config.json"],
            ["tsne", ck, "--figure", ck + "/../ck/model.safetensors.png", "--csv", ck + "/config.json", "--perplexity", "5"],
        ] {
            let r = try cli.run(args)
            #expect(r.status == 1, "\(args)")
            #expect(r.stderr.hasPrefix("moe-inspect: error: "), "\(args): \(r.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: ck + "/model.safetensors")) == before)
        // A converted folder keeps the files beside the weights.
        let r = try cli.run(["convert", ck, dir + "/out", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["config.json", "generation_config.json", "tokenizer_config.json"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/out/" + f), "\(f) was not carried over")
        }
    }
}

/// The fuzz targets' seeds (fixtures/fuzz/) replayed through the parsers, in the plain build:
/// a crash found by `make fuzz` and kept as a seed stays fixed.
@Suite struct FuzzSeedTests {
    @Test func everySeedOfEveryTargetEndsCleanly() throws {
        let bin = try #require(CLITests.binary.map { ($0 as NSString).deletingLastPathComponent + "/moe-fuzz" })
        try #require(FileManager.default.isExecutableFile(atPath: bin), "build moe-fuzz first (make test does)")
        let targets = try FileManager.default.contentsOfDirectory(atPath: CLITests.fixtures + "/fuzz").sorted()
        #expect(targets.count >= 8)
        for t in targets {
            let dir = CLITests.fixtures + "/fuzz/" + t
            let seeds = try FileManager.default.contentsOfDirectory(atPath: dir).map { dir + "/" + $0 }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin)
            p.arguments = seeds
            p.environment = ["MOE_FUZZ_TARGET": t]
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\(t): exit \(p.terminationStatus)")
        }
    }
}
