import Checkpoints
import Foundation
import Tensors
import Testing

@testable import Training

/// Writes a 1-D uint16 `.npy` file (NumPy format version 1).
func writeNpy(_ tokens: [UInt16], to path: String) throws {
    var header = "{'descr': '<u2', 'fortran_order': False, 'shape': (\(tokens.count),), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
    let n = UInt16(header.utf8.count)
    d.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
    d.append(contentsOf: Array(header.utf8))
    for t in tokens { d.append(contentsOf: [UInt8(t & 0xFF), UInt8(t >> 8)]) }
    try d.write(to: URL(fileURLWithPath: path))
}

func temporaryFolder(_ name: String) -> String {
    let p = NSTemporaryDirectory() + "moe-train-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

@Suite struct TrainerTests {
    static func corpus(_ folder: String, count: Int = 4000, vocabulary: Int = 64) throws -> TokenData {
        var g = SeededGenerator(seed: 11)
        let tokens = (0..<count).map { i in UInt16((i * 7 + Int(g.next() % 5)) % vocabulary) }
        let path = folder + "/train.npy"
        try writeNpy(tokens, to: path)
        return try TokenData(path: path, vocabularySize: vocabulary)
    }

    static func options() -> TrainingOptions {
        var o = TrainingOptions()
        o.steps = 6
        o.batchSize = 2
        o.sequenceLength = 8
        o.accumulation = 2
        o.learningRate = 1e-2
        o.schedule = .cosine
        o.warmupSteps = 2
        o.weightDecay = 0.1
        o.clipGradNorm = 0.5
        o.zWeight = 0.001
        o.ercWeight = 0.1
        o.saveEvery = 3
        o.seed = 5
        return o
    }

    @Test func killAndResumeContinuesExactly() throws {
        let dir = temporaryFolder("resume")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.corpus(dir)
        // straight through
        let (m1, f1) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let straight = try Trainer(model: m1, format: f1, data: data, options: Self.options(), outputFolder: dir + "/a")
        try straight.run()
        // to step 3 (saved), one more step that is never saved, then a "kill"
        let (m2, f2) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let first = try Trainer(model: m2, format: f2, data: data, options: Self.options(), outputFolder: dir + "/b")
        try FileManager.default.createDirectoryOrThrow(dir + "/b")
        for _ in 0..<3 { try first.appendLog(try first.trainStep()) }
        try first.save()
        try first.appendLog(try first.trainStep())
        // a fresh process: resume from the run folder (latest step folder is step3)
        let resumed = try Trainer.resume(from: dir + "/b", data: data, outputFolder: dir + "/b")
        #expect(resumed.step == 3)
        try resumed.run()
        #expect(resumed.step == 6)
        #expect(resumed.model.parameters.array == straight.model.parameters.array, "parameters differ after resume")
        #expect(resumed.optimizer.secondMoment.array == straight.optimizer.secondMoment.array)
        // the logs agree except for the speed column, and the killed step's row was replaced
        func rows(_ p: String) throws -> [String] {
            try String(contentsOfFile: p, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",").dropLast().joined(separator: ",") }
        }
        #expect(try rows(dir + "/a/log.csv") == rows(dir + "/b/log.csv"))
        let saved = try NetworkCheckpoint.load(dir + "/b/step6").0
        #expect(saved.parameters.array == straight.model.parameters.array)
    }

    @Test func saveReloadKeepsNamesDtypesAndValues() throws {
        let dir = temporaryFolder("save")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (model, format) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad-clip"))
        try NetworkCheckpoint.save(model, format: format, dtype: nil, to: dir)
        let original = try Checkpoint.open(Fixtures.path("olmoe-grad-clip"))
        let written = try Checkpoint.open(dir)
        #expect(Set(original.tensors.map(\.name)) == Set(written.tensors.map(\.name)))
        for t in original.tensors {
            #expect(written.info(t.name)?.dtype == t.dtype)
            #expect(try written.rawBytes(t.name) == original.rawBytes(t.name), "\(t.name) bytes differ")
        }
        #expect(written.config?.json["tie_word_embeddings"]?.boolValue == true)
        // BF16 on request: values rounded, names kept
        let bdir = dir + "/bf16"
        try FileManager.default.createDirectoryOrThrow(bdir)
        try NetworkCheckpoint.save(model, format: format, dtype: .bf16, to: bdir)
        let (back, bformat) = try NetworkCheckpoint.load(bdir)
        #expect(bformat.dtypes.values.allSatisfy { $0 == .bf16 })
        var rounded = model.parameters.array
        Conversion.roundTrip(&rounded, through: .bf16)
        #expect(back.parameters.array == rounded)
        #expect(try Checkpoint.open(bdir).config?.json["dtype"]?.stringValue == "bfloat16")
    }

    @Test func bf16SavesResumeFromMasterWeights() throws {
        let dir = temporaryFolder("bf16")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.corpus(dir)
        var o = Self.options()
        o.saveDType = .bf16
        o.schedule = .constant
        o.steps = 4
        o.saveEvery = 2
        let (m1, f1) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let straight = try Trainer(model: m1, format: f1, data: data, options: o, outputFolder: dir + "/a")
        try straight.run()
        let (m2, f2) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        var o2 = o
        o2.steps = 2
        let part = try Trainer(model: m2, format: f2, data: data, options: o2, outputFolder: dir + "/b")
        try part.run()
        let resumed = try Trainer.resume(from: dir + "/b/step2", data: data, outputFolder: dir + "/b", steps: 4)
        try resumed.run()
        // constant schedule: the horizon does not matter, and Float32 master weights make the
        // resumed run identical although the model files are BF16
        #expect(resumed.step == 4)
        #expect(resumed.model.parameters.array == straight.model.parameters.array)
        #expect(FileManager.default.fileExists(atPath: dir + "/b/step4/model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: dir + "/b/step2/trainer_state.safetensors"))
        let state = try TrainerState.read(folder: dir + "/b/step2")
        #expect(state.hasMasterWeights)
    }

    @Test func frozenGroupsDoNotMove() throws {
        let dir = temporaryFolder("frozen")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.corpus(dir)
        var o = Self.options()
        o.steps = 2
        o.schedule = .constant
        o.trainGroups = [.router, .gateProjection]
        o.weightDecay = 0.1
        let (m, f) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let before = m.parameters.array
        let t = try Trainer(model: m, format: f, data: data, options: o, outputFolder: dir + "/run")
        try t.run()
        let after = m.parameters.array
        for tensor in m.layout.tensors {
            let moved = (tensor.offset..<(tensor.offset + tensor.count)).contains { before[$0] != after[$0] }
            let trained = tensor.group == .router || tensor.group == .gateProjection
            #expect(moved == trained, "\(tensor.name) moved: \(moved)")
        }
    }

    @Test func sgdIsPlain() {
        let p = FloatBuffer([1, 2, 3]), g = FloatBuffer([0.5, -1, 2])
        let opt = Optimizer(kind: .sgd, count: 3, ranges: [0..<3], weightDecay: 0.3)
        opt.step(parameters: p, gradients: g, learningRate: 0.1)
        let expected: [Float] = [1 - 0.1 * 0.5, 2 + 0.1 * 1, 3 - 0.1 * 2]
        #expect(p.array == expected)
    }

    @Test func adamwMatchesTorch() throws {
        let t = try Fixtures.tensors("adamw.safetensors")
        let hyper = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("adamw.json")))) as? [String: Double] ?? [:]
        let names = ["a", "b", "c"]
        func flat(_ prefix: String) throws -> [Float] { try names.flatMap { try #require(t["\(prefix).\($0)"]).storage } }
        let p = FloatBuffer(try flat("params0"))
        let opt = Optimizer(
            kind: .adamw, count: p.count, ranges: [0..<p.count], beta1: hyper["beta1"] ?? 0, beta2: hyper["beta2"] ?? 0,
            epsilon: hyper["eps"] ?? 0, weightDecay: hyper["weight_decay"] ?? 0)
        let lr = hyper["lr"] ?? 0
        opt.step(parameters: p, gradients: FloatBuffer(try flat("grads1")), learningRate: lr)
        #expect(Fixtures.relativeError(p.array, try flat("params1")) < 1e-6)
        opt.step(parameters: p, gradients: FloatBuffer(try flat("grads2")), learningRate: lr)
        #expect(Fixtures.relativeError(p.array, try flat("params2")) < 1e-6)
        #expect(Fixtures.relativeError(opt.firstMoment.array, try flat("exp_avg2")) < 1e-6)
        #expect(Fixtures.relativeError(opt.secondMoment.array, try flat("exp_avg_sq2")) < 1e-6)
    }

    @Test func schedules() {
        let c = LearningRateSchedule.cosine(peak: 1, warmup: 2, total: 12, minimum: 0.1)
        #expect(c.rate(at: 0) == 0.5)
        #expect(c.rate(at: 1) == 1)
        #expect(abs(c.rate(at: 2) - 1) < 1e-12)
        #expect(abs(c.rate(at: 7) - 0.55) < 1e-12)
        #expect(abs(c.rate(at: 12) - 0.1) < 1e-12)
        #expect(LearningRateSchedule.constant(peak: 3, warmup: 0).rate(at: 5) == 3)
    }
}

