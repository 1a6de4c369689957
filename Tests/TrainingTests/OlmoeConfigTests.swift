import Checkpoints
import Foundation
import Testing

@testable import Training

/// The trainer's config, decoded through Models' `OlmoeConfiguration` (a `Decodable` with transformers'
/// defaults): what is read, what is defaulted, and one line for what is wrong.
@Suite struct OlmoeConfigTests {
    /// The tiny config with `changes` applied (nil removes the key).
    static func config(_ changes: [String: JSONValue?]) throws -> OlmoeConfig {
        var pairs = try #require(
            try JSONParser.parse(try String(contentsOfFile: Fixtures.path("tiny-config.json"), encoding: .utf8), rejectDuplicateKeys: false).objectPairs)
        for (k, v) in changes {
            pairs.removeAll { $0.0 == k }
            if let v { pairs.append((k, v)) }
        }
        return try OlmoeConfig(json: .object(pairs), source: "config.json")
    }

    static func failure(_ changes: [String: JSONValue?]) -> String? {
        do {
            _ = try config(changes)
            return nil
        } catch { return "\(error)" }
    }

    @Test func valuesAndDefaults() throws {
        let c = try Self.config([:])
        #expect(c.vocabularySize == 256 && c.hiddenSize == 64 && c.keyValueHeadCount == 2 && c.expertCount == 8 && c.topK == 2)
        #expect(c.rmsNormEpsilon == 1e-5 && c.ropeTheta == 10_000 && c.clipQKV == nil && !c.tieWordEmbeddings)
        #expect(c.padTokenId == nil, "pad_token_id null is no padding row")
        // left out: transformers' defaults (pad 1, k 8 capped by nothing here, kv heads = heads)
        let d = try Self.config(["pad_token_id": nil, "num_key_value_heads": nil, "rms_norm_eps": nil, "clip_qkv": .number(8)])
        #expect(d.padTokenId == 1 && d.keyValueHeadCount == 4 && d.rmsNormEpsilon == 1e-5 && d.clipQKV == 8)
        // v4 spelling of the expert count
        let v4 = try Self.config(["num_experts": nil, "num_local_experts": .int(4)])
        #expect(v4.expertCount == 4)
    }

    @Test func wrongKeysAreOneLineNamingTheKey() {
        #expect(Self.failure(["num_experts": nil]) == "config.json: missing 'num_experts'")
        #expect(Self.failure(["hidden_size": .number(12.5)]) == "config.json: 'hidden_size' must be an integer")
        #expect(Self.failure(["hidden_size": .string("64")]) == "config.json: 'hidden_size' must be an integer")
        #expect(Self.failure(["norm_topk_prob": .string("yes")]) == "config.json: 'norm_topk_prob' must be true or false")
        #expect(Self.failure(["clip_qkv": .number(-1)]) == "config.json: 'clip_qkv' must be a positive number or null")
        #expect(Self.failure(["model_type": .string("mixtral")])?.contains("not trainable here") == true)
        #expect(Self.failure(["attention_bias": .bool(true)])?.contains("attention_bias true is not supported") == true)
    }
}
