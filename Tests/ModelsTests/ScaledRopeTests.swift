import Checkpoints
import Foundation
import MoELayout
import Tensors
import Testing

@testable import Models

/// Parses a config and returns its architecture, or the error's description.
private func decodeArchitecture(_ text: String) throws -> Result<Architecture, ModelsError> {
    let c = try ModelConfig(text: text, source: "config.json")
    do { return .success(try CausalModel.huggingFaceArchitecture(c, type: c.modelType ?? "", source: "config.json")) } catch {
        return .failure(error)
    }
}

/// A tiny config of `family` with `rope` spliced in (JSON members, without braces).
private func config(_ family: String, _ rope: String) -> String {
    switch family {
    case "deepseek_v3":
        return
            #"{"model_type":"deepseek_v3","vocab_size":16,"hidden_size":8,"intermediate_size":4,"moe_intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"n_routed_experts":4,"num_experts_per_tok":2,"kv_lora_rank":4,"qk_rope_head_dim":8,"qk_nope_head_dim":2,"v_head_dim":2,"first_k_dense_replace":0,"#
            + rope + "}"
    default:
        return
            #"{"model_type":"mixtral","vocab_size":16,"hidden_size":32,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_local_experts":4,"num_experts_per_tok":2,"#
            + rope + "}"
    }
}

@Suite("Scaled RoPE against transformers")
struct ScaledRopeTests {
    static let scaled = ["deepseek-v3-yarn", "deepseek-v2-yarn", "mixtral-linear", "qwen3-moe-llama3", "qwen2-moe-dynamic", "olmoe-longrope"]

    @Test("inverse frequencies, the cos/sin factor and the softmax scale are transformers' (after its forward)", arguments: scaled)
    func frequencies(name: String) throws {
        let ref = try RoutingFixtures.expected("models-" + name)
        let a = try RoutingFixtures.model("routing/models/" + name).architecture
        let (inverse, factor) = a.rope.frequencies(sequenceLength: RoutingFixtures.windowLength)
        let expected = try #require(ref["rope_inv_freq"]).storage
        #expect(inverse.count == expected.count)
        for (mine, theirs) in zip(inverse, expected) {
            #expect(abs(mine - theirs) <= 1e-6 * abs(theirs), "\(name) inv_freq \(mine) vs \(theirs)")
        }
        let scaling = try #require(ref["rope_attention_scaling"]).storage[0]
        #expect(abs(factor - scaling) <= 1e-6 * scaling, "\(name) cos/sin factor \(factor) vs \(scaling)")
        let softmax = try #require(ref["attention_scaling"]).storage[0]
        let mine: Float
        switch a.attention {
        case let .latent(l): mine = l.softmaxScale
        case let .standard(s): mine = Float(Foundation.pow(Double(s.headDim), -0.5))
        }
        #expect(abs(mine - softmax) <= 1e-6 * softmax, "\(name) softmax scale \(mine) vs \(softmax)")
    }

    @Test("dynamic NTK and longrope follow the window length; the others do not")
    func sequenceLength() throws {
        let dynamic = try RoutingFixtures.model("routing/models/qwen2-moe-dynamic").architecture.rope
        let plain = RopeSpec(theta: dynamic.theta, dim: dynamic.dim, interleaved: false)
        // max_position_embeddings 16: windows up to 16 use the default frequencies
        #expect(dynamic.frequencies(sequenceLength: 16).inverse == plain.frequencies(sequenceLength: 16).inverse)
        #expect(dynamic.frequencies(sequenceLength: 32).inverse != plain.frequencies(sequenceLength: 32).inverse)
        let longrope = try RoutingFixtures.model("routing/models/olmoe-longrope").architecture.rope
        #expect(longrope.frequencies(sequenceLength: 16).inverse != longrope.frequencies(sequenceLength: 17).inverse)
        let linear = try RoutingFixtures.model("routing/models/mixtral-linear").architecture.rope
        #expect(linear.frequencies(sequenceLength: 4).inverse == linear.frequencies(sequenceLength: 400).inverse)
    }

