import Checkpoints
import Foundation
import MoELayout
import Tensors
import TestSupport
import Testing

@testable import Analysis

/// The Swift engine's ERC numbers that the PyTorch package (`python/moe_inspect_torch`) must
/// reproduce: for the tiny OLMoE and Mixtral fixtures, every MoE layer's noise bound eps, the
/// coupling threshold alpha*, the loss and its specialization/precision parts for alpha 1 and 0.5
/// without noise and with the fixed noise delta stored in `fixtures/erc/<model>.safetensors`, the
/// gradients with respect to R and W_g, and the activation matrix M of every probe feature.
///
/// `MOE_WRITE_PARITY=1 swift test --filter PyTorchParityExport` rewrites
/// `fixtures/erc/swift-parity.json` (scalars, tensor names) and
/// `fixtures/erc/swift-parity.safetensors` (M, gradients); `python/tests/test_parity.py` reads them.
/// Without the variable the test checks that the committed files parse and still equal what the
/// engine computes now, so that the Python side is never compared against stale numbers.
@Suite struct PyTorchParityExport {
    static let models = ["olmoe-tiny", "mixtral-tiny"]
    static let alphas = [1.0, 0.5]
    static let jsonPath = fixtures + "/erc/swift-parity.json"
    static let tensorsPath = fixtures + "/erc/swift-parity.safetensors"

    /// Everything computed for one model: its JSON entry and the named tensors.
    struct Export {
        var json: JSONValue
        var tensors: [(String, Tensor)]
    }

    func parts(_ l: ERCLoss) -> JSONValue {
        .object([("loss", .number(l.total)), ("specialization", .number(l.specialization)), ("precision", .number(l.precision))])
    }

    func alphaKey(_ a: Double) -> String { String(a) }

    func compute(_ name: String) throws -> Export {
        let model = try MoECheckpoint(try Checkpoint.open(fixtures + "/" + name))
        let noiseFile = try Checkpoint.open(fixtures + "/erc/\(name).safetensors")
        var tensors: [(String, Tensor)] = []
        var layers: [(String, JSONValue)] = []
        for l in model.moeLayers {
            let prefix = "\(name).layer\(l.index)"
            let router = try model.routerWeight(l)
            let gate = try model.expertWeights(l, .gate)
            let up = try model.expertWeights(l, .up)
            let down = try model.expertWeights(l, .down)
            let delta = try noiseFile.tensor("layer\(l.index).delta")
            let eps = try NoiseBound.compute(router: router, layer: l.index)
            var noisy = router
            for k in noisy.storage.indices { noisy.storage[k] *= delta.storage[k] }

            var losses: [(String, JSONValue)] = []
            for (kind, noise) in [("clean", nil), ("noisy", delta)] as [(String, Tensor?)] {
                var perAlpha: [(String, JSONValue)] = []
                for a in Self.alphas {
                    let g = try ERCGradient(router: router, gate: gate, delta: noise, alpha: a)
                    perAlpha.append((alphaKey(a), parts(g.loss)))
                    tensors.append(("\(prefix).\(kind).alpha\(alphaKey(a)).grad_router", g.router))
                    tensors.append(("\(prefix).\(kind).alpha\(alphaKey(a)).grad_gate", g.gate))
                    if a == Self.alphas[0] { tensors.append(("\(prefix).\(kind).M", g.activation)) }
                }
                losses.append((kind, .object(perAlpha)))
            }
            let stack = ExpertStack(
                gate: gate, up: up, down: down, experts: l.expertCount,
                intermediate: l.intermediateSize, hidden: l.hiddenSize)
            var features: [(String, JSONValue)] = []
            for f in ProbeFeature.allCases {
                var entry: [(String, JSONValue)] = []
                for (kind, x) in [("clean", router), ("noisy", noisy)] {
                    let m = try ActivationMatrix.compute(proxies: x, stack: stack, feature: f)
                    tensors.append(("\(prefix).feature.\(f.rawValue).\(kind).M", m))
                    var perAlpha: [(String, JSONValue)] = [("coupling_alpha", .number(ERCLoss.couplingThreshold(m)))]
                    for a in Self.alphas { perAlpha.append((alphaKey(a), parts(ERCLoss(activation: m, alpha: a)))) }
                    entry.append((kind, .object(perAlpha)))
                }
                features.append((f.rawValue, .object(entry)))
            }
            let names: JSONValue
            switch l.experts {
            case let .perExpert(experts):
                names = .object([
                    ("gate", .array(experts.map { .string($0.gate) })),
                    ("up", .array(experts.map { .string($0.up ?? "") })),
                    ("down", .array(experts.map { .string($0.down ?? "") })),
                ])
            case let .fused(gateUp, down):
                names = .object([("gate_up", .string(gateUp)), ("down", .string(down ?? ""))])
            default:
                names = .object([])  // the parity fixtures are per-expert checkpoints
            }
            let clean = tensors.first { $0.0 == "\(prefix).clean.M" }?.1 ?? Tensor(shape: [0, 0])
            layers.append(
                (
                    String(l.index),
                    .object([
                        ("experts", .int(l.expertCount)),
                        ("hidden", .int(l.hiddenSize)),
                        ("intermediate", .int(l.intermediateSize)),
                        ("router", .string(l.router)),
                        ("expert_tensors", names),
                        ("delta", .string("layer\(l.index).delta")),
                        ("eps", .array(eps.map { .number($0) })),
                        ("coupling_alpha", .number(ERCLoss.couplingThreshold(clean))),
                        ("loss", .object(losses)),
                        ("features", .object(features)),
                    ])
                ))
        }
        let json = JSONValue.object([
            ("checkpoint", .string("fixtures/\(name)")),
            ("noise", .string("fixtures/erc/\(name).safetensors")),
            ("layers", .object(layers)),
        ])
        return Export(json: json, tensors: tensors)
    }

