import Checkpoints
import Foundation
import Tensors
import Testing

@testable import Training

/// `--precision bf16`: BF16 inputs to the projections' products, everything else Float32.
/// On a machine without oneDNN's BF16 kernels the products are emulated (widened to Float32):
/// every test here holds for both, and the split-product test runs both on every machine.
@Suite struct BF16TrainingTests {
    /// A split product on BF16 shadows is the Float32 product of the BF16-rounded operands
    /// (BF16 x BF16 products are exact in Float32; only the order of the Float32 additions
    /// differs), in the same blocks whatever the cores.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)], [false, true])
    func splitProductsOnShadowsMultiplyTheRoundedOperands(trans: (Bool, Bool), emulate: Bool) throws {
        var g = SeededGenerator(seed: 9)
        let products = BF16Products(emulate: emulate)
        #expect(products.isEmulated == (emulate || !OneDNN.hasBF16Products))
        for (m, n, k, beta) in [(600, 70, 129, Float(1)), (40, 513, 256, 0), (257, 257, 33, 1)] {
            let a = FloatBuffer(count: m * k), b = FloatBuffer(count: k * n), c0 = FloatBuffer(count: m * n)
            g.fillNormal(a.buffer, std: 1); g.fillNormal(b.buffer, std: 1); g.fillNormal(c0.buffer, std: 1)
            let c1 = FloatBuffer(c0.array), c2 = FloatBuffer(c0.array)
            let lda = trans.0 ? m : k, ldb = trans.1 ? k : n
            var ra = a.array, rb = b.array
            Conversion.roundTrip(&ra, through: .bf16)
            Conversion.roundTrip(&rb, through: .bf16)
            BLAS.gemm(transA: trans.0, transB: trans.1, m: m, n: n, k: k, a: ra, lda: lda, b: rb, ldb: ldb, beta: beta, c: c0.pointer, ldc: n)
            let shadows = BF16Shadows(products: products)
            shadows.add(a)
            shadows.add(b)
            shadows.round(a)
            shadows.round(b)
            let call = ParallelGEMM.Call(
                transA: trans.0, transB: trans.1, m: m, n: n, k: k, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb,
                beta: beta, c: c1.pointer, ldc: n)
            #expect(call.split.blocks > 1, "\(m)x\(n)x\(k) is split")
            var ordered = call
            ordered.c = c2.pointer
            ParallelGEMM.batch([call], bf16: shadows)
            ParallelGEMM.batch([ordered], concurrent: false, bf16: shadows)
            #expect(c1.array == c2.array, "\(m)x\(n)x\(k) trans \(trans): concurrent and ordered blocks differ")
            #expect(Fixtures.relativeError(c1.array, c0.array) < 1e-6, "\(m)x\(n)x\(k) trans \(trans)")
        }
    }

    /// One forward + backward of a fixture model in `precision`: the loss terms and the gradient.
    static func gradients(_ folder: String, precision: TrainingPrecision) throws -> (OlmoeNetwork, LossBreakdown, [Float]) {
        let (model, _) = try NetworkCheckpoint.load(Fixtures.path(folder))
        let tokens = try Fixtures.tensor(folder + "/expected_outputs.safetensors", "tokens")
        let B = tokens.shape[0], L = tokens.shape[1]
        let ws = ModelWorkspace(
            model.config, batch: B, length: L,
            bf16: precision == .bf16 ? (model.parameters, BF16Products()) : nil)
        var targets = [Int32](repeating: -1, count: B * L)
        for i in 0..<(B * L) {
            ws.tokens.pointer[i] = Int32(tokens.storage[i])
            if (i + 1) % L != 0 { targets[i] = Int32(tokens.storage[i + 1]) }
        }
        let grads = FloatBuffer(count: model.parameters.count)
        let losses = targets.withUnsafeBufferPointer { tp in
            model.forwardBackward(
                ws, targets: tp.baseAddress!, lbWeight: 0.01, zWeight: 0.001, scale: 1,
                gradients: grads, trainable: Set(ParameterGroup.allCases), precision: precision)
        }
        return (model, losses, grads.array)
    }