    @Test("v4 (rope_theta + rope_scaling, type) and v5 (rope_parameters, rope_type) spellings read alike")
    func spellings() throws {
        let v4 = config(
            "mixtral",
            #""rope_theta":5000,"rope_scaling":{"type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64}"#)
        let v5 = config(
            "mixtral",
            #""rope_parameters":{"rope_type":"llama3","rope_theta":5000,"factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64}"#
        )
        let a = try decodeArchitecture(v4).get(), b = try decodeArchitecture(v5).get()
        #expect(a.rope == b.rope)
        #expect(a.rope.scaling == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64))
        #expect(a.rope.theta == 5000)
        // What transformers 5.24 makes of mixed spellings (printed from its configs' rope_parameters
        // and from _compute_llama3_parameters): a non-empty rope_scaling replaces rope_parameters,
        // rope_theta in the object wins over the top-level one, a top-level
        // original_max_position_embeddings wins over the object's, an empty rope_scaling is absent.
        let both = try decodeArchitecture(
            config(
                "mixtral",
                #""rope_theta":5000,"rope_parameters":{"rope_type":"yarn","factor":40,"rope_theta":7000},"rope_scaling":{"rope_type":"linear","factor":2}"#)
        ).get()
        #expect(both.rope.scaling == .linear(factor: 2) && both.rope.theta == 5000)
        let inner = try decodeArchitecture(config("mixtral", #""rope_theta":5000,"rope_parameters":{"rope_type":"linear","factor":2,"rope_theta":7000}"#)).get()
        #expect(inner.rope.theta == 7000)
        let top = try decodeArchitecture(
            config(
                "mixtral", #""original_max_position_embeddings":77,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4}"#)
        ).get()
        #expect(top.rope.scaling == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 77))
        let fallback = try decodeArchitecture(config("mixtral", #""rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4}"#))
            .get()
        #expect(fallback.rope.scaling == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 131_072))
        let empty = try decodeArchitecture(config("mixtral", #""rope_scaling":{},"rope_parameters":{"rope_type":"linear","factor":3,"rope_theta":100}"#)).get()
        #expect(empty.rope.scaling == .linear(factor: 3) && empty.rope.theta == 100)
        let dynamic = try decodeArchitecture(config("mixtral", #""max_position_embeddings":16.0,"rope_parameters":{"rope_type":"dynamic","factor":2}"#)).get()
        #expect(dynamic.rope.scaling == .dynamic(factor: 2, maxPositions: 16))
        // DeepSeek: the MLA softmax mscale comes from mscale_all_dim, for any scaled type
        let ds = try decodeArchitecture(
            config("deepseek_v3", #""rope_scaling":{"type":"yarn","factor":40,"mscale":1,"mscale_all_dim":1,"original_max_position_embeddings":16}"#)
        ).get()
        let noAll = try decodeArchitecture(
            config("deepseek_v3", #""rope_scaling":{"type":"yarn","factor":40,"mscale":1,"original_max_position_embeddings":16}"#)
        ).get()
        guard case let .latent(l) = ds.attention, case let .latent(m) = noAll.attention else { Issue.record("not MLA"); return }
        #expect(l.softmaxMScale > 1 && m.softmaxMScale == 1)
    }

    @Test(
        "unknown types, missing or bad values are one clear error",
        arguments: [
            (#""rope_scaling":{"type":"su","factor":2}"#, "su"),
            (#""rope_scaling":{"rope_type":"linear"}"#, "factor"),
            (#""rope_scaling":{"rope_type":"linear","factor":0}"#, "factor"),
            (#""rope_scaling":{"rope_type":"dynamic","factor":-2}"#, "factor"),
            (#""rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1}"#, "high_freq_factor"),
            (#""rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":2,"high_freq_factor":2}"#, "high_freq_factor"),
            (#""rope_scaling":{"rope_type":"longrope","short_factor":[1,1],"long_factor":[1,1,1,1,1,1,1,1]}"#, "short_factor"),
            (#""rope_scaling":{"rope_type":"longrope","long_factor":[1,1,1,1,1,1,1,1]}"#, "short_factor"),
            (#""rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":0.5}"#, "original_max_position_embeddings"),
            (#""rope_parameters":{"rope_type":"linear","factor":2,"partial_rotary_factor":0.5}"#, "partial_rotary_factor"),
            (#""rope_parameters":{"full_attention":{"rope_type":"default"},"sliding_attention":{"rope_type":"default"}}"#, "layer type"),
        ])
    func badRope(rope: String, mentions: String) throws {
        switch try decodeArchitecture(config("mixtral", rope)) {
        case .success: Issue.record("\(rope) was accepted")
        case let .failure(e):
            #expect(e.description.contains(mentions), "\(e.description)")
            #expect(!e.description.contains("\n"))
        }
    }
}

@Suite("OLMo-core checkpoints as FlexOlmo")
struct OLMoCoreModelTests {
    static let configPath = RoutingFixtures.root + "/olmo-core/dropless/step3/config.json"

    /// The run config of the dropless fixture with `edit` applied to its text.
    func run(_ edit: (String) -> String) throws -> OLMoCoreModelConfig {
        let text = try String(contentsOfFile: Self.configPath, encoding: .utf8)
        let c = try ModelConfig(text: edit(text), source: "config.json")
        return try #require(try OLMoCoreModelConfig(json: c.json, source: "config.json"))
    }

    @Test("the run checkpoint is FlexOlmo with the norms after the sublayers")
    func architecture() throws {
        let a = try RoutingFixtures.model("olmo-core/dropless/step3").architecture
        let hf = try RoutingFixtures.model("olmo-core/dropless-hf").architecture
        #expect(a.family == "olmo_core" && hf.family == "flex_olmo")
        #expect(a.normPlacement == .afterSublayer && hf.normPlacement == .afterSublayer)
        #expect(a.attention == hf.attention && a.rope == hf.rope && a.feedForward == hf.feedForward && a.rmsNormEpsilon == hf.rmsNormEpsilon)
    }

    @Test("router options: normalize_expert_weights 1 is norm_topk_prob; what FlexOlmo cannot run is refused by name")
    func routerOptions() throws {
        let router = #""gating_function": "softmax""#
        let normalized = try OLMoCoreModel.architecture(
            run { $0.replacingOccurrences(of: router, with: router + #", "normalize_expert_weights": 1.0"#) }, dtype: .f32)
        guard case let .moe(m) = normalized.feedForward[0] else { Issue.record("not MoE"); return }
        #expect(m.router.normalizeTopK)
        let plain = try OLMoCoreModel.architecture(run { $0 }, dtype: .f32)
        guard case let .moe(p) = plain.feedForward[0] else { Issue.record("not MoE"); return }
        #expect(!p.router.normalizeTopK)
        for (edit, mentions) in [
            ({ (s: String) in s.replacingOccurrences(of: router, with: router + #", "bias_gamma": 0.001"#) }, "bias_gamma"),
            ({ (s: String) in s.replacingOccurrences(of: router, with: router + #", "normalize_expert_weights": 2.0"#) }, "normalize_expert_weights"),
            (
                { (s: String) in s.replacingOccurrences(of: #""uniform_expert_assignment": false"#, with: #""uniform_expert_assignment": true"#) },
                "uniform_expert_assignment"
            ),
            (
                { (s: String) in
                    s.replacingOccurrences(of: #""partial_rotary_factor": 1.0"#, with: #""partial_rotary_factor": 1.0, "scaling": {"new_theta": 8000000}"#)
                }, "RoPE scaling"
            ),
            ({ (s: String) in s.replacingOccurrences(of: #""gating_function": "softmax""#, with: #""gating_function": "sigmoid""#) }, "sigmoid"),
            ({ (s: String) in s.replacingOccurrences(of: #""name": "moe_reordered_norm""#, with: #""name": "moe""#) }, "block type"),
        ] {
            do {
                _ = try OLMoCoreModel.architecture(run(edit), dtype: .f32)
                Issue.record("accepted a run config with \(mentions)")
            } catch {
                #expect(String(describing: error).contains(mentions), "\(error)")
            }
        }
    }

    @Test("OLMo-core names for the Hugging Face names the executor asks for")
    func names() {
        #expect(OLMoCoreModel.storedName("model.embed_tokens.weight") == "embeddings.weight")
        #expect(OLMoCoreModel.storedName("model.layers.3.self_attn.o_proj.weight") == "blocks.3.attention.w_out.weight")
        #expect(OLMoCoreModel.storedName("model.layers.0.post_feedforward_layernorm.weight") == "blocks.0.feed_forward_norm.weight")
        #expect(OLMoCoreModel.storedName("lm_head.weight") == "lm_head.w_out.weight")
        #expect(OLMoCoreModel.storedName("blocks.1.feed_forward_moe.router.weight") == "blocks.1.feed_forward_moe.router.weight")
    }
}