    func computeAll() throws -> (JSONValue, [(String, Tensor)]) {
        var models: [(String, JSONValue)] = []
        var tensors: [(String, Tensor)] = []
        for name in Self.models {
            let e = try compute(name)
            models.append((name, e.json))
            tensors += e.tensors
        }
        let json = JSONValue.object([
            ("generator", .string("Tests/AnalysisTests/PyTorchParityExport.swift (MOE_WRITE_PARITY=1)")),
            ("tensors", .string("fixtures/erc/swift-parity.safetensors")),
            ("alphas", .array(Self.alphas.map { .number($0) })),
            ("features", .array(ProbeFeature.allCases.map { .string($0.rawValue) })),
            ("models", .object(models)),
        ])
        return (json, tensors)
    }

    @Test func exportOrCheck() throws {
        let (json, tensors) = try computeAll()
        if ProcessInfo.processInfo.environment["MOE_WRITE_PARITY"] == "1" {
            try SafetensorsWriter.write(
                tensors.map { (TensorSpec(name: $0.0, dtype: .f32, shape: $0.1.shape), $0.1) },
                metadata: ["format": "pt"], to: Self.tensorsPath)
            try AtomicOutput.write(json.serialized(pretty: true) + "\n", to: Self.jsonPath)
        }
        // The committed files parse and hold what the engine computes now.
        let committed = try #require(try loadJSON("erc/swift-parity.json")["models"] as? [String: Any])
        #expect(Set(committed.keys) == Set(Self.models))
        let file = try Checkpoint.open(Self.tensorsPath)
        for (name, t) in tensors {
            let stored = try file.tensor(name)
            #expect(stored.shape == t.shape, "\(name)")
            // relative per element, with elements below a thousandth of the tensor's largest
            // measured against that (their relative error only reflects the kernel's order of sums)
            let scale = t.storage.map { abs($0) }.max() ?? 0
            var worst: Float = 0
            for (a, b) in zip(stored.storage, t.storage) { worst = max(worst, abs(a - b) / max(abs(b), 1e-3 * scale, 1e-6)) }
            // 3e-4: the file was written with OpenBLAS's products; with oneDNN's the sums run in
            // another order, and gradients (sums over hinge terms) move by up to 1.4e-4 here.
            #expect(worst <= 3e-4, "\(name) differs from the engine by \(worst)")
        }
        for model in Self.models {
            let layers = try #require((committed[model] as? [String: Any])?["layers"] as? [String: [String: Any]])
            for (index, layer) in try #require(json["models"]?[model]?["layers"]?.objectPairs) {
                let stored = try #require(layers[index])
                let loss = try #require(stored["loss"] as? [String: [String: [String: Double]]])
                for kind in ["clean", "noisy"] {
                    for a in Self.alphas {
                        let want = try #require(layer["loss"]?[kind]?[alphaKey(a)]?["loss"]?.doubleValue)
                        let got = try #require(loss[kind]?[alphaKey(a)]?["loss"])
                        #expect(abs(got - want) <= 1e-6 * abs(want), "\(model) layer \(index) \(kind) alpha \(a)")
                    }
                }
                let alphaStar = try #require(stored["coupling_alpha"] as? Double)
                let want = try #require(layer["coupling_alpha"]?.doubleValue)
                #expect(abs(alphaStar - want) <= 1e-6 * want)
            }
        }
    }
}