    /// Tolerance, 3% of each tensor's gradient norm: BF16 keeps 8 significant bits, so each
    /// rounded operand is off by up to 2^-9 (0.2%) of itself, and a gradient is the end of a
    /// chain of such products (about ten in this two-layer model, forward and backward) through
    /// softmaxes and norms whose backward passes subtract nearly equal terms. How far this model
    /// moves under such rounding was measured without any BF16 product: Float32 passes on its
    /// weights rounded to BF16 change its gradients by up to 2.5% of their norms; the BF16
    /// products move them by up to 1.7%. (The clip_qkv fixture is left out: its clamp makes the
    /// gradient jump where rounding moves a q or k element across the bound.)
    /// The error must not be zero either: that would mean the products ran in Float32.
    @Test func gradientsAgreeWithFP32ToBF16Tolerance() throws {
        let (model, fp32Loss, fp32) = try Self.gradients("olmoe-grad", precision: .fp32)
        let (_, bf16Loss, bf16) = try Self.gradients("olmoe-grad", precision: .bf16)
        // the loss is a forward pass only, a few products deep
        let lossError = abs(bf16Loss.languageModel - fp32Loss.languageModel) / fp32Loss.languageModel
        #expect(lossError < 5e-3, "LM loss \(bf16Loss.languageModel) in bf16 against \(fp32Loss.languageModel)")
        var worst = (0.0, ""), largestOfProjections = 0.0
        for t in model.layout.tensors {
            let err = Fixtures.relativeError(
                Array(bf16[t.offset..<(t.offset + t.count)]), Array(fp32[t.offset..<(t.offset + t.count)]),
                floor: 1e-9)
            if err > worst.0 { worst = (err, t.name) }
            if [.attention, .gateProjection, .upProjection, .downProjection, .lmHead].contains(t.group) {
                largestOfProjections = max(largestOfProjections, err)
            }
            #expect(err < 3e-2, "\(t.name): gradient relative error \(err) in bf16")
        }
        #expect(largestOfProjections > 1e-4, "the projections' gradients are those of Float32 products: bf16 did not run")
        print("olmoe-grad: bf16 LM loss relative error \(lossError), worst gradient relative error \(worst.0) at \(worst.1)")
    }

    /// Trains the olmoe-grad model on the trainer tests' corpus in `precision`; returns the trainer.
    static func train(_ precision: TrainingPrecision, folder: String, steps: Int = 12) throws -> Trainer {
        let data = try TrainerTests.corpus(folder)
        var o = TrainerTests.options()
        o.steps = steps
        o.saveEvery = 0
        o.precision = precision
        let (model, format) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let trainer = try Trainer(model: model, format: format, data: data, options: o, outputFolder: folder + "/run-\(precision)")
        try trainer.run()
        return trainer
    }

