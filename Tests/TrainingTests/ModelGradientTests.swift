import Foundation
import Testing

@testable import Training

/// The model against transformers: logits, router logits, losses and the gradient of
/// lm + 0.01 lb + 0.001 z for every parameter (fixtures from make_training_fixtures.py).
@Suite struct ModelGradientTests {
    static let folders = ["olmoe-grad", "olmoe-grad-clip"]

    @Test(arguments: folders) func forwardMatchesTransformers(folder: String) throws {
        let run = try FixtureRun(folder)
        let expected = try Fixtures.tensors(folder + "/expected_outputs.safetensors")
        let logits = try #require(expected["logits"])
        let err = Fixtures.maxAbsDifference(run.logits, logits.storage)
        #expect(err < 1e-4, "max |logit difference| \(err)")
        print("\(folder): max |logit - transformers| \(err)")
        for l in 0..<run.model.config.layerCount {
            let r = try #require(expected["router_logits.\(l)"])
            // the second forward of FixtureRun left router logits in the workspace
            let ours = Array(UnsafeBufferPointer(start: run.workspace.layers[l].routerLogits.pointer, count: r.count))
            #expect(Fixtures.maxAbsDifference(ours, r.storage) < 1e-4, "layer \(l) router logits")
        }
        let lm = Double(try #require(expected["lm_loss"]).storage[0])
        let lb = Double(try #require(expected["lb_loss"]).storage[0])
        let z = Double(try #require(expected["z_loss"]).storage[0])
        #expect(abs(run.losses.languageModel - lm) < 1e-5, "lm \(run.losses.languageModel) vs \(lm)")
        #expect(abs(run.losses.loadBalancing - lb) < 1e-5, "lb \(run.losses.loadBalancing) vs \(lb)")
        #expect(abs(run.losses.routerZ - z) < 1e-4, "z \(run.losses.routerZ) vs \(z)")
    }

    @Test(arguments: folders) func gradientsMatchAutograd(folder: String) throws {
        let run = try FixtureRun(folder)
        let expected = try Fixtures.tensors(folder + "/expected_grads.safetensors")
        #expect(expected.count == run.model.layout.tensors.count)
        var worst = (0.0, "")
        for t in run.model.layout.tensors {
            let ref = try #require(expected[t.name], "no expected gradient for \(t.name)")
            let ours = Array(UnsafeBufferPointer(start: run.gradients.pointer + t.offset, count: t.count))
            let norm = ref.frobeniusNorm
            let err = norm > 1e-7 ? Fixtures.relativeError(ours, ref.storage) : Fixtures.maxAbsDifference(ours, ref.storage)
            if err > worst.0 { worst = (err, t.name) }
            #expect(err < 1e-4, "\(t.name): relative error \(err) (|grad| \(norm))")
        }
        print("\(folder): worst gradient relative error \(worst.0) at \(worst.1)")
    }

    /// With the load-balancing and z losses weighted 1, their gradients are not hidden under
    /// the LM loss's: the routers and layer 1 against autograd.
    @Test(arguments: folders) func routerLossGradientsMatchAutograd(folder: String) throws {
        let run = try FixtureRun(folder, lbWeight: 1, zWeight: 1)
        let expected = try Fixtures.tensors(folder + "/expected_grads_router_losses.safetensors")
        #expect(expected.count > 10)
        var worst = 0.0
        for (name, ref) in expected {
            let t = try #require(run.model.layout.tensor(named: name))
            let ours = Array(UnsafeBufferPointer(start: run.gradients.pointer + t.offset, count: t.count))
            let err = ref.frobeniusNorm > 1e-7 ? Fixtures.relativeError(ours, ref.storage) : Fixtures.maxAbsDifference(ours, ref.storage)
            #expect(err < 1e-4, "\(name): relative error \(err)")
            worst = max(worst, err)
        }
        print("\(folder): worst router-loss gradient relative error \(worst)")
    }
}
