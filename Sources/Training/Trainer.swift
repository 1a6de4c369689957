import Checkpoints
import Foundation
import Tensors

/// One row of `log.csv`.
public struct TrainingLogRow: Sendable {
    public var step: Int, tokens: Int
    public var learningRate: Double
    public var loss: Double, lmLoss: Double, lbLoss: Double, zLoss: Double
    /// Sum over layers of the ERC loss (nil when not computed this step).
    public var ercLoss: Double?, epsMean: Double?
    public var gradNorm: Double
    public var tokensPerSecond: Double

    static let header = "step,tokens,lr,loss,lm_loss,lb_loss,z_loss,erc_loss,eps_mean,grad_norm,tokens_per_s"

    var csv: String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.8g", $0) } ?? "" }
        return "\(step),\(tokens),\(f(learningRate)),\(f(loss)),\(f(lmLoss)),\(f(lbLoss)),\(f(zLoss)),\(f(ercLoss)),\(f(epsMean)),\(f(gradNorm)),\(String(format: "%.1f", tokensPerSecond))"
    }
}

/// Events a trainer reports while it runs (the CLI turns them into a progress bar).
public enum TrainingEvent: Sendable {
    case step(TrainingLogRow, totalSteps: Int, elapsedSeconds: Double)
    case saved(step: Int, folder: String)
    case evaluated(step: Int, loss: Double, tokens: Int)
}

/// Trains an OLMoE model on a token file: micro-batches with gradient accumulation, LM +
/// load-balancing + z + ERC losses, global gradient-norm clipping, AdamW or SGD on the chosen
/// parameter groups, `log.csv`, and checkpoints `DIR/step{N}/` written atomically with the
/// state needed to resume exactly.
public final class Trainer {
    public let model: OlmoeNetwork
    public let options: TrainingOptions
    public let data: TokenData
    public let evalData: TokenData?
    /// The run's folder.
    public let outputFolder: String
    /// Steps completed.
    public private(set) var step: Int
    /// Tokens trained on.
    public private(set) var tokensSeen: Int
    public let optimizer: Optimizer
    let format: StoredFormat
    let gradients: FloatBuffer
    let trainable: Set<ParameterGroup>
    let trainableRanges: [Range<Int>]
    var generator: SeededGenerator
    var sampler: WindowSampler
    let workspace: ModelWorkspace
    var targets: [Int32]
    let schedule: LearningRateSchedule
    let erc: ERCRegularizer
    var lbWeight: Double { options.lbWeight ?? model.config.routerAuxLossCoefficient }

    /// A new run on `model` (from a checkpoint stored as `format`, or initialised).
    public init(model: OlmoeNetwork, format: StoredFormat, data: TokenData, evalData: TokenData? = nil,
                options: TrainingOptions, outputFolder: String) throws(TrainingError) {
        try options.validate()
        ParallelGEMM.takeOverThreads()
        self.model = model
        self.format = format
        self.data = data
        self.evalData = evalData
        self.options = options
        self.outputFolder = outputFolder
        step = 0
        tokensSeen = 0
        let windows = data.windowCount(length: options.sequenceLength)
        guard windows >= 1 else {
            throw .data(file: data.path, reason: "\(data.count) tokens hold no window of --seq-len + 1 = \(options.sequenceLength + 1) tokens")
        }
        if let e = evalData, e.windowCount(length: options.sequenceLength) < 1 {
            throw .data(file: e.path, reason: "\(e.count) tokens hold no window of --seq-len + 1 = \(options.sequenceLength + 1) tokens")
        }
        let groups = Set(options.trainGroups)
        trainable = groups
        let ranges = model.layout.tensors.filter { groups.contains($0.group) }.map { $0.offset..<($0.offset + $0.count) }
        trainableRanges = ranges
        guard !ranges.isEmpty else { throw .invalidOption("--train \(options.trainGroups.map(\.rawValue).joined(separator: ",")) selects no tensor of this model") }
        optimizer = Optimizer(kind: options.optimizer, count: model.parameters.count, ranges: ranges,
                              beta1: options.beta1, beta2: options.beta2, epsilon: options.adamEpsilon, weightDecay: options.weightDecay)
        gradients = FloatBuffer(count: model.parameters.count)
        generator = SeededGenerator(seed: options.seed).split(0x7EA1_7EA1)
        sampler = WindowSampler(order: options.dataOrder, windows: windows, seed: options.seed)
        workspace = ModelWorkspace(model.config, batch: options.batchSize, length: options.sequenceLength)
        targets = [Int32](repeating: -1, count: options.batchSize * options.sequenceLength)
        switch options.schedule {
        case .constant: schedule = .constant(peak: options.learningRate, warmup: options.warmupSteps)
        case .cosine: schedule = .cosine(peak: options.learningRate, warmup: options.warmupSteps, total: options.steps,
                                         minimum: options.minimumLearningRate)
        }
        erc = ERCRegularizer(alpha: options.ercAlpha, noise: options.ercNoise)
    }

