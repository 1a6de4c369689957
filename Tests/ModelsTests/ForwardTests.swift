import Checkpoints
import Foundation
import MoELayout
import Tensors
import Testing

@testable import Models

/// The fixtures of `fixtures/routing/make_routing_fixtures.py`: checkpoints written by
/// transformers and what transformers computed on them.
enum RoutingFixtures {
    static let root: String = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.appendingPathComponent("../../fixtures").standardized.path
    }()

    /// (expected-file name, checkpoint folder) of every reference run.
    static let models: [(String, String)] = [
        ("olmoe-tiny", "olmoe-tiny"), ("mixtral-tiny", "mixtral-tiny"), ("qwen2-moe-tiny", "qwen2-moe-tiny"),
        ("qwen3-moe-tiny", "qwen3-moe-tiny"), ("deepseek-v3-tiny", "deepseek-v3-tiny"),
        ("models-olmoe", "routing/models/olmoe"), ("models-mixtral", "routing/models/mixtral"),
        ("models-qwen2-moe", "routing/models/qwen2-moe"), ("models-qwen3-moe", "routing/models/qwen3-moe"),
        ("models-deepseek-v3", "routing/models/deepseek-v3"),
        ("models-deepseek-v3-noninterleaved", "routing/models/deepseek-v3-noninterleaved"),
        ("models-deepseek-v2", "routing/models/deepseek-v2"),
        // scaled RoPE
        ("models-deepseek-v3-yarn", "routing/models/deepseek-v3-yarn"), ("models-deepseek-v2-yarn", "routing/models/deepseek-v2-yarn"),
        ("models-mixtral-linear", "routing/models/mixtral-linear"), ("models-qwen3-moe-llama3", "routing/models/qwen3-moe-llama3"),
        ("models-qwen2-moe-dynamic", "routing/models/qwen2-moe-dynamic"), ("models-olmoe-longrope", "routing/models/olmoe-longrope"),
        // FlexOlmo, OLMo-core's Hugging Face exports, and the OLMo-core checkpoints they were made
        // from (training checkpoints and an unsharded export with OLMo-core's names) against them
        ("models-flex-olmo", "routing/models/flex-olmo"),
        ("olmo-core-dropless-hf", "olmo-core/dropless-hf"), ("olmo-core-default-hf", "olmo-core/default-hf"),
        ("olmo-core-dropless-hf", "olmo-core/dropless/step3"), ("olmo-core-default-hf", "olmo-core/default/step2"),
        ("olmo-core-dropless-hf", "olmo-core/dropless-unsharded"),
    ]

    static let windowLength = 32

    static func expected(_ name: String) throws -> [String: Tensor] {
        let ck = try Checkpoint.open(root + "/routing/expected/\(name).safetensors")
        var out: [String: Tensor] = [:]
        for t in ck.tensors { out[t.name] = try ck.tensor(t.name) }
        return out
    }

    static func model(_ folder: String) throws -> CausalModel {
        try CausalModel(MoECheckpoint(Checkpoint.open(root + "/" + folder)))
    }
}

/// max |a - b| / max |b|.
func relativeMaxError(_ a: [Float], _ b: [Float]) -> Double {
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) { num = max(num, abs(Double(x) - Double(y))); den = max(den, abs(Double(y))) }
    return num / max(den, 1e-30)
}

/// Tokens whose top-k set differs from the reference's, not counting exact ties in the
/// reference's scores at the k-th place.
func topKMismatches(ours: [Int32], reference: Tensor, referenceScores: Tensor, k: Int) -> Int {
    let T = reference.shape[0], n = referenceScores.shape[1]
    var bad = 0
    for t in 0..<T {
        let a = Set(ours[(t * k)..<((t + 1) * k)]), b = Set((0..<k).map { Int32(reference.storage[t * k + $0]) })
        if a == b { continue }
        let s = (0..<n).map { referenceScores.storage[t * n + $0] }.sorted(by: >)
        if k < n, s[k - 1] - s[k] <= 1e-6 * max(1, abs(s[k])) { continue }
        bad += 1
    }
    return bad
}

