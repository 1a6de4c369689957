import Checkpoints
import Tensors

extension MoECheckpoint {
    /// The tensor of each routed expert's projection `p` when every expert has its own tensor
    /// (Hugging Face per-expert layouts), else nil (fused and OLMo-core stacked layouts, or a
    /// projection the layout lacks).
    public func expertTensorNames(_ layer: MoELayer, _ p: Projection) -> [String]? {
        guard case let .perExpert(experts) = layer.experts else { return nil }
        var names: [String] = []
        names.reserveCapacity(experts.count)
        for e in experts {
            switch p {
            case .gate: names.append(e.gate)
            case .up: guard let u = e.up else { return nil }; names.append(u)
            case .down: guard let w = e.down else { return nil }; names.append(w)
            }
        }
        return names
    }

    /// Reads the routed experts' projection `p` of `layer` one expert at a time (per-expert
    /// layouts only, else nil): each matrix decoded to Float32 as `expertWeights` would (FP8
    /// block scales applied), or, when every expert's tensor is stored as plain BF16, its bits.
    public func expertSource(_ layer: MoELayer, _ p: Projection) -> ProductNorms.Source? {
        guard let names = expertTensorNames(layer, p) else { return nil }
        let shape = projectionShape(layer, p)
        let count = shape[0] * shape[1]
        let ckpt = checkpoint
        let bf16 = names.allSatisfy { n in
            guard let i = ckpt.info(n) else { return false }
            return i.dtype == .bf16 && i.elementCount == count && !ckpt.contains(n + "_scale_inv")
        }
        let read: @Sendable (Int, UnsafeMutableBufferPointer<Float>) throws -> Void = { e, buffer in
            guard let i = ckpt.info(names[e]), i.elementCount == count else {
                throw CheckpointError.malformed(file: ckpt.path, reason: "'\(names[e])' has shape \(ckpt.info(names[e])?.shape ?? []), expected \(shape)")
            }
            try ckpt.read(names[e], into: buffer)
        }
        let readBF16: @Sendable (Int, UnsafeMutableBufferPointer<UInt16>) throws -> Void = { e, buffer in
            try ckpt.copyRawBytes(names[e], into: UnsafeMutableRawBufferPointer(buffer))
        }
        return ProductNorms.Source(
            count: names.count, rows: shape[0], columns: shape[1], read: read,
            readBF16: bf16 ? readBF16 : nil, prefetch: { e in ckpt.prefetch(names[e]) })
    }
}