    /// Resumes the run saved in `folder` (a `step{N}` folder, or a run folder whose latest
    /// step folder is used). `steps` and `saveEvery`, when given, replace the saved ones;
    /// every other option is the saved run's.
    public static func resume(from folder: String, data: TokenData, evalData: TokenData? = nil, outputFolder: String,
                              steps: Int? = nil, saveEvery: Int? = nil) throws(TrainingError) -> Trainer {
        let stepFolder = try TrainerState.resolve(folder)
        let state = try TrainerState.read(folder: stepFolder)
        guard state.formatVersion == 1 else { throw .state(file: stepFolder, reason: "trainer state version \(state.formatVersion) is not supported") }
        guard data.count == state.dataTokens else {
            throw .state(file: stepFolder, reason: "the run trained on \(state.dataTokens) tokens of \(state.dataPath); --data \(data.path) holds \(data.count)")
        }
        var options = state.options
        if let steps { options.steps = steps }
        if let saveEvery { options.saveEvery = saveEvery }
        guard options.steps >= state.step else { throw .invalidOption("--steps \(options.steps) is below the saved step \(state.step)") }
        let (model, _) = try NetworkCheckpoint.load(stepFolder)
        let trainer = try Trainer(model: model, format: state.format, data: data, evalData: evalData, options: options, outputFolder: outputFolder)
        let tensorsPath = stepFolder + "/" + TrainerState.tensorsName
        let ck: Checkpoint
        do { ck = try Checkpoint.open(tensorsPath) } catch { throw .state(file: tensorsPath, reason: error.description) }
        func read(_ kind: String, into b: FloatBuffer) throws(TrainingError) {
            for t in model.layout.tensors {
                let name = kind + "." + t.name
                guard let info = ck.info(name), info.elementCount == t.count, info.dtype == .f32 else {
                    throw .state(file: tensorsPath, reason: "missing or mis-sized Float32 tensor '\(name)' (\(t.count) elements expected)")
                }
                do { try ck.read(name, into: UnsafeMutableBufferPointer(start: b.pointer + t.offset, count: t.count)) } catch {
                    throw .state(file: tensorsPath, reason: error.description)
                }
            }
        }
        if state.hasMasterWeights { try read("master", into: model.parameters) }
        if trainer.optimizer.kind == .adamw {
            try read("exp_avg", into: trainer.optimizer.firstMoment)
            try read("exp_avg_sq", into: trainer.optimizer.secondMoment)
        }
        trainer.optimizer.stepCount = state.optimizerSteps
        trainer.step = state.step
        trainer.tokensSeen = state.tokens
        trainer.generator = try state.generatorState()
        try trainer.truncateLog(after: state.step)
        trainer.removeStaleTemporaryFolders()
        return trainer
    }

    // MARK: - Running