@Suite struct TokenDataTests {
    @Test func sequentialWindowsFollowTheFormula() throws {
        let dir = temporaryFolder("data")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tokens = (0..<200).map { UInt16($0 % 50) }
        try writeNpy(tokens, to: dir + "/t.npy")
        let data = try TokenData(path: dir + "/t.npy", vocabularySize: 50)
        #expect(data.count == 200 && data.dtype == .uint16)
        let L = 9, B = 3
        #expect(data.windowCount(length: L) == 20)
        var s = WindowSampler(order: .sequential, windows: data.windowCount(length: L), seed: 0)
        var w = [Int32](repeating: 0, count: L + 1)
        for step in 0..<3 {
            for b in 0..<B {
                let win = s.window(forRow: step * B + b)
                w.withUnsafeMutableBufferPointer { data.copyWindow(win, length: L, into: $0.baseAddress!) }
                let start = (step * B + b) * (L + 1)
                #expect(w == (start...(start + L)).map { Int32($0 % 50) })
            }
        }
        // random order: a permutation per pass, fixed by the seed
        var r1 = WindowSampler(order: .random, windows: 20, seed: 3), r2 = WindowSampler(order: .random, windows: 20, seed: 3)
        let pass = (0..<20).map { r1.window(forRow: $0) }
        #expect(Set(pass).count == 20)
        #expect(pass == (0..<20).map { r2.window(forRow: $0) })
        #expect(pass != Array(0..<20))
    }

