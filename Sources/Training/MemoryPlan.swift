import Foundation
import Tensors

/// The memory a training run will need, estimated before anything is allocated, so that a
/// config or options too large for the machine get an error that says what is too big instead
/// of a failed allocation. Counted in `Double` so that absurd sizes cannot overflow.
public struct MemoryPlan: Sendable {
    /// Bytes of parameters, gradients and optimizer state.
    public var parameterBytes: Double
    /// Bytes of activations and workspace for one micro-batch.
    public var activationBytes: Double

    /// The plan for `config` trained with `options` (`options` nil: the model alone).
    public init(_ config: OlmoeConfig, options: TrainingOptions?) {
        let d = Double(config.hiddenSize), D = Double(config.intermediateSize), n = Double(config.expertCount)
        let V = Double(config.vocabularySize), layers = Double(config.layerCount)
        let kv = Double(config.keyValueDim), k = Double(config.topK), heads = Double(config.headCount)
        let perLayer = 2 * d * (d + kv) + 3 * n * D * d + n * d + 4 * d
        let parameters = layers * perLayer + V * d * (config.tieWordEmbeddings ? 1 : 2) + d
        // weights, gradients, two AdamW moments, and a Float32 master copy when saving narrower
        parameterBytes = parameters * 4 * (options.map { $0.optimizer == .adamw ? 5 : 3 } ?? 1)
        guard let o = options else { activationBytes = 0; return }
        let B = Double(o.batchSize), L = Double(o.sequenceLength), T = B * L
        let layerActivations = T * (8 * d + 3 * kv + 2 * n + k * (2 * d + 3 * D) + 8) + B * heads * L * L
        activationBytes = 4 * (layers * layerActivations + (layers + 4) * T * d + T * V + T * (d + 2 * kv) + B * heads * L * L)
        if o.precision == .bf16 {
            // BF16 copies: parameters, the operands kept per layer, one layer's expert gradients,
            // and the final norm, logits, stream, attention output and q/k/v gradients
            activationBytes += 2 * (parameters + layers * T * (3 * d + 2 * kv + k * (d + D)) + T * k * (2 * D + d) + T * (4 * d + V + 2 * kv))
        }
    }

    /// Total bytes.
    public var totalBytes: Double { parameterBytes + activationBytes }

    /// Checks the plan against this machine's memory (at most 90% of it).
    /// - Throws: `TrainingError.invalidOption` saying what is too big and how big.
    public func check(source: String) throws(TrainingError) {
        let available = Double(ProcessInfo.processInfo.physicalMemory) * 0.9
        guard totalBytes <= available else {
            let gb = { (b: Double) in String(format: "%.3g GB", b / 1e9) }
            let what: SettingMessage =
                parameterBytes >= activationBytes
                ? "the model's parameters, gradients and optimizer state need \(gb(parameterBytes)) (vocab_size, hidden_size, intermediate_size, num_experts or num_hidden_layers are too large)"
                : "the activations of one micro-batch need \(gb(activationBytes)) (lower \(Setting.batchSize) or \(Setting.sequenceLength))"
            throw .invalidOption("\(source): training would need about \(gb(totalBytes)) of memory, more than this machine's \(gb(available / 0.9)): \(what)")
        }
    }
}