    /// Trains from the current step to `options.steps`, saving as configured and at the end.
    public func run(report: ((TrainingEvent) -> Void)? = nil) throws(TrainingError) {
        try FileManager.default.createDirectoryOrThrow(outputFolder)
        let start = Date()
        let startStep = step
        while step < options.steps {
            let t0 = Date()
            let row = try trainStep()
            var r = row
            r.tokensPerSecond = Double(options.accumulation * options.batchSize * options.sequenceLength) / max(1e-9, Date().timeIntervalSince(t0))
            try appendLog(r)
            report?(.step(r, totalSteps: options.steps, elapsedSeconds: Date().timeIntervalSince(start)))
            if step == options.steps || (options.saveEvery > 0 && step % options.saveEvery == 0) {
                let folder = try save()
                report?(.saved(step: step, folder: folder))
                if evalData != nil {
                    let (loss, tokens) = try evaluate()
                    try appendEval(loss: loss, tokens: tokens)
                    report?(.evaluated(step: step, loss: loss, tokens: tokens))
                }
            }
        }
        _ = startStep
    }

    /// Loads the micro-batch `micro` of the current step into the workspace and targets.
    func loadBatch(micro: Int) {
        let B = options.batchSize, L = options.sequenceLength
        var window = [Int32](repeating: 0, count: L + 1)
        for b in 0..<B {
            let row = (step * options.accumulation + micro) * B + b
            let w = sampler.window(forRow: row)
            window.withUnsafeMutableBufferPointer { data.copyWindow(w, length: L, into: $0.baseAddress!) }
            for t in 0..<L {
                workspace.tokens.pointer[b * L + t] = window[t]
                targets[b * L + t] = window[t + 1]
            }
        }
    }

    /// One optimizer step; returns its log row (tokens/s filled by the caller).
    public func trainStep() throws(TrainingError) -> TrainingLogRow {
        gradients.zero()
        var losses = LossBreakdown()
        let K = options.accumulation
        for m in 0..<K {
            loadBatch(micro: m)
            let l = targets.withUnsafeBufferPointer { tp in
                model.forwardBackward(workspace, targets: tp.baseAddress!, lbWeight: lbWeight, zWeight: options.zWeight,
                                      scale: 1 / Double(K), gradients: gradients, trainable: trainable)
            }
            losses.languageModel += l.languageModel / Double(K)
            losses.loadBalancing += l.loadBalancing / Double(K)
            losses.routerZ += l.routerZ / Double(K)
        }
        var ercLoss: Double?, epsMean: Double?
        if options.ercWeight > 0 {
            let r = try erc.apply(model: model, generator: generator, weight: options.ercWeight, gradients: gradients, trainable: trainable)
            ercLoss = r.loss
            epsMean = r.epsMean
        }
        _ = generator.next()
        var total = losses.total(lbWeight: lbWeight, zWeight: options.zWeight)
        if let e = ercLoss { total += options.ercWeight * e }
        guard total.isFinite else { throw .nonFinite(step: step + 1, what: "the loss") }
        let norm = GradientClipping.clip(gradients, ranges: trainableRanges, maxNorm: options.clipGradNorm)
        guard norm.isFinite else { throw .nonFinite(step: step + 1, what: "the gradient norm") }
        let lr = schedule.rate(at: step)
        optimizer.step(parameters: model.parameters, gradients: gradients, learningRate: lr)
        step += 1
        tokensSeen += K * options.batchSize * options.sequenceLength
        return TrainingLogRow(step: step, tokens: tokensSeen, learningRate: lr, loss: total, lmLoss: losses.languageModel,
                              lbLoss: losses.loadBalancing, zLoss: losses.routerZ, ercLoss: ercLoss, epsMean: epsMean,
                              gradNorm: norm, tokensPerSecond: 0)
    }

