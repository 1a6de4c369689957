import Checkpoints
import Dispatch
import Foundation
import Tensors

/// One of an expert's three projections.
public enum Projection: String, Sendable, CaseIterable {
    /// W_g [D, d], the input of SiLU.
    case gate
    /// W_p [D, d].
    case up
    /// W_o [d, D].
    case down
}

extension MoECheckpoint {
    /// The router weight R [n, d] of `layer`, as Float32 (OLMo-core's flat [n*d] router reshaped).
    public func routerWeight(_ layer: MoELayer) throws(CheckpointError) -> Tensor {
        let r = try checkpoint.tensor(layer.router)
        if r.shape.count == 1, r.count == layer.expertCount * layer.hiddenSize { return r.reshaped([layer.expertCount, layer.hiddenSize]) }
        return r
    }

    /// Shape of one expert's projection: [D, d] for gate and up, [d, D] for down.
    public func projectionShape(_ layer: MoELayer, _ p: Projection) -> [Int] {
        p == .down ? [layer.hiddenSize, layer.intermediateSize] : [layer.intermediateSize, layer.hiddenSize]
    }

    /// Every routed expert's projection `p`, stacked: [n, D, d] (gate, up) or [n, d, D] (down).
    /// Experts are decoded in parallel; each element is the stored value converted to Float32.
    public func expertWeights(_ layer: MoELayer, _ p: Projection) throws(CheckpointError) -> Tensor {
        let per = projectionShape(layer, p)
        var out = Tensor(shape: [layer.expertCount] + per)
        try out.storage.withUnsafeMutableBufferPointer { b throws(CheckpointError) in try readExpertWeights(layer, p, into: b) }
        return out
    }

    /// Decodes the stacked projection `p` of `layer` into `destination` (n * D * d floats).
    public func readExpertWeights(
        _ layer: MoELayer, _ p: Projection,
        into destination: UnsafeMutableBufferPointer<Float>
    ) throws(CheckpointError) {
        let n = layer.expertCount, D = layer.intermediateSize, d = layer.hiddenSize
        let per = D * d
        guard destination.count == n * per, let base = destination.baseAddress else {
            throw .malformed(file: checkpoint.path, reason: "layer \(layer.index): buffer size mismatch")
        }
        switch layer.experts {
        case let .perExpert(experts):
            let names: [String] = try experts.map { e throws(CheckpointError) -> String in
                switch p {
                case .gate: return e.gate
                case .up:
                    guard let u = e.up else { throw .missingTensor(file: checkpoint.path, name: "layer \(layer.index) up projection") }
                    return u
                case .down:
                    guard let w = e.down else { throw .missingTensor(file: checkpoint.path, name: "layer \(layer.index) down projection") }
                    return w
                }
            }
            let failure = FirstError()
            let workers = min(n, max(1, ProcessInfo.processInfo.activeProcessorCount))
            let dst = UnsafeShared(base)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var e = w
                while e < n {
                    do {
                        try checkpoint.read(names[e], into: UnsafeMutableBufferPointer(start: dst.value + e * per, count: per))
                    } catch { failure.record(error) }
                    e += workers
                }
            }
            if let e = failure.error { throw e }
        case let .stacked(w1, w3, w2, transposed):
            try OLMoCoreLayout.readStacked(checkpoint, layer, w1: w1, w3: w3, w2: w2, transposed: transposed, p, into: destination)
        case let .fused(gateUp, down):
            switch p {
            case .gate, .up:
                // [n, 2D, d]: gate rows first, then up rows, per expert.
                let all = try checkpoint.tensor(gateUp)
                all.storage.withUnsafeBufferPointer { src in
                    guard let s = src.baseAddress else { return }
                    for e in 0..<n {
                        let from = s + e * 2 * per + (p == .gate ? 0 : per)
                        (base + e * per).update(from: from, count: per)
                    }
                }
            case .down:
                guard let down else { throw .missingTensor(file: checkpoint.path, name: "layer \(layer.index) fused down_proj") }
                try checkpoint.read(down, into: destination)
            }
        }
    }
}

/// Keeps the first error thrown by concurrent workers.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var error: CheckpointError?
    func record(_ e: Error) {
        lock.lock(); defer { lock.unlock() }
        if error == nil { error = (e as? CheckpointError) ?? .io(file: "?", reason: "\(e)") }
    }
}
