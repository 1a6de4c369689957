import Checkpoints
import Foundation
import Tensors

@testable import Training

/// Paths and readers for the fixtures written by `fixtures/training/make_training_fixtures.py`.
enum Fixtures {
    static let root: String = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.appendingPathComponent("../../fixtures/training").standardized.path
    }()

    static func path(_ name: String) -> String { root + "/" + name }

    /// A tensor from a safetensors file of the fixtures.
    static func tensor(_ file: String, _ name: String) throws -> Tensor {
        try Checkpoint.open(path(file)).tensor(name)
    }

    /// All tensors of a safetensors file by name.
    static func tensors(_ file: String) throws -> [String: Tensor] {
        let ck = try Checkpoint.open(path(file))
        var out: [String: Tensor] = [:]
        for t in ck.tensors { out[t.name] = try ck.tensor(t.name) }
        return out
    }

    /// Norm-wise relative error ||a - b|| / max(||b||, floor), in Double.
    static func relativeError(_ a: [Float], _ b: [Float], floor: Double = 1e-12) -> Double {
        precondition(a.count == b.count)
        var num = 0.0, den = 0.0
        for i in a.indices {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
        }
        return num.squareRoot() / max(den.squareRoot(), floor)
    }

    static func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Double {
        zip(a, b).reduce(0.0) { max($0, abs(Double($1.0) - Double($1.1))) }
    }
}

/// Runs one forward + backward of a fixture model on its fixed tokens (transformers' labels=x
/// shift: the last position of each row has no target).
struct FixtureRun {
    let model: OlmoeNetwork
    let losses: LossBreakdown
    let logits: [Float]
    let gradients: FloatBuffer
    let workspace: ModelWorkspace

    init(_ folder: String, lbWeight: Double = 0.01, zWeight: Double = 0.001) throws {
        let (model, _) = try NetworkCheckpoint.load(Fixtures.path(folder))
        let tokens = try Fixtures.tensor(folder + "/expected_outputs.safetensors", "tokens")
        let B = tokens.shape[0], L = tokens.shape[1]
        let ws = ModelWorkspace(model.config, batch: B, length: L)
        var targets = [Int32](repeating: -1, count: B * L)
        for b in 0..<B {
            for t in 0..<L {
                ws.tokens.pointer[b * L + t] = Int32(tokens.storage[b * L + t])
                if t + 1 < L { targets[b * L + t] = Int32(tokens.storage[b * L + t + 1]) }
            }
        }
        let grads = FloatBuffer(count: model.parameters.count)
        // logits are overwritten by their gradient: run a forward first to keep them
        model.forward(ws)
        logits = ws.logits.array
        losses = targets.withUnsafeBufferPointer { tp in
            model.forwardBackward(
                ws, targets: tp.baseAddress!, lbWeight: lbWeight, zWeight: zWeight, scale: 1,
                gradients: grads, trainable: Set(ParameterGroup.allCases))
        }
        self.model = model
        gradients = grads
        workspace = ws
    }
}
