import Foundation
import Tensors
import TestSupport
import Testing

@testable import Checkpoints
@testable import MoELayout

/// Layout detection against checkpoints written by transformers' save_pretrained and h5py.
@Suite struct LayoutTests {
    static let families: [(String, String)] = [
        ("olmoe-tiny", "olmoe"), ("olmoe-tiny-bf16-sharded", "olmoe"), ("olmoe-tiny-fused", "olmoe"),
        ("mixtral-tiny", "mixtral"), ("qwen2-moe-tiny", "qwen2_moe"), ("qwen3-moe-tiny", "qwen3_moe"),
        ("deepseek-v3-tiny", "deepseek_v3"), ("olmoe-tiny.h5", "olmoe"), ("olmoe-tiny-flat", "olmoe"),
    ]

    @Test(arguments: families)
    func summaryMatchesTransformersConfig(_ folder: String, _ family: String) throws {
        let all = try #require(try loadJSON("expected/models.json")["models"] as? [String: [String: Any]])
        let e = try #require(all[folder])
        let model = try MoECheckpoint(try Checkpoint.open(fixtures + "/" + folder))
        let s = ModelSummary(model)
        #expect(s.family == family)
        #expect(s.layerCount == e["num_layers"] as? Int)
        #expect(s.moeLayers == e["moe_layers"] as? [Int])
        #expect(s.denseLayers == e["dense_layers"] as? [Int])
        #expect(s.expertCounts == [try #require(e["n_experts"] as? Int)])
        #expect(s.topK == e["top_k"] as? Int)
        #expect(s.hiddenSize == e["d"] as? Int)
        #expect(s.intermediateSize == e["D"] as? Int)
        #expect(s.totalParameters == e["total_parameters"] as? Int)
        #expect(s.problems.isEmpty, "\(s.problems)")
        let layers = try #require(e["layers"] as? [[String: Any]])
        for l in layers {
            let index = try #require(l["layer"] as? Int)
            let layer = try #require(model.moeLayers.first { $0.index == index })
            let r = try model.routerWeight(layer)
            let want = try #require(l["router_frobenius_norm"] as? Double)
            let tol = folder.contains("bf16") ? 1e-2 : 1e-6
            #expect(abs(r.frobeniusNorm - want) <= tol * want, "\(folder) layer \(index) router")
            let gate = try model.expertWeights(layer, .gate)
            let g0 = Tensor(shape: [layer.intermediateSize, layer.hiddenSize], storage: Array(gate.storage[0..<(layer.intermediateSize * layer.hiddenSize)]))
            let wantGate = try #require(l["gate_proj_frobenius_norm_expert0"] as? Double)
            #expect(abs(g0.frobeniusNorm - wantGate) <= tol * wantGate, "\(folder) layer \(index) gate")
        }
    }

    @Test func sharedExpertsDenseLayersAndBias() throws {
        let ds = try MoECheckpoint(try Checkpoint.open(fixtures + "/deepseek-v3-tiny"))
        #expect(ds.scoring == .sigmoid)
        for l in ds.moeLayers {
            #expect(l.shared?.gate == "model.layers.\(l.index).mlp.shared_experts.gate_proj.weight")
            #expect(l.scoreCorrectionBias == "model.layers.\(l.index).mlp.gate.e_score_correction_bias")
        }
        let qw = try MoECheckpoint(try Checkpoint.open(fixtures + "/qwen2-moe-tiny"))
        #expect(qw.layers[1] == .dense(index: 1))
        #expect(qw.moeLayers.allSatisfy { $0.sharedExpertGate == "model.layers.\($0.index).mlp.shared_expert_gate.weight" })
    }

    @Test func fusedLayoutGivesTheSameExperts() throws {
        let per = try MoECheckpoint(try Checkpoint.open(fixtures + "/olmoe-tiny"))
        let fused = try MoECheckpoint(try Checkpoint.open(fixtures + "/olmoe-tiny-fused"))
        for (a, b) in zip(per.moeLayers, fused.moeLayers) {
            if case .fused = b.experts {} else { Issue.record("layer \(b.index) not read as fused") }
            for p in Projection.allCases {
                #expect(try per.expertWeights(a, p) == fused.expertWeights(b, p), "\(p)")
            }
        }
    }

