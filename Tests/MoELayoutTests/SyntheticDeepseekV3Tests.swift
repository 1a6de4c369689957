import Foundation
import Tensors
import TestSupport
import Testing

@testable import Checkpoints
@testable import MoELayout

/// The DeepSeek-V3 synth against what transformers and PyTorch read from it
/// (fixtures/deepseek-v3-synth/make_expected.py, run on `synth --like deepseek-v3-tiny`, seed 0).
@Suite struct SyntheticDeepseekV3Tests {
    @Test func tinyIsDeterministicShardedAndWhatTransformersRead() throws {
        let dir = temporaryFolder("moe-dsv3-synth")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let synth = SyntheticDeepseekV3(shape: .tiny, seed: 0)
        try synth.write(to: dir + "/one")
        try synth.write(to: dir + "/sharded", maxShardBytes: 200_000)
        // The config transformers' DeepseekV3Config.from_pretrained accepted, byte for byte.
        let config = try Data(contentsOf: URL(fileURLWithPath: dir + "/one/config.json"))
        #expect(config == (try Data(contentsOf: URL(fileURLWithPath: fixtures + "/deepseek-v3-synth/config.json"))))
        let expected = try loadJSON("deepseek-v3-synth/expected.json")
        let transformers = try #require(expected["transformers"] as? [String: Any])
        #expect(transformers["names_match"] as? Bool == true && transformers["shapes_match"] as? Bool == true)
        #expect(transformers["fp8_are_the_linear_weights"] as? Bool == true)

        let one = try Checkpoint.open(dir + "/one"), sharded = try Checkpoint.open(dir + "/sharded")
        #expect(one.files.count == 1 && sharded.files.count > 3)
        #expect(one.tensors.filter { !$0.name.hasSuffix("_scale_inv") }.count == transformers["tensors"] as? Int)
        for t in one.tensors { #expect(try one.rawBytes(t.name) == sharded.rawBytes(t.name), "\(t.name)") }

        let model = try MoECheckpoint(sharded)
        let summary = ModelSummary(model)
        #expect(summary.family == "deepseek_v3" && summary.moeLayers == [1, 2] && summary.topK == 2 && summary.expertCounts == [8])
        #expect(model.moeLayers.allSatisfy { $0.dtype == .f8e4m3 && $0.scoreCorrectionBias != nil && $0.shared != nil })

        // Dequantised values (FP8 code times its block's scale_inv) as PyTorch computes them.
        let samples = try #require(expected["samples"] as? [[String: Any]])
        #expect(samples.count >= 10)
        for s in samples {
            let name = try #require(s["tensor"] as? String)
            let r = try #require(s["row"] as? Int), c = try #require(s["col"] as? Int), v = try #require(s["value"] as? Double)
            let w = try sharded.tensor(name)
            #expect(abs(Double(w[r, c]) - v) <= 1e-6 * abs(v), "\(name)[\(r), \(c)]")
        }
        // The std of the dequantised gate projections: initializer_range 0.02, as PyTorch measured it.
        let gateStd = try #require(expected["gate_std"] as? [String: Double])
        for layer in model.moeLayers {
            let w = try model.expertWeights(layer, .gate).storage.map(Double.init)
            let mean = w.reduce(0, +) / Double(w.count)
            let std = (w.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(w.count - 1)).squareRoot()
            let want = try #require(gateStd[String(layer.index)])
            #expect(abs(std - want) <= 1e-6 * want && abs(want - 0.02) < 0.0005, "layer \(layer.index): \(std)")
        }
        let atMax = try #require(expected["blocks_at_448"] as? [String: Double])
        #expect(!atMax.isEmpty && atMax.values.allSatisfy { $0 == 1 })
    }

    @Test func realShapeHasTheRealSizes() {
        var s = SyntheticDeepseekV3.Shape.deepseekV3
        #expect(s.layers == 61 && s.problem == nil)
        s.moeLayers = 2
        let specs = SyntheticDeepseekV3(shape: s).specs
        // Published figures: 129280 x 7168 embeddings; a routed expert's three 2048 x 7168 FP8
        // matrices with [16, 56] scales; 5 GB shards give the 28.5 GB of 3 dense + 2 MoE layers.
        #expect(specs.first { $0.name == "model.embed_tokens.weight" }?.shape == [129280, 7168])
        #expect(specs.first { $0.name == "model.layers.4.mlp.experts.255.down_proj.weight_scale_inv" }?.shape == [56, 16])
        #expect(specs.first { $0.name == "model.layers.3.self_attn.q_b_proj.weight" }?.shape == [24576, 1536])
        #expect(specs.first { $0.name == "model.layers.3.self_attn.kv_a_proj_with_mqa.weight_scale_inv" }?.shape == [5, 56])
        #expect(specs.first { $0.name == "model.layers.2.mlp.gate_proj.weight" }?.shape == [18432, 7168])
        #expect(!specs.contains { $0.name.hasPrefix("model.layers.5.") })
        let bytes = specs.reduce(0) { $0 + $1.byteCount }
        #expect(bytes > 28_400_000_000 && bytes < 28_600_000_000, "\(bytes)")
    }

    @Test func shapesThatAreNotDeepseekV3AreRefused() {
        var s = SyntheticDeepseekV3.Shape.tiny
        s.moeLayers = 0
        #expect(s.problem?.description.contains("moeLayers (MoE layers) must be at least 1") == true)
        s = .tiny; s.experts = 9
        #expect(s.problem?.description.contains("experts 9 is not divisible by groups 2") == true)
        #expect(s.problem?.rendered { "<\($0)>" }.contains("<experts> 9 is not divisible by <groups> 2") == true)
        s = .tiny; s.topGroups = 3
        #expect(s.problem?.description.contains("exceeds groups") == true)
        s = .tiny; s.topK = 5
        #expect(s.problem?.description.contains("searched group") == true)
        s = .tiny; s.denseLayers = 0
        #expect(s.problem == nil)
    }
}