    /// The LM losses of a run's log.
    static func lmLosses(_ trainer: Trainer) throws -> [Double] {
        try String(contentsOfFile: trainer.outputFolder + "/log.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { Double($0.split(separator: ",", omittingEmptySubsequences: false)[4]) ?? .nan }
    }

    /// Twelve steps (lr 1e-2, ERC on): the bf16 run's LM loss falls, and at every step it stays
    /// within 2% of the fp32 run's. The two runs see the same batches; they part only by the
    /// rounding of the products, which the updates carry forward step after step (measured:
    /// at most about 0.3%).
    @Test func stepsLowerTheLossAndStayNearFP32() throws {
        let dir = temporaryFolder("bf16-steps")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fp32 = try Self.lmLosses(try Self.train(.fp32, folder: dir))
        let bf16 = try Self.lmLosses(try Self.train(.bf16, folder: dir))
        #expect(fp32.count == 12 && bf16.count == 12)
        let first = try #require(bf16.first), last = try #require(bf16.last)
        #expect(last < first - 0.1, "bf16 LM loss \(first) -> \(last)")
        let gaps = zip(bf16, fp32).map { abs($0 - $1) / $1 }
        #expect(gaps.allSatisfy { $0 < 2e-2 }, "bf16 against fp32 LM loss, relative: \(gaps)")
        #expect(gaps.contains { $0 > 0 }, "bf16 gave fp32's losses: the products ran in Float32")
        print("bf16 LM loss \(first) -> \(last); largest relative gap to fp32 \(gaps.max() ?? .nan)")
    }

    /// The precision is saved with the run: resuming keeps it and continues exactly (BF16
    /// products are computed in blocks fixed by the shape, as the Float32 ones); a state saved
    /// before the option existed reads as fp32; `precision:` changes it on resume.
    @Test func precisionSurvivesResume() throws {
        let dir = temporaryFolder("bf16-resume")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try TrainerTests.corpus(dir)
        var o = TrainerTests.options()
        o.precision = .bf16
        let (m1, f1) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let straight = try Trainer(model: m1, format: f1, data: data, options: o, outputFolder: dir + "/a")
        try straight.run()
        let (m2, f2) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let first = try Trainer(model: m2, format: f2, data: data, options: o, outputFolder: dir + "/b")
        try FileManager.default.createDirectoryOrThrow(dir + "/b")
        for _ in 0..<3 { try first.appendLog(try first.trainStep()) }
        try first.save()
        let state = try String(contentsOfFile: dir + "/b/step3/trainer_state.json", encoding: .utf8)
        #expect(state.contains("\"precision\" : \"bf16\""))
        let resumed = try Trainer.resume(from: dir + "/b", data: data, outputFolder: dir + "/b")
        #expect(resumed.options.precision == .bf16)
        try resumed.run()
        #expect(resumed.model.parameters.array == straight.model.parameters.array, "parameters differ after a bf16 resume")
        // an older state: no precision key
        let old = state.replacingOccurrences(of: "\"precision\" : \"bf16\",", with: "")
        #expect(!old.contains("precision"))
        let parsed = try TrainerState.parse(Data(old.utf8), folder: dir + "/b/step3")
        #expect(parsed.options.precision == .fp32)
        // switched on resume
        let switched = try Trainer.resume(from: dir + "/b/step3", data: data, outputFolder: dir + "/c", precision: .fp32)
        #expect(switched.options.precision == .fp32)
    }
}

/// Where `--precision bf16` has no BF16 kernel (oneDNN missing, asked for OpenBLAS, or a CPU
/// without BF16 units) the products are emulated, and the reason names what is missing.
@Suite struct BF16AvailabilityTests {
    @Test func withoutBF16KernelsTheProductsAreEmulatedAndSaySo() {
        let missing = BF16Products(kernel: .openBLAS, unavailableReason: "libdnnl.so.2 not loadable (apt-get install libdnnl2): no such file")
        #expect(missing.emulationReason == "oneDNN is unavailable: libdnnl.so.2 not loadable (apt-get install libdnnl2): no such file")
        let refused = BF16Products(kernel: .openBLAS, unavailableReason: nil)
        #expect(refused.emulationReason == "MOE_INSPECT_GEMM=openblas asks for OpenBLAS, which has no BF16 products")
        #expect(refused.description.hasPrefix("BF16 products emulated in Float32 (MOE_INSPECT_GEMM=openblas"))
        let preferred = BF16Products()
        #expect(preferred.isEmulated == !(OneDNN.hasBF16Products && GEMMKernel.preferred == .oneDNN))
    }

    /// The emulated product is the Float32 product of the BF16 values, with leading dimensions
    /// wider than the operands and beta 1: 1.5 * 3 + 0.25 * (-2) + 1024 * 0.0078125 = 12, plus C.
    @Test func emulatedProductsHonourLeadingDimensionsAndBeta() {
        let p = BF16Products(emulate: true)
        // A [1 x 3] in a row of 4 (last is padding), B [3 x 1] in rows of 2 (second column padding)
        let a: [UInt16] = [1.5, 0.25, 1024, 77].map { Conversion.bf16Bits($0) }
        let b: [UInt16] = [3, 55, -2, 55, 0.0078125, 55].map { Conversion.bf16Bits($0) }
        var c: [Float] = [0.5, -9]
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    p.multiply(m: 1, n: 1, k: 3, a: ap.baseAddress!, lda: 4, b: bp.baseAddress!, ldb: 2, beta: 1, c: cp.baseAddress!, ldc: 2)
                }
            }
        }
        #expect(c == [12.5, -9])
        // transposed: op(A) = A^T with A stored [3 x 1] at stride 2, op(B) = B^T with B stored [1 x 3]
        var d: [Float] = [100]
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                d.withUnsafeMutableBufferPointer { dp in
                    let at: [UInt16] = [1.5, 0, 0.25, 0, 1024, 0].map { Conversion.bf16Bits($0) }
                    let bt: [UInt16] = [3, -2, 0.0078125].map { Conversion.bf16Bits($0) }
                    at.withUnsafeBufferPointer { atp in
                        bt.withUnsafeBufferPointer { btp in
                            p.multiply(
                                transA: true, transB: true, m: 1, n: 1, k: 3, a: atp.baseAddress!, lda: 2, b: btp.baseAddress!, ldb: 3, c: dp.baseAddress!,
                                ldc: 1)
                        }
                    }
                    _ = (ap, bp)
                }
            }
        }
        #expect(d == [12])
    }
}
