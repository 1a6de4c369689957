import Checkpoints
import Foundation
import MoELayout
import Tensors
import TestSupport
import Testing

@testable import Analysis

/// Finite weights of any magnitude give the right numbers (or a status), never |cos| = 1, a NaN
/// loss or "all zeros" with status ok (issue 10, item 10). The reference is the same layer at
/// its own scale, whose values ERCTests checks against PyTorch.
@Suite struct ExtremeWeightsTests {
    func layer() throws -> (Tensor, ExpertStack) {
        let model = try MoECheckpoint(try Checkpoint.open(fixtures + "/olmoe-tiny"))
        let l = model.moeLayers[0]
        let router = try model.routerWeight(l)
        var gate = Tensor(shape: [l.expertCount] + model.projectionShape(l, .gate))
        try gate.storage.withUnsafeMutableBufferPointer { b in try model.readExpertWeights(l, .gate, into: b) }
        return (router, ExpertStack(gate: gate, experts: l.expertCount, intermediate: l.intermediateSize, hidden: l.hiddenSize))
    }

    func close(_ a: Double, _ b: Double, _ tol: Double) -> Bool { abs(a - b) <= tol * max(abs(b), 1e-300) }

    @Test(arguments: [1e21, 1e25, 1e-20, 1e-30, 1e-40])
    func routerScaledByAnyFiniteFactor(_ factor: Double) throws {
        let (router, stack) = try layer()
        let options = CouplingOptions(alphas: [1, 0.5], noise: false)
        let base = CouplingAnalysis.analyze(layer: 0, router: router, stack: stack, options: options)
        let scaled = Tensor(shape: router.shape, storage: router.storage.map { Float(Double($0) * factor) })
        #expect(!scaled.hasNonFinite && scaled.storage.contains { $0 != 0 })
        let r = CouplingAnalysis.analyze(layer: 0, router: scaled, stack: stack, options: options)
        #expect(r.status == .ok, "\(r.status)")
        // Below 1e-38 the router itself is stored in Float32 subnormals (about 11 bits at 1e-40).
        let tol = factor < 1e-38 ? 2e-3 : 1e-4
        #expect(close(r.couplingAlpha, base.couplingAlpha, tol), "alpha* \(r.couplingAlpha) vs \(base.couplingAlpha)")
        #expect(close(r.geometry?.meanAbsCosine ?? .nan, base.geometry?.meanAbsCosine ?? 0, tol))
        #expect((r.geometry?.meanAbsCosine ?? 1) < 0.9)
        for (a, b) in zip(r.eps, base.eps) { #expect(close(a, b, tol)) }
        for (a, b) in zip(r.ercLosses, base.ercLosses) {
            #expect(close(a.loss.mean, b.loss.mean * factor, tol), "loss \(a.loss.mean) vs \(b.loss.mean * factor)")
        }
        #expect(close(r.mDiagonalMean.mean, base.mDiagonalMean.mean * factor, tol))
        for (a, b) in zip(r.geometry?.routerNorms ?? [], base.geometry?.routerNorms ?? []) { #expect(close(a, b * factor, tol)) }
    }

    @Test(arguments: [1e21, 1e-25])
    func gateScaledByAnyFiniteFactor(_ factor: Double) throws {
        let (router, stack) = try layer()
        let options = CouplingOptions(alphas: [1], noise: false)
        let base = CouplingAnalysis.analyze(layer: 0, router: router, stack: stack, options: options)
        let g = try #require(stack.gate)
        let big = ExpertStack(
            gate: Tensor(shape: g.shape, storage: g.storage.map { Float(Double($0) * factor) }),
            experts: stack.experts, intermediate: stack.intermediate, hidden: stack.hidden)
        let r = CouplingAnalysis.analyze(layer: 0, router: router, stack: big, options: options)
        #expect(r.status == .ok, "\(r.status)")
        #expect(close(r.couplingAlpha, base.couplingAlpha, 1e-4))
        for (a, b) in zip(r.geometry?.gateNorms ?? [], base.geometry?.gateNorms ?? []) { #expect(close(a, b * factor, 1e-4)) }
        #expect(close(r.ercLosses[0].loss.mean, base.ercLosses[0].loss.mean * factor, 1e-4))
    }
}
