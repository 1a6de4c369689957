import Checkpoints
import Foundation
import MoELayout
import TestSupport
import Testing

@testable import Analysis

/// The noise-free ERC loss and eps of OLMo-core checkpoints equal PyTorch's values computed from
/// the tensors OLMo-core unsharded (fixtures/olmo-core/expected.json), and the three forms of one
/// run — distributed training checkpoint, unsharded safetensors export, flex_olmo Hugging Face
/// export — agree within 1e-5.
@Suite struct OLMoCoreERCTests {
    static let root = fixtures + "/olmo-core"
    static let runs: [(String, [String])] = [
        ("dropless/step3", ["dropless/step3", "dropless-unsharded", "dropless-hf"]),
        ("default/step2", ["default/step2", "default-hf"]),
        ("dropless-2rank/step5", ["dropless-2rank/step5"]),
    ]

    func close(_ a: Double, _ b: Double, _ tol: Double = 1e-5) -> Bool { abs(a - b) <= tol * max(abs(b), 1e-12) }

    @Test(arguments: runs)
    func matchesPyTorchInEveryForm(_ run: String, _ forms: [String]) throws {
        let expected = try #require(try loadJSON("olmo-core/expected.json")[run] as? [String: Any])
        let layers = try #require(expected["layers"] as? [[String: Any]])
        var first: [LayerCoupling]?
        for form in forms {
            let model = try MoECheckpoint(try Checkpoint.open(Self.root + "/" + form))
            let results = CouplingAnalysis.analyze(model, options: CouplingOptions(alphas: [1, 0.5], noise: false))
            #expect(results.count == layers.count)
            for (r, e) in zip(results, layers) {
                #expect(r.isOK, "\(form): \(String(describing: r.status))")
                let eps = try #require(e["eps"] as? [Double])
                #expect(r.eps.count == eps.count)
                for (g, w) in zip(r.eps, eps) { #expect(close(g, w), "\(form) layer \(r.layer) eps") }
                let losses = try #require(e["erc_loss"] as? [String: Double])
                for a in r.ercLosses {
                    let w = try #require(losses[String(a.alpha)])
                    #expect(close(a.loss.mean, w, 1e-4), "\(form) layer \(r.layer) alpha \(a.alpha): \(a.loss.mean) vs \(w)")
                }
                let m = try #require(r.activation)
                let want = (e["activation_matrix"] as? [[Double]] ?? []).flatMap { $0 }
                for (g, w) in zip(m.storage, want) { #expect(close(Double(g), w), "\(form) M") }
            }
            if let f = first {
                for (a, b) in zip(f, results) {
                    for (x, y) in zip(a.eps, b.eps) { #expect(abs(x - y) <= 1e-5) }
                    for (x, y) in zip(a.ercLosses, b.ercLosses) { #expect(abs(x.loss.mean - y.loss.mean) <= 1e-5, "\(form) vs \(forms[0])") }
                }
            } else {
                first = results
            }
        }
    }
}
