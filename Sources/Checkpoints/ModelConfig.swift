import Foundation

/// A model's `config.json`, read with the spellings of transformers v4 and v5 both accepted.
public struct ModelConfig: Sendable, Equatable {
    /// The whole JSON object.
    public var json: JSONValue

    public init(json: JSONValue) { self.json = json }

    /// Parses config text; `source` names the file in errors.
    public init(text: String, source: String) throws(CheckpointError) {
        do { json = try JSONParser.parse(text, rejectDuplicateKeys: false) } catch {
            throw .malformed(file: source, reason: "config is not valid JSON: \(error)")
        }
        guard json.objectPairs != nil else { throw .malformed(file: source, reason: "config is not a JSON object") }
    }

    /// Reads `config.json` at `path`.
    public init(contentsOf path: String) throws(CheckpointError) {
        let d = try ReadOnlyFile.contents(of: path, limit: 64 << 20)
        guard let text = String(validating: d, as: UTF8.self) else { throw .malformed(file: path, reason: "config is not UTF-8") }
        try self.init(text: text, source: path)
    }

    /// The first of `keys` present as an integer.
    public func int(_ keys: String...) -> Int? {
        for k in keys { if let v = json[k]?.intValue { return v } }
        return nil
    }
    /// The first of `keys` present as a number.
    public func double(_ keys: String...) -> Double? {
        for k in keys { if let v = json[k]?.doubleValue { return v } }
        return nil
    }
    /// The first of `keys` present as a boolean.
    public func bool(_ keys: String...) -> Bool? {
        for k in keys { if let v = json[k]?.boolValue { return v } }
        return nil
    }
    /// The first of `keys` present as a string.
    public func string(_ keys: String...) -> String? {
        for k in keys { if let v = json[k]?.stringValue { return v } }
        return nil
    }
    /// The first of `keys` present as an array of integers.
    public func intArray(_ keys: String...) -> [Int]? {
        for k in keys { if let a = json[k]?.arrayValue { return a.compactMap { $0.intValue } } }
        return nil
    }

    /// `model_type`, e.g. `olmoe`, `mixtral`, `qwen2_moe`, `qwen3_moe`, `deepseek_v3`.
    public var modelType: String? { string("model_type") }
    /// Number of routed experts (`num_experts`, `num_local_experts` or `n_routed_experts`).
    public var expertCount: Int? { int("num_experts", "num_local_experts", "n_routed_experts") }
    /// Experts chosen per token.
    public var topK: Int? { int("num_experts_per_tok", "moe_topk", "top_k") }
    /// Rotary base: v4 `rope_theta` or v5 `rope_parameters.rope_theta`.
    public var ropeTheta: Double? {
        if let t = double("rope_theta") { return t }
        return json["rope_parameters"]?["rope_theta"]?.doubleValue
    }
}
