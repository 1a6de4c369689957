import Checkpoints
import Foundation
import MoELayout
import Tensors
import TestSupport
import Testing

@testable import Analysis

/// ERC values against a PyTorch implementation of the paper's formulas (fixtures/erc/make_erc_fixtures.py).
@Suite struct ERCTests {
    static let models = ["olmoe-tiny", "mixtral-tiny", "qwen2-moe-tiny", "qwen3-moe-tiny", "deepseek-v3-tiny"]

    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / max(den, 1e-30)).squareRoot()
    }

    func close(_ a: Double, _ b: Double, _ tol: Double = 1e-4) -> Bool { abs(a - b) <= tol * max(abs(b), 1e-12) }

    @Test(arguments: models)
    func matchesPyTorch(_ name: String) throws {
        let expected = try #require(try loadJSON("erc/expected.json")["models"] as? [String: [String: Any]])
        let layers = try #require(expected[name]?["layers"] as? [String: [String: Any]])
        let ref = try Checkpoint.open(fixtures + "/erc/\(name).safetensors")
        let model = try MoECheckpoint(try Checkpoint.open(fixtures + "/" + name))
        #expect(Set(model.moeLayers.map { String($0.index) }) == Set(layers.keys))
        let clean = CouplingAnalysis.analyze(model, options: CouplingOptions(alphas: [1, 0.5], noise: false))
        for l in model.moeLayers {
            let e = try #require(layers[String(l.index)])
            let result = try #require(clean.first { $0.layer == l.index })
            #expect(result.isOK)
            // eps, cosine, alpha*, M without noise
            let eps = try #require(e["eps"] as? [Double])
            for (g, w) in zip(result.eps, eps) { #expect(close(g, w), "\(name) eps") }
            #expect(close(result.geometry?.meanAbsCosine ?? .nan, try #require(e["router_cos_mean_abs"] as? Double)))
            #expect(close(result.couplingAlpha, try #require(e["coupling_alpha"] as? Double)))
            let mClean = try ref.tensor("layer\(l.index).M_clean")
            #expect(relativeError(try #require(result.activation).storage, mClean.storage) < 1e-5)
            let alphas = try #require(e["alphas"] as? [String: [String: [String: Double]]])
            for r in result.ercLosses {
                let w = try #require(alphas[String(r.alpha)]?["clean"])
                #expect(close(r.loss.mean, w["loss"]!), "\(name) layer \(l.index) alpha \(r.alpha)")
                #expect(close(r.specialization.mean, w["specialization"]!))
                #expect(close(r.precision.mean, w["precision"]!))
            }
            // With PyTorch's noise delta: M, loss and the gradient w.r.t. R and W_g.
            let router = try model.routerWeight(l)
            let gate = try model.expertWeights(l, .gate)
            let delta = try ref.tensor("layer\(l.index).delta")
            for a in [1.0, 0.5] {
                let g = try ERCGradient(router: router, gate: gate, delta: delta, alpha: a)
                let w = try #require(alphas[String(a)]?["noisy"])
                #expect(close(g.loss.total, w["loss"]!), "\(name) noisy alpha \(a)")
                #expect(close(g.loss.specialization, w["specialization"]!))
                #expect(relativeError(g.activation.storage, try ref.tensor("layer\(l.index).M_noisy").storage) < 1e-5)
                #expect(relativeError(g.router.storage, try ref.tensor("layer\(l.index).alpha\(a).grad_router").storage) < 1e-4, "\(name) dR")
                #expect(relativeError(g.gate.storage, try ref.tensor("layer\(l.index).alpha\(a).grad_gate").storage) < 1e-4, "\(name) dW")
            }
        }
    }

    @Test func gradientMatchesFiniteDifferences() throws {
        var g = SeededGenerator(seed: 11)
        let n = 5, d = 7, D = 4
        func randomTensor(_ shape: [Int]) -> Tensor {
            Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in Float(g.nextNormal()) })
        }
        let r = randomTensor([n, d]), w = randomTensor([n, D, d])
        let delta = Tensor(shape: [n, d], storage: (0..<(n * d)).map { _ in Float(0.8 + 0.4 * g.nextUnitDouble()) })
        for alpha in [0.5, 1.0] {
            let grad = try ERCGradient(router: r, gate: w, delta: delta, alpha: alpha)
            #expect(grad.loss.total > 0)
            let h: Float = 1e-2
            for (k, analytic) in [(3, grad.router.storage[3]), (17, grad.router.storage[17])] {
                var rp = r, rm = r
                rp.storage[k] += h; rm.storage[k] -= h
                let fd =
                    (try ERCGradient(router: rp, gate: w, delta: delta, alpha: alpha).loss.total
                        - ERCGradient(router: rm, gate: w, delta: delta, alpha: alpha).loss.total) / Double(2 * h)
                #expect(abs(fd - Double(analytic)) < 2e-3 * max(1, abs(fd)), "dR[\(k)] fd \(fd) analytic \(analytic)")
            }
            for k in [0, 29, 101] {
                var wp = w, wm = w
                wp.storage[k] += h; wm.storage[k] -= h
                let fd =
                    (try ERCGradient(router: r, gate: wp, delta: delta, alpha: alpha).loss.total
                        - ERCGradient(router: r, gate: wm, delta: delta, alpha: alpha).loss.total) / Double(2 * h)
                #expect(abs(fd - Double(grad.gate.storage[k])) < 2e-3 * max(1, abs(fd)), "dW[\(k)]")
            }
        }
    }

    @Test func handWorkedLoss() {
        // M = [[2, 1], [3, 1]], alpha 1: rows: max(1-2,0)=0, max(3-1,0)=2; columns: max(3-2,0)=1, max(1-1,0)=0
        let m = Tensor(shape: [2, 2], storage: [2, 1, 3, 1])
        let l = ERCLoss(activation: m, alpha: 1)
        #expect(l.specialization == 2.0 / 4)
        #expect(l.precision == 1.0 / 4)
        #expect(ERCLoss.couplingThreshold(m) == 3)
        #expect(ERCLoss(activation: m, alpha: 3).total == 0)
    }

    @Test func noiseIsSeededAndSamplesAverage() throws {
        let model = try MoECheckpoint(try Checkpoint.open(fixtures + "/olmoe-tiny"))
        let o = CouplingOptions(alphas: [1], noise: true, samples: 4, seed: 9)
        let a = CouplingAnalysis.analyze(model, options: o)
        let b = CouplingAnalysis.analyze(model, options: o)
        #expect(a.map { $0.ercLosses[0].loss.mean } == b.map { $0.ercLosses[0].loss.mean })
        #expect(a.allSatisfy { $0.ercLosses[0].loss.std > 0 })
        var other = o; other.seed = 10
        #expect(CouplingAnalysis.analyze(model, options: other).map { $0.ercLosses[0].loss.mean } != a.map { $0.ercLosses[0].loss.mean })
        // Delta stays within its bound.
        let eps = [0.1, 0.3]
        let delta = NoiseBound.sampleNoise(eps: eps, dimension: 1000, generator: SeededGenerator(seed: 1))
        #expect(delta.rows(0..<1).storage.allSatisfy { $0 >= 0.9 && $0 <= 1.1 })
        #expect(delta.rows(1..<2).storage.allSatisfy { $0 >= 0.7 && $0 <= 1.3 })
    }

    @Test func everyProbeFeatureAgreesWithADirectComputation() throws {
        var g = SeededGenerator(seed: 5)
        let n = 3, d = 6, D = 4
        func rnd(_ c: Int) -> [Float] { (0..<c).map { _ in Float(g.nextNormal()) } }
        let x = Tensor(shape: [n, d], storage: rnd(n * d))
        let wg = Tensor(shape: [n, D, d], storage: rnd(n * D * d)), wp = Tensor(shape: [n, D, d], storage: rnd(n * D * d))
        let wo = Tensor(shape: [n, d, D], storage: rnd(n * d * D))
        let stack = ExpertStack(gate: wg, up: wp, down: wo, experts: n, intermediate: D, hidden: d)
        func silu(_ v: Double) -> Double { v / (1 + exp(-v)) }
        for f in ProbeFeature.allCases {
            let m = try ActivationMatrix.compute(proxies: x, stack: stack, feature: f)
            for i in 0..<n {
                for j in 0..<n {
                    var h = [Double](repeating: 0, count: D)
                    for k in 0..<D {
                        var a = 0.0, b = 0.0
                        for t in 0..<d { a += Double(x[i, t] * wg.storage[(j * D + k) * d + t]); b += Double(x[i, t] * wp.storage[(j * D + k) * d + t]) }
                        switch f {
                        case .gate: h[k] = a
                        case .up: h[k] = b
                        case .siluGate: h[k] = silu(a)
                        case .swiglu, .output: h[k] = silu(a) * b
                        }
                    }
                    var v = h
                    if f == .output { v = (0..<d).map { o in (0..<D).reduce(0.0) { $0 + Double(wo.storage[(j * d + o) * D + $1]) * h[$1] } } }
                    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    #expect(abs(Double(m[i, j]) - norm) < 1e-4 * max(1, norm), "\(f) [\(i),\(j)]")
                }
            }
        }
    }

    @Test func badLayersGetAStatusNotACrash() {
        let r = Tensor(shape: [3, 4], storage: [1, 0, 0, 0, 0, 1, 0, 0, .nan, 0, 0, 1])
        let w = Tensor(shape: [3, 2, 4], repeating: 0.5)
        let res = CouplingAnalysis.analyze(layer: 4, router: r, stack: ExpertStack(gate: w, experts: 3, intermediate: 2, hidden: 4), options: CouplingOptions())
        #expect(res.status.description.contains("NaN"))
        let zero = Tensor(shape: [2, 2], storage: [0, 0, 1, 1])
        #expect(throws: AnalysisError.self) { try NoiseBound.compute(router: zero) }
        #expect(throws: AnalysisError.self) { try NoiseBound.compute(router: Tensor(shape: [1, 2], storage: [1, 1])) }
        #expect(CouplingAnalysis.step(fromPath: "runs/erc/step1200") == 1200)
        #expect(CouplingAnalysis.step(fromPath: "runs/checkpoint-500/model.safetensors") == 500)
        #expect(CouplingAnalysis.step(fromPath: "fixtures/olmoe-tiny") == nil)
    }
}