    /// Mean LM loss on the held-out data (up to `evalBatches` batches of consecutive windows)
    /// with the weights as they are saved: rounded through the save dtype when it is narrower
    /// than Float32, so that transformers computes the same number from the checkpoint.
    public func evaluate() throws(TrainingError) -> (loss: Double, tokens: Int) {
        let specs = NetworkCheckpoint.specs(model, format: format, dtype: options.saveDType).filter { $0.0.dtype != .f32 }
        guard !specs.isEmpty else { return try evaluateCurrentWeights() }
        let master = FloatBuffer(count: model.parameters.count)
        master.copy(from: model.parameters)
        defer { model.parameters.copy(from: master) }
        for (spec, offset) in specs {
            let n = spec.shape.reduce(1, *)
            var values = Array(UnsafeBufferPointer(start: model.parameters.pointer + offset, count: n))
            Conversion.roundTrip(&values, through: spec.dtype)
            values.withUnsafeBufferPointer { (model.parameters.pointer + offset).update(from: $0.baseAddress!, count: n) }
        }
        return try evaluateCurrentWeights()
    }

    func evaluateCurrentWeights() throws(TrainingError) -> (loss: Double, tokens: Int) {
        guard let e = evalData else { return (.nan, 0) }
        let B = options.batchSize, L = options.sequenceLength
        let windows = e.windowCount(length: L)
        let batches = min(options.evalBatches, max(1, windows / B))
        var sum = 0.0, count = 0
        var window = [Int32](repeating: 0, count: L + 1)
        for batch in 0..<batches {
            for b in 0..<B {
                let row = batch * B + b
                if row >= windows { for t in 0..<L { workspace.tokens.pointer[b * L + t] = 0; targets[b * L + t] = -1 }; continue }
                window.withUnsafeMutableBufferPointer { e.copyWindow(row, length: L, into: $0.baseAddress!) }
                for t in 0..<L { workspace.tokens.pointer[b * L + t] = window[t]; targets[b * L + t] = window[t + 1] }
            }
            let l = targets.withUnsafeBufferPointer { tp in
                model.forwardBackward(workspace, targets: tp.baseAddress!, lbWeight: 0, zWeight: 0, scale: 1, gradients: nil, trainable: [])
            }
            sum += l.languageModel * Double(l.targetCount)
            count += l.targetCount
        }
        return (count > 0 ? sum / Double(count) : .nan, count)
    }

    // MARK: - Saving

    /// Writes `DIR/step{N}/` atomically: the model as a Hugging Face folder plus the trainer
    /// state; an analysis row per layer goes to `DIR/analysis.csv`. Returns the folder.
    @discardableResult
    public func save() throws(TrainingError) -> String {
        let final = outputFolder + "/step\(step)"
        do {
            try AtomicOutput.buildFolder(at: final, replace: true) { tmp in
                try NetworkCheckpoint.save(model, format: format, dtype: options.saveDType, to: tmp)
                let narrow = NetworkCheckpoint.specs(model, format: format, dtype: options.saveDType).contains { $0.0.dtype != .f32 }
                // one tensor per parameter and kind, so that writing never needs a buffer larger
                // than the largest parameter
                var buffers: [(String, FloatBuffer)] = []
                if narrow { buffers.append(("master", model.parameters)) }
                if optimizer.kind == .adamw {
                    buffers.append(("exp_avg", optimizer.firstMoment))
                    buffers.append(("exp_avg_sq", optimizer.secondMoment))
                }
                var specs: [TensorSpec] = []
                var source: [String: (UnsafeShared<UnsafeMutablePointer<Float>>, Int)] = [:]
                for (kind, buffer) in buffers {
                    for t in model.layout.tensors {
                        let name = kind + "." + t.name
                        specs.append(TensorSpec(name: name, dtype: .f32, shape: t.shape))
                        source[name] = (UnsafeShared(buffer.pointer + t.offset), t.count)
                    }
                }
                if specs.isEmpty { specs.append(TensorSpec(name: "empty", dtype: .f32, shape: [0])) }
                do {
                    try SafetensorsWriter.write(specs, metadata: ["format": "pt"], to: tmp + "/" + TrainerState.tensorsName) { spec, out in
                        guard let (p, n) = source[spec.name], let dst = out.baseAddress else { return }
                        dst.copyMemory(from: p.value, byteCount: n * 4)
                    }
                } catch { throw TrainingError.io(file: tmp, reason: "\(error)") }
                let state = TrainerState(step: step, tokens: tokensSeen, generator: TrainerState.encode(generator), options: options,
                                         dataPath: data.path, dataTokens: data.count, format: format,
                                         optimizerSteps: optimizer.stepCount, hasMasterWeights: narrow)
                try state.write(folder: tmp)
            }
        } catch let e as TrainingError {
            throw e
        } catch {
            throw .io(file: final, reason: "\(error)")
        }
        try appendAnalysis()
        return final
    }

