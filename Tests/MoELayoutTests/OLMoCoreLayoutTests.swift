import Checkpoints
import Foundation
import Tensors
import TestSupport
import Testing

@testable import MoELayout

/// OLMo-core's stacked expert tensors, read through the MoE view, equal the per-expert weights
/// that OLMo-core's forward pass uses (fixtures/olmo-core/expected.json, from PyTorch) for the
/// training checkpoint, its unsharded export and its Hugging Face (flex_olmo) export.
@Suite struct OLMoCoreLayoutTests {
    static let root = fixtures + "/olmo-core"
    /// (checkpoint, the run whose expected values apply).
    static let forms: [(String, String)] = [
        ("dropless/step3", "dropless/step3"), ("dropless-unsharded", "dropless/step3"), ("dropless-hf", "dropless/step3"),
        ("default/step2", "default/step2"), ("default-hf", "default/step2"),
        ("dropless-2rank/step5", "dropless-2rank/step5"), ("dropless-optim/step1", "dropless-optim/step1"),
    ]

    @Test(arguments: forms)
    func projectionsInHuggingFaceOrientation(_ path: String, _ run: String) throws {
        let expected = try #require(try loadJSON("olmo-core/expected.json")[run] as? [String: Any])
        let model = try MoECheckpoint(try Checkpoint.open(Self.root + "/" + path))
        #expect(model.family == (path.hasSuffix("-hf") ? "flex_olmo" : "olmo_core"))
        #expect(model.topK == expected["top_k"] as? Int)
        let layers = try #require(expected["layers"] as? [[String: Any]])
        #expect(model.moeLayers.count == layers.count)
        for (l, e) in zip(model.moeLayers, layers) {
            #expect(l.expertCount == expected["experts"] as? Int)
            #expect(l.hiddenSize == expected["hidden_size"] as? Int)
            #expect(l.intermediateSize == expected["intermediate_size"] as? Int)
            let r = try model.routerWeight(l)
            #expect(r.shape == [l.expertCount, l.hiddenSize])
            #expect(r.storage == flatten(e["router"] as Any).map(Float.init), "\(path) router")
            for (p, key) in [(Projection.gate, "gate"), (.up, "up"), (.down, "down")] {
                let w = try model.expertWeights(l, p)
                let per = w.count / l.expertCount, cols = w.shape[2]
                for (expert, v) in try #require(e[key] as? [String: [String: Any]]) {
                    let x = try #require(Int(expert))
                    let rows = flatten(v["first_rows"] as Any).map(Float.init)
                    #expect(Array(w.storage[(x * per)..<(x * per + 2 * cols)]) == rows, "\(path) \(key) expert \(x)")
                    let sum = w.storage[(x * per)..<((x + 1) * per)].reduce(0.0) { $0 + Double($1) }
                    #expect(abs(sum - (v["sum"] as? Double ?? .nan)) < 1e-9, "\(path) \(key) sum expert \(x)")
                }
            }
        }
    }

    func copyUnsharded(config: String?) throws -> String {
        let dir = temporaryFolder() + "/unsharded"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.root + "/dropless-unsharded/model.safetensors", toPath: dir + "/model.safetensors")
        if let config { try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8) }
        return dir
    }

    func runConfig(replacing: String, with: String) throws -> String {
        let text = try String(contentsOfFile: Self.root + "/dropless/step3/config.json", encoding: .utf8)
        #expect(text.contains(replacing))
        return text.replacingOccurrences(of: replacing, with: with)
    }

    @Test func noRunConfigIsAClearError() throws {
        let dir = try copyUnsharded(config: nil)
        #expect {
            _ = try MoECheckpoint(try Checkpoint.open(dir))
        } throws: { error in
            "\(error)".contains("no run config.json") && "\(error)".contains("dropless")
        }
    }

    @Test func runConfigInTheFolderAboveIsFound() throws {
        let dir = try copyUnsharded(config: nil)
        try FileManager.default.copyItem(
            atPath: Self.root + "/dropless/step3/config.json",
            toPath: (dir as NSString).deletingLastPathComponent + "/config.json")
        let model = try MoECheckpoint(try Checkpoint.open(dir))
        #expect(model.olmoCoreConfig?.moeType == .dropless)
        #expect(model.moeLayers.count == 2)
    }

    @Test func unknownMoETypeIsAClearError() throws {
        let dir = try copyUnsharded(config: try runConfig(replacing: "\"name\": \"dropless\"", with: "\"name\": \"scattermoe\""))
        #expect {
            _ = try MoECheckpoint(try Checkpoint.open(dir))
        } throws: { error in
            "\(error)".contains("'scattermoe'") && "\(error)".hasPrefix(dir)
        }
    }

    /// The dropless run's weights with a config claiming the default type: shapes disagree and the
    /// layers are reported, never read with the wrong orientation.
    @Test func configOfTheOtherTypeIsReported() throws {
        let dir = try copyUnsharded(config: try runConfig(replacing: "\"name\": \"dropless\"", with: "\"name\": \"default\""))
        let model = try MoECheckpoint(try Checkpoint.open(dir))
        #expect(model.moeLayers.isEmpty)
        #expect(model.problems.count == 2)
        #expect(model.problems.first?.contains("other MoE type") == true)
    }
}

/// Flattens nested arrays of numbers into Doubles.
private func flatten(_ v: Any) -> [Double] {
    if let a = v as? [Any] { return a.flatMap(flatten) }
    if let n = v as? NSNumber { return [n.doubleValue] }
    return []
}

/// A fresh temporary folder.
private func temporaryFolder() -> String {
    let p = NSTemporaryDirectory() + "moe-inspect-olmo-core-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}