    @Test func trainerBatchesAreWindowsAndShiftedTargets() throws {
        let dir = temporaryFolder("batch")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeNpy((0..<400).map { UInt16($0 % 64) }, to: dir + "/t.npy")
        let data = try TokenData(path: dir + "/t.npy", vocabularySize: 64)
        var o = TrainingOptions()
        o.batchSize = 2; o.sequenceLength = 5; o.dataOrder = .sequential; o.steps = 3
        let (m, f) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let t = try Trainer(model: m, format: f, data: data, options: o, outputFolder: dir + "/out")
        _ = try t.trainStep()
        t.loadBatch(micro: 0)  // step 1
        for b in 0..<2 {
            let start = (1 * 2 + b) * 6
            let row = (0..<5).map { t.workspace.tokens.pointer[b * 5 + $0] }
            #expect(row == (start..<(start + 5)).map { Int32($0 % 64) })
            #expect(Array(t.targets[(b * 5)..<(b * 5 + 5)]) == ((start + 1)...(start + 5)).map { Int32($0 % 64) })
        }
    }

    @Test func tokenOutsideVocabularyNamesFirstPosition() throws {
        let dir = temporaryFolder("vocab")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var tokens = [UInt16](repeating: 3, count: 100)
        tokens[17] = 64
        tokens[40] = 99
        try writeNpy(tokens, to: dir + "/t.npy")
        #expect {
            _ = try TokenData(path: dir + "/t.npy", vocabularySize: 64)
        } throws: { e in
            guard case let .tokenOutOfVocabulary(_, position, token, _) = e as? TrainingError else { return false }
            return position == 17 && token == 64
        }
        // raw .bin with a dtype, and .txt as bytes
        var raw = Data()
        for v: UInt32 in [1, 2, 3, 70000] { withUnsafeBytes(of: v.littleEndian) { raw.append(contentsOf: $0) } }
        try raw.write(to: URL(fileURLWithPath: dir + "/t.bin"))
        #expect(throws: TrainingError.self) { _ = try TokenData(path: dir + "/t.bin", vocabularySize: 1000, binaryDType: .uint32) }
        let ok = try TokenData(path: dir + "/t.bin", vocabularySize: 70001, binaryDType: .uint32)
        #expect(ok.count == 4)
        try Data("héllo".utf8).write(to: URL(fileURLWithPath: dir + "/t.txt"))
        let text = try TokenData(path: dir + "/t.txt", vocabularySize: 256)
        #expect(text.count == 6)
        #expect(throws: TrainingError.self) { _ = try TokenData(path: dir + "/t.txt", vocabularySize: 128) }
    }
}