    /// Per-layer analysis row at a save: ERC loss (noise off, so the row is reproducible) and eps.
    func appendAnalysis() throws(TrainingError) {
        let plain = ERCRegularizer(alpha: options.ercAlpha, noise: false)
        let r = try plain.apply(model: model, generator: generator, weight: 0, gradients: nil, trainable: [])
        var text = ""
        for (l, row) in r.layers.enumerated() {
            text += "\(step),\(l),\(String(format: "%.8g", row.loss)),\(String(format: "%.8g", row.epsMean)),\(String(format: "%.8g", row.epsMin))\n"
        }
        try append(text, to: "analysis.csv", header: "step,layer,erc_loss,eps_mean,eps_min")
    }

    // MARK: - Logs

    func append(_ text: String, to name: String, header: String) throws(TrainingError) {
        let path = outputFolder + "/" + name
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) {
            guard fm.createFile(atPath: path, contents: Data((header + "\n").utf8)) else { throw .io(file: path, reason: "cannot create") }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw .io(file: path, reason: "cannot open for appending") }
        defer { try? h.close() }
        do {
            try h.seekToEnd()
            try h.write(contentsOf: Data(text.utf8))
        } catch { throw .io(file: path, reason: "cannot append: \(error.localizedDescription)") }
    }

    func appendLog(_ row: TrainingLogRow) throws(TrainingError) {
        try append(row.csv + "\n", to: "log.csv", header: TrainingLogRow.header)
    }

    func appendEval(loss: Double, tokens: Int) throws(TrainingError) {
        try append("\(step),\(tokensSeen),\(String(format: "%.8g", loss)),\(tokens)\n", to: "eval.csv", header: "step,tokens,eval_loss,eval_tokens")
    }

    /// Removes half-written step folders (`.step{N}.tmp-*`) a kill during a save left behind.
    func removeStaleTemporaryFolders() {
        let fm = FileManager.default
        for e in (try? fm.contentsOfDirectory(atPath: outputFolder)) ?? [] where e.hasPrefix(".step") && e.contains(".tmp-") {
            try? fm.removeItem(atPath: outputFolder + "/" + e)
        }
    }

    /// Drops rows after `step` from the CSV logs (written before a kill), atomically.
    func truncateLog(after step: Int) throws(TrainingError) {
        for name in ["log.csv", "analysis.csv", "eval.csv"] {
            let path = outputFolder + "/" + name
            guard let d = FileManager.default.contents(atPath: path) else { continue }
            let lines = String(decoding: d, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
            guard let header = lines.first else { continue }
            let kept = lines.dropFirst().filter { line in
                guard let s = Int(line.prefix(while: { $0 != "," })) else { return false }
                return s <= step
            }
            let text = ([header] + kept).joined(separator: "\n") + "\n"
            do { try AtomicOutput.write(text, to: path) } catch { throw .io(file: path, reason: error.description) }
        }
    }
}

extension FileManager {
    func createDirectoryOrThrow(_ path: String) throws(TrainingError) {
        do { try createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw .io(file: path, reason: "cannot create folder: \(error.localizedDescription)")
        }
    }
}

extension Trainer {
    /// The model config of a saved run (`DIR` or `DIR/step{N}`), for reading its data first.
    public static func savedConfig(_ folder: String) throws(TrainingError) -> OlmoeConfig {
        let step = try TrainerState.resolve(folder)
        return try OlmoeConfig(contentsOf: step + "/config.json")
    }
}