@Suite("Forward pass against transformers")
struct ForwardTests {
    @Test("top-k, MoE inputs, final hidden states and logits match transformers", arguments: RoutingFixtures.models)
    func matchesTransformers(name: String, folder: String) throws {
        let ref = try RoutingFixtures.expected(name)
        let model = try RoutingFixtures.model(folder)
        let tokens = try #require(ref["tokens"]).storage.map { Int32($0) }
        let rows = try #require(ref["logit_rows"]).storage.map { Int($0) }
        var routed: [Int: MoELayerRouting] = [:]
        let out = try model.forward(tokens: tokens, windowLength: RoutingFixtures.windowLength, logitRows: rows, keepFinalHidden: true) { r in
            routed[r.layer] = r
        }
        let expectedLayers = Set(ref.keys.filter { $0.hasSuffix(".topk") }.compactMap { Int($0.dropFirst(5).prefix { $0 != "." }) })
        #expect(Set(routed.keys) == expectedLayers)
        for (l, r) in routed.sorted(by: { $0.key < $1.key }) {
            let topk = try #require(ref["layer\(l).topk"]), logits = try #require(ref["layer\(l).logits"])
            #expect(r.topK == topk.shape[1])
            // router logits and MoE inputs
            #expect(relativeMaxError(r.logits.storage, logits.storage) < 1e-4, "\(name) layer \(l) router logits")
            let input = try #require(ref["layer\(l).input"])
            let x = try #require(r.input, "the MoE input is handed out by default")
            let ours = rows.flatMap { Array(x.storage[($0 * r.hidden)..<(($0 + 1) * r.hidden)]) }
            #expect(relativeMaxError(ours, input.storage) < 1e-4, "\(name) layer \(l) MoE input")
            // top-k: the reference's scores for ties
            var scores = logits
            if r.scoring == .softmax {
                for t in 0..<scores.shape[0] {
                    let row = (0..<r.experts).map { Double(logits.storage[t * r.experts + $0]) }
                    let m = row.max() ?? 0, s = row.map { Foundation.exp($0 - m) }.reduce(0, +)
                    for e in 0..<r.experts { scores.storage[t * r.experts + e] = Float(Foundation.exp(row[e] - m) / s) }
                }
            } else {
                scores.storage = scores.storage.map { 1 / (1 + Foundation.exp(-$0)) }
            }
            let bad = topKMismatches(ours: r.topExperts, reference: topk, referenceScores: scores, k: r.topK)
            #expect(Double(bad) <= 0.001 * Double(r.tokens), "\(name) layer \(l): \(bad) of \(r.tokens) tokens chose other experts")
            // weights, matched per expert id (DeepSeek's order is unsorted)
            let w = try #require(ref["layer\(l).topk_weights"])
            var worst = 0.0
            for t in 0..<r.tokens {
                for s in 0..<r.topK {
                    let e = topk.storage[t * r.topK + s]
                    if let mine = (0..<r.topK).first(where: { Float(r.topExperts[t * r.topK + $0]) == e }) {
                        worst = max(worst, abs(Double(r.topWeights[t * r.topK + mine]) - Double(w.storage[t * r.topK + s])))
                    }
                }
            }
            #expect(worst < 1e-4, "\(name) layer \(l) top-k weights differ by \(worst)")
        }
        let logits = try #require(out.logits), refLogits = try #require(ref["logits"])
        #expect(logits.shape == refLogits.shape)
        #expect(relativeMaxError(logits.storage, refLogits.storage) < 1e-4, "\(name) logits: \(relativeMaxError(logits.storage, refLogits.storage))")
        let hidden = try #require(out.finalHidden), refHidden = try #require(ref["final_hidden"])
        let d = hidden.shape[1]
        let ours = rows.flatMap { Array(hidden.storage[($0 * d)..<(($0 + 1) * d)]) }
        #expect(relativeMaxError(ours, refHidden.storage) < 1e-4, "\(name) final hidden states")
    }