extension ERCTests {
    @Test func inPlaceAccumulationEqualsTheGradient() throws {
        var g = SeededGenerator(seed: 21)
        let n = 6, d = 10, D = 7, stride = 2 * D * d
        func rnd(_ c: Int) -> [Float] { (0..<c).map { _ in Float(g.nextNormal()) } }
        let r = Tensor(shape: [n, d], storage: rnd(n * d))
        // Fused gate_up layout: expert e's gate rows at e * 2 D d, its up rows after them.
        let fused = rnd(n * stride)
        var gate = Tensor(shape: [n, D, d])
        for e in 0..<n { for k in 0..<(D * d) { gate.storage[e * D * d + k] = fused[e * stride + k] } }
        let delta = Tensor(shape: [n, d], storage: (0..<(n * d)).map { _ in Float(0.7 + 0.6 * g.nextUnitDouble()) })
        let reference = try ERCGradient(router: r, gate: gate, delta: delta, alpha: 0.5)
        var dR = [Float](repeating: 1, count: n * d), dW = [Float](repeating: 1, count: n * stride)
        let loss = try fused.withUnsafeBufferPointer { f in
            try dR.withUnsafeMutableBufferPointer { rb in
                try dW.withUnsafeMutableBufferPointer { wb in
                    try ERCGradient.accumulate(
                        router: r, gate: f.baseAddress!, expertStride: stride, intermediate: D, delta: delta,
                        alpha: 0.5, weight: 2, routerGradient: rb.baseAddress, gateGradient: wb.baseAddress)
                }
            }
        }
        #expect(abs(loss.total - reference.loss.total) <= 1e-6 * reference.loss.total)
        // Buffers started at 1: they now hold 1 + 2 * gradient; the up rows are untouched.
        for k in 0..<(n * d) { #expect(abs(dR[k] - (1 + 2 * reference.router.storage[k])) < 1e-5) }
        for e in 0..<n {
            for k in 0..<(D * d) { #expect(abs(dW[e * stride + k] - (1 + 2 * reference.gate.storage[e * D * d + k])) < 1e-5) }
            for k in (D * d)..<stride { #expect(dW[e * stride + k] == 1) }
        }
    }
}