    @Test func unknownNamingListsTheNamesAndALayoutFileFixesIt() throws {
        // Rename the OLMoE tensors to a scheme no family uses.
        let src = try Checkpoint.open(fixtures + "/olmoe-tiny")
        let dir = NSTemporaryDirectory() + "moe-layout-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let rename = { (n: String) in
            n.replacingOccurrences(of: "model.layers.", with: "transformer.blocks.")
                .replacingOccurrences(of: "mlp.gate.weight", with: "moe.router.weight")
                .replacingOccurrences(of: "mlp.experts.", with: "moe.expert_")
        }
        let specs = src.tensors.map { TensorSpec(name: rename($0.name), dtype: $0.dtype, shape: $0.shape) }
        let back = Dictionary(uniqueKeysWithValues: src.tensors.map { (rename($0.name), $0.name) })
        try SafetensorsWriter.write(specs, to: dir + "/model.safetensors") { spec, out in
            try src.copyRawBytes(back[spec.name] ?? "", into: out)
        }
        let ckpt = try Checkpoint.open(dir + "/model.safetensors")
        do {
            _ = try MoECheckpoint(ckpt)
            Issue.record("unknown naming was accepted")
        } catch {
            #expect("\(error)".contains("transformer.blocks.0.moe.router.weight") || "\(error)".contains("moe.expert_"), "\(error)")
            #expect("\(error)".contains("pass it as layoutFile"))
            #expect((error as? LayoutError)?.description(naming: { "--" + $0.name }).contains("pass it as --layoutFile") == true)
        }
        let layoutJSON = """
            {"family": "custom", "layerPrefix": "transformer.blocks.{layer}.",
             "router": "transformer.blocks.{layer}.moe.router.weight",
             "expertGate": "transformer.blocks.{layer}.moe.expert_{expert}.gate_proj.weight",
             "expertUp": "transformer.blocks.{layer}.moe.expert_{expert}.up_proj.weight",
             "expertDown": "transformer.blocks.{layer}.moe.expert_{expert}.down_proj.weight", "topK": 2}
            """
        try layoutJSON.write(toFile: dir + "/layout.json", atomically: true, encoding: .utf8)
        let model = try MoECheckpoint(ckpt, layout: try LayoutSpec.load(dir + "/layout.json"))
        #expect(model.family == "custom")
        #expect(model.moeLayers.map(\.index) == [0, 1])
        #expect(model.topK == 2)
        let ref = try MoECheckpoint(src)
        #expect(try model.expertWeights(model.moeLayers[1], .down) == ref.expertWeights(ref.moeLayers[1], .down))
    }

    @Test func missingExpertsAndNaNRoutersAreReportedNotFatal() throws {
        let src = try Checkpoint.open(fixtures + "/olmoe-tiny")
        let dir = NSTemporaryDirectory() + "moe-problems-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixtures + "/olmoe-tiny/config.json", toPath: dir + "/config.json")
        let specs = src.tensors.filter { !$0.name.hasPrefix("model.layers.1.mlp.experts.3.") }
            .map { TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
        try SafetensorsWriter.write(specs, to: dir + "/model.safetensors") { spec, out in
            try src.copyRawBytes(spec.name, into: out)
            if spec.name == "model.layers.0.mlp.gate.weight" { out.storeBytes(of: Float.nan, toByteOffset: 8, as: Float.self) }
        }
        let model = try MoECheckpoint(try Checkpoint.open(dir))
        let s = ModelSummary(model)
        #expect(s.problems.contains { $0.contains("layer 1") && $0.contains("3") && $0.contains("missing") }, "\(s.problems)")
        #expect(s.problems.contains { $0.contains("layer 0") && $0.contains("NaN") }, "\(s.problems)")
    }

    @Test func syntheticCheckpointIsDeterministicAndRecognised() throws {
        let dir = NSTemporaryDirectory() + "moe-synth-" + UUID().uuidString
        var synth = SyntheticCheckpoint(shape: .tiny, dtype: .bf16, seed: 3)
        synth.shape.layers = 3
        try synth.write(to: dir + "/a", maxShardBytes: 150_000)
        try synth.write(to: dir + "/b", maxShardBytes: 150_000)
        let a = try Checkpoint.open(dir + "/a"), b = try Checkpoint.open(dir + "/b")
        #expect(a.files.count > 1)
        for t in a.tensors { #expect(try a.rawBytes(t.name) == b.rawBytes(t.name)) }
        let s = ModelSummary(try MoECheckpoint(a))
        #expect(s.family == "olmoe" && s.moeLayers == [0, 1, 2] && s.topK == 2 && s.expertCounts == [8])
        let w = try a.tensor("model.layers.0.mlp.experts.0.gate_proj.weight").storage
        let mean = w.reduce(0, +) / Float(w.count)
        let std = (w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(w.count)).squareRoot()
        #expect(abs(std - 0.02) < 0.002)
        #expect(throws: CheckpointError.self) { try synth.write(to: dir + "/a") }
    }

    @Test func namePatterns() {
        let p = NamePattern("model.layers.{layer}.mlp.experts.{expert}.w1.weight")
        #expect(p.match("model.layers.12.mlp.experts.7.w1.weight")! == (12, 7))
        #expect(p.match("model.layers.12.mlp.experts.x.w1.weight") == nil)
        #expect(p.match("model.layers.12.mlp.experts.7.w1.weight.extra") == nil)
        #expect(p.name(layer: 3, expert: 4) == "model.layers.3.mlp.experts.4.w1.weight")
    }
}

/// Layout files are validated before use (issue 10, item 11).
@Suite struct LayoutFileValidationTests {
    func load(_ json: String) throws -> LayoutSpec {
        let p = NSTemporaryDirectory() + "layout-\(UUID().uuidString).json"
        try json.write(toFile: p, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: p) }
        return try LayoutSpec.load(p)
    }

    @Test(arguments: [
        (#"{"family":"x","layerPrefix":"m.{layer}.","router":"m.{layer}.gate","expertGate":"m.{layer}.experts.gate"}"#, "{expert} exactly once"),
        (#"{"family":"x","layerPrefix":"m.{layer}.","router":"m.gate","expertGate":"m.{layer}.e.{expert}.w"}"#, "{layer} exactly once"),
        (#"{"family":"x","layerPrefix":"m.{layer}.","router":"m.{layer}.{expert}.gate","expertGate":"m.{layer}.e.{expert}.w"}"#, "must not contain {expert}"),
        (#"{"family":"x","layerPrefix":"m.{layer}.","router":"m.{layer}.gate","expertGate":"m.{layer}.e.{exprt}.w"}"#, "unknown field '{exprt}'"),
        (#"{"family":"x","layerPrefix":"m.{layer}.","router":"m.{layer}.gate"}"#, "needs 'expertGate'"),
        (#"{"family":"x","layerPrefix":"m.{layer}.","router":"m.{layer}.gate","expertGate":"m.{layer}.e.{expert}.w","scoring":"relu"}"#, "softmax or sigmoid"),
        (#"{"family":"x","layerPrefix":"m.{layer}.","expertGate":"m.{layer}.e.{expert}.w"}"#, "missing key 'router'"),
    ])
    func badLayoutFilesAreRefused(_ json: String, _ words: String) {
        do {
            _ = try load(json)
            Issue.record("accepted: \(json)")
        } catch {
            #expect("\(error)".contains(words), "\("\(error)")")
        }
    }

    @Test func aGoodLayoutFileLoads() throws {
        let s = try load(#"{"family":"x","layerPrefix":"m.{layer}.","router":"m.{layer}.gate","expertGate":"m.{layer}.e.{expert}.w"}"#)
        #expect(s.router.text == "m.{layer}.gate")
    }
}
