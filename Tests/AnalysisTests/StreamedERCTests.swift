import Checkpoints
import Foundation
import MoELayout
import Tensors
import TestSupport
import Testing

@testable import Analysis

/// The streamed activation matrix (`ProductNorms`: one expert per core, oneDNN or OpenBLAS,
/// Float32 or split-BF16 products) against PyTorch (fixtures/erc-kernels/make_kernel_fixtures.py).
@Suite struct StreamedERCTests {
    static let kernels: [GEMMKernel] = OneDNN.isAvailable ? [.openBLAS, .oneDNN] : [.openBLAS]
    static let cases: [(String, GEMMKernel, ProductNorms.Precision)] = ["bf16", "fp8"].flatMap { name in
        kernels.flatMap { k in [(name, k, ProductNorms.Precision.f32), (name, k, .splitBF16)] }
    }

    func relativeError(_ a: [Float], _ b: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += (Double(x) - y) * (Double(x) - y); den += y * y }
        return (num / max(den, 1e-30)).squareRoot()
    }

    func expected(_ name: String) throws -> (model: MoECheckpoint, layer: MoELayer, reference: [String: Any]) {
        let models = try #require(try loadJSON("erc-kernels/expected.json")["models"] as? [String: [String: Any]])
        let layers = try #require(models[name]?["layers"] as? [String: [String: Any]])
        let model = try MoECheckpoint(try Checkpoint.open(fixtures + "/erc-kernels/" + name))
        let layer = try #require(model.moeLayers.first)
        return (model, layer, try #require(layers[String(layer.index)]))
    }

    @Test(arguments: cases)
    func productNormsMatchPyTorchOnEveryKernelAndWorkerCount(_ c: (String, GEMMKernel, ProductNorms.Precision)) throws {
        let (name, kernel, precision) = c
        let (model, layer, ref) = try expected(name)
        let source = try #require(model.expertSource(layer, .gate))
        // BF16 bits are offered exactly for plain BF16 tensors (not for FP8 with block scales).
        #expect((source.readBF16 != nil) == (name == "bf16"))
        let router = try model.routerWeight(layer)
        let m = try #require(ref["M"] as? [Double]), norms = try #require(ref["gate_norms"] as? [Double])
        let one = try ProductNorms.compute(x: router, source: source, precision: precision, kernel: kernel, workers: 1)
        let err = relativeError(one.norms.storage, m)
        #expect(err < 1e-6, "\(name) \(kernel) \(precision): M relative error \(err) (\(one.kernel))")
        #expect(relativeError(one.frobenius.map(Float.init), norms) < 1e-6)
        for workers in [2, 3] {
            let other = try ProductNorms.compute(x: router, source: source, precision: precision, kernel: kernel, workers: workers)
            #expect(other.norms.storage == one.norms.storage, "bits depend on the worker count")
            #expect(other.frobenius == one.frobenius)
        }
    }

    @Test(arguments: ["bf16", "fp8"])
    func couplingAnalysisStreamsAndMatchesPyTorch(_ name: String) throws {
        let (model, layer, ref) = try expected(name)
        let r = try #require(CouplingAnalysis.analyze(model, options: CouplingOptions(alphas: [1], noise: false)).first)
        #expect(r.isOK)
        #expect(r.layer == layer.index)
        let eps = try #require(ref["eps"] as? [Double])
        for (g, w) in zip(r.eps, eps) { #expect(abs(g - w) <= 1e-5 * w) }
        let loss = try #require(ref["erc_loss_alpha1"] as? Double)
        #expect(abs(r.ercLosses[0].loss.mean - loss) <= 1e-4 * loss)
        let norms = try #require(ref["gate_norms"] as? [Double])
        #expect(relativeError(try #require(r.geometry).gateNorms.map(Float.init), norms) < 1e-6)
        #expect(relativeError(try #require(r.activation).storage, try #require(ref["M"] as? [Double])) < 1e-6)
    }

    @Test func streamedAndInMemoryAnalysesAgree() throws {
        let model = try MoECheckpoint(try Checkpoint.open(fixtures + "/olmoe-tiny"))
        let options = CouplingOptions(alphas: [1, 0.5], noise: true, samples: 3, seed: 4)
        let streamed = CouplingAnalysis.analyze(model, options: options)
        for (s, layer) in zip(streamed, model.moeLayers) {
            let stack = ExpertStack(
                gate: try model.expertWeights(layer, .gate), experts: layer.expertCount,
                intermediate: layer.intermediateSize, hidden: layer.hiddenSize)
            let whole = CouplingAnalysis.analyze(layer: layer.index, router: try model.routerWeight(layer), stack: stack, options: options)
            #expect(s.isOK && whole.isOK)
            #expect(s.eps == whole.eps)
            #expect(s.geometry?.gateNorms == whole.geometry?.gateNorms)
            for (a, b) in zip(s.ercLosses, whole.ercLosses) {
                #expect(abs(a.loss.mean - b.loss.mean) <= 1e-5 * b.loss.mean)
                #expect(abs(a.loss.std - b.loss.std) <= 1e-4 * b.loss.std)
            }
        }
    }

    /// The in-memory path's extreme-magnitude cases (ExtremeWeightsTests) through the stream.
    @Test(arguments: [(1e21, 1.0), (1e-40, 1.0), (1.0, 1e21), (1.0, 1e-25)])
    func extremeMagnitudesStreamLikeTheyLoad(_ factors: (router: Double, gate: Double)) throws {
        let model = try MoECheckpoint(try Checkpoint.open(fixtures + "/olmoe-tiny"))
        let l = model.moeLayers[0]
        let router0 = try model.routerWeight(l), gate0 = try model.expertWeights(l, .gate)
        let router = Tensor(shape: router0.shape, storage: router0.storage.map { Float(Double($0) * factors.router) })
        let gate = Tensor(shape: gate0.shape, storage: gate0.storage.map { Float(Double($0) * factors.gate) })
        let per = l.intermediateSize * l.hiddenSize
        let source = ProductNorms.Source(
            count: l.expertCount, rows: l.intermediateSize, columns: l.hiddenSize,
            read: { e, buffer in
                gate.storage.withUnsafeBufferPointer { g in _ = buffer.update(fromContentsOf: g[(e * per)..<((e + 1) * per)]) }
            })
        let options = CouplingOptions(alphas: [1, 0.5], noise: false)
        let streamed = CouplingAnalysis.analyzeStreamed(layer: 0, router: router, source: source, options: options)
        let stack = ExpertStack(gate: gate, experts: l.expertCount, intermediate: l.intermediateSize, hidden: l.hiddenSize)
        let whole = CouplingAnalysis.analyze(layer: 0, router: router, stack: stack, options: options)
        #expect(streamed.status == .ok && whole.status == .ok, "\(streamed.status) / \(whole.status)")
        let tol = factors.router < 1e-38 ? 2e-3 : 1e-5
        #expect(abs(streamed.couplingAlpha - whole.couplingAlpha) <= tol * whole.couplingAlpha)
        for (a, b) in zip(streamed.ercLosses, whole.ercLosses) { #expect(abs(a.loss.mean - b.loss.mean) <= tol * b.loss.mean) }
        for (a, b) in zip(streamed.geometry?.gateNorms ?? [], whole.geometry?.gateNorms ?? [.nan]) { #expect(a == b) }
    }

    struct Broken: Error {}

    @Test func aFailingReadStopsTheLayerWithItsReason() throws {
        let x = Tensor(shape: [2, 4], repeating: 1)
        let source = ProductNorms.Source(
            count: 6, rows: 3, columns: 4,
            read: { e, buffer in
                if e == 2 { throw Broken() }
                buffer.update(repeating: 1)
            })
        #expect(throws: Broken.self) { try ProductNorms.compute(x: x, source: source, workers: 2) }
        let r = CouplingAnalysis.analyzeStreamed(
            layer: 3, router: Tensor(shape: [6, 4], storage: (0..<24).map { Float($0 % 5) + 1 }),
            source: source, options: CouplingOptions(noise: false))
        #expect(r.status.description.hasPrefix("layer 3: cannot read"))
    }

    @Test func nonFiniteWeightsGiveAStatus() throws {
        let source = ProductNorms.Source(
            count: 3, rows: 2, columns: 4,
            read: { e, buffer in
                buffer.update(repeating: 0.5)
                if e == 1 { buffer[5] = .infinity }
            })
        let router = Tensor(shape: [3, 4], storage: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
        let r = CouplingAnalysis.analyzeStreamed(layer: 0, router: router, source: source, options: CouplingOptions(noise: false))
        #expect(r.status == .failed(.nonFinite(layer: 0, what: "an expert's gate projection")))
    }
}