    @Test("configs: v4 and v5 spellings, dtype keys, bad values are one clear error")
    func configSpellings() throws {
        let v4 =
            #"{"model_type":"olmoe","vocab_size":16,"hidden_size":8,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_experts":4,"num_experts_per_tok":2,"rope_theta":500000.0,"torch_dtype":"bfloat16"}"#
        let v5 =
            #"{"model_type":"olmoe","vocab_size":16,"hidden_size":8,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_experts":4,"num_experts_per_tok":2,"rope_parameters":{"rope_theta":500000.0,"rope_type":"default"},"dtype":"bfloat16"}"#
        for text in [v4, v5] {
            let c = try ModelConfig(text: text, source: "config.json")
            let a = try decodeConfig(OlmoeConfiguration.self, from: c, source: "config.json").architecture(source: "config.json")
            #expect(a.rope.theta == 500_000)
            #expect(a.hiddenSize == 8 && a.moeLayers == [0])
            #expect(a.declaredDType == "bfloat16")
        }
        let yarn =
            #"{"model_type":"deepseek_v3","vocab_size":16,"hidden_size":8,"intermediate_size":4,"moe_intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"n_routed_experts":4,"num_experts_per_tok":2,"kv_lora_rank":4,"qk_rope_head_dim":2,"qk_nope_head_dim":2,"v_head_dim":2,"rope_scaling":{"type":"yarn","factor":40}}"#
        let c = try ModelConfig(text: yarn, source: "config.json")
        let a = try decodeConfig(DeepseekConfiguration.self, from: c, source: "config.json").architecture(source: "config.json")
        // yarn without original_max_position_embeddings falls back to max_position_embeddings (DeepSeek-V3: 4096)
        guard case let .yarn(factor, original, _, _, _, _) = a.rope.scaling else { Issue.record("not yarn: \(a.rope.scaling)"); return }
        #expect(factor == 40 && original == 4096)
        let missing = try ModelConfig(text: #"{"model_type":"mixtral","vocab_size":16}"#, source: "config.json")
        do {
            _ = try decodeConfig(MixtralConfiguration.self, from: missing, source: "config.json")
            Issue.record("a config without hidden_size decoded")
        } catch { #expect(error.description.contains("hidden_size")) }
    }

    @Test("results do not depend on the chunk size beyond rounding", arguments: ["routing/models/qwen2-moe", "routing/models/deepseek-v3"])
    func chunking(folder: String) throws {
        let model = try RoutingFixtures.model(folder)
        let tokens = (0..<160).map { Int32(2 + ($0 * 37) % 120) }
        var whole: [Int: [Int32]] = [:], chunked: [Int: [Int32]] = [:]
        let a = try model.forward(tokens: tokens, windowLength: 32, keepFinalHidden: true) { whole[$0.layer] = $0.topExperts }
        let b = try model.forward(tokens: tokens, windowLength: 32, keepFinalHidden: true, chunkTokens: 64) { chunked[$0.layer] = $0.topExperts }
        #expect(whole == chunked)
        // the same to rounding (BLAS blocks products of other shapes differently)
        #expect(relativeMaxError(try #require(a.finalHidden).storage, try #require(b.finalHidden).storage) < 1e-5)
    }

    @Test("without keepMoEInput the layers hand out no input, and route the same")
    func withoutTheInput() throws {
        let model = try RoutingFixtures.model("routing/models/olmoe")
        let tokens = (0..<96).map { Int32(2 + ($0 * 41) % 120) }
        var kept: [Int: [Int32]] = [:], dropped: [Int: [Int32]] = [:], inputs: [Int: Bool] = [:]
        _ = try model.forward(tokens: tokens, windowLength: 32) { r in
            kept[r.layer] = r.topExperts
            #expect(r.input?.shape == [96, r.hidden])
        }
        _ = try model.forward(tokens: tokens, windowLength: 32, keepMoEInput: false) { r in
            dropped[r.layer] = r.topExperts
            inputs[r.layer] = r.input != nil
        }
        #expect(!kept.isEmpty)
        #expect(kept == dropped)
        #expect(inputs.values.allSatisfy { !$0 })
    }

    @Test("bad tokens and windows are errors, not traps")
    func badInput() throws {
        let model = try RoutingFixtures.model("olmoe-tiny")
        #expect(throws: ModelsError.self) { _ = try model.forward(tokens: [1, 2, 3], windowLength: 2) { _ in } }
        #expect(throws: ModelsError.self) { _ = try model.forward(tokens: [1, 200], windowLength: 2) { _ in } }
        #expect(throws: ModelsError.self) { _ = try model.forward(tokens: [1, -1], windowLength: 2) { _ in } }
        #expect(throws: ModelsError.self) { _ = try model.forward(tokens: [], windowLength: 2) { _ in } }
    }
}
