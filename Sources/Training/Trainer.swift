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

    /// The row's fields, in the order of `RunLog.File.log.columns`.
    var fields: [String] {
        func f(_ x: Double?) -> String { x.map { String(format: "%.8g", $0) } ?? "" }
        return [
            String(step), String(tokens), f(learningRate), f(loss), f(lmLoss), f(lbLoss), f(zLoss), f(ercLoss), f(epsMean),
            f(gradNorm), String(format: "%.1f", tokensPerSecond),
        ]
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
    /// The run folder, opened (resume) or created (a new run) before the first write.
    var runFolder: RunFolder?
    /// A `tokenizer.json` copied into every saved step folder, so that the step can be read with
    /// its own tokenizer (`routing` on text, `--resume` of a run trained on text).
    public var tokenizerFile: String?
    /// The held-out loss computed at the last save, if any.
    public private(set) var lastEvaluation: (loss: Double, tokens: Int)?
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

    /// Why bf16 products are emulated in Float32 on this machine (no BF16 kernel), nil when
    /// they run on BF16 kernels or the run is fp32.
    public var bf16EmulationReason: String? { workspace.bf16?.products.emulationReason }
    var targets: [Int32]
    let schedule: LearningRateSchedule
    let erc: ERCRegularizer
    var lbWeight: Double { options.lbWeight ?? model.config.routerAuxLossCoefficient }

    /// A new run on `model` (from a checkpoint stored as `format`, or initialised).
    public init(
        model: OlmoeNetwork, format: StoredFormat, data: TokenData, evalData: TokenData? = nil,
        options: TrainingOptions, outputFolder: String
    ) throws(TrainingError) {
        try options.validate()
        try MemoryPlan(model.config, options: options).check(source: "train")
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
            throw .data(file: data.path, reason: "\(data.count) tokens hold no window of \(Setting.sequenceLength) + 1 = \(options.sequenceLength + 1) tokens")
        }
        if let e = evalData, e.windowCount(length: options.sequenceLength) < 1 {
            throw .data(file: e.path, reason: "\(e.count) tokens hold no window of \(Setting.sequenceLength) + 1 = \(options.sequenceLength + 1) tokens")
        }
        let groups = Set(options.trainGroups)
        trainable = groups
        let ranges = model.layout.tensors.filter { groups.contains($0.group) }.map { $0.offset..<($0.offset + $0.count) }
        trainableRanges = ranges
        guard !ranges.isEmpty else {
            throw .invalidOption("\(Setting.trainGroups) \(options.trainGroups.map(\.rawValue).joined(separator: ",")) selects no tensor of this model")
        }
        optimizer = Optimizer(
            kind: options.optimizer, count: model.parameters.count, ranges: ranges,
            beta1: options.beta1, beta2: options.beta2, epsilon: options.adamEpsilon, weightDecay: options.weightDecay)
        gradients = FloatBuffer(count: model.parameters.count)
        generator = SeededGenerator(seed: options.seed).split(0x7EA1_7EA1)
        sampler = WindowSampler(order: options.dataOrder, windows: windows, seed: options.seed)
        workspace = ModelWorkspace(
            model.config, batch: options.batchSize, length: options.sequenceLength,
            bf16: options.precision == .bf16 ? (model.parameters, BF16Products()) : nil)
        targets = [Int32](repeating: -1, count: options.batchSize * options.sequenceLength)
        switch options.schedule {
        case .constant: schedule = .constant(peak: options.learningRate, warmup: options.warmupSteps)
        case .cosine:
            schedule = .cosine(
                peak: options.learningRate, warmup: options.warmupSteps, total: options.scheduleSteps ?? options.steps,
                minimum: options.minimumLearningRate)
        }
        erc = ERCRegularizer(alpha: options.ercAlpha, noise: options.ercNoise)
    }

    /// Resumes the run saved in `folder` (a `step{N}` folder, or a run folder whose latest
    /// step folder is used). `steps`, `saveEvery` and `precision`, when given, replace the saved
    /// ones; every other option is the saved run's.
    public static func resume(
        from folder: String, data: TokenData, evalData: TokenData? = nil, outputFolder: String,
        steps: Int? = nil, saveEvery: Int? = nil, precision: TrainingPrecision? = nil
    ) throws(TrainingError) -> Trainer {
        let stepFolder = try TrainerState.resolve(folder)
        let state = try TrainerState.read(folder: stepFolder)
        try state.validate(folder: stepFolder)
        guard data.count == state.dataTokens else {
            throw .state(
                file: stepFolder, reason: "the run trained on \(state.dataTokens) tokens of \(state.dataPath); \(Setting.data) \(data.path) holds \(data.count)")
        }
        if let h = state.dataHash, h != data.contentHash {
            throw .state(file: stepFolder, reason: "the run trained on \(state.dataPath); \(Setting.data) \(data.path) has as many tokens but other ones")
        }
        var options = state.options
        if let steps {
            // the schedule keeps the length it was planned with (see TrainingOptions.scheduleSteps)
            if options.scheduleSteps == nil { options.scheduleSteps = options.steps }
            options.steps = steps
        }
        if let saveEvery { options.saveEvery = saveEvery }
        if let precision { options.precision = precision }
        guard options.steps >= state.step else { throw .invalidOption("\(Setting.steps) \(options.steps) is below the saved step \(state.step)") }
        let (model, _) = try NetworkCheckpoint.load(stepFolder)
        let trainer = try Trainer(model: model, format: state.format, data: data, evalData: evalData, options: options, outputFolder: outputFolder)
        let tensorsPath = stepFolder + "/" + TrainerState.tensorsName
        let ck: Checkpoint
        do { ck = try Checkpoint.open(tensorsPath) } catch { throw .files(error) }
        func read(_ kind: String, into b: FloatBuffer) throws(TrainingError) {
            for t in model.layout.tensors {
                let name = kind + "." + t.name
                guard let info = ck.info(name), info.elementCount == t.count, info.dtype == .f32 else {
                    throw .state(file: tensorsPath, reason: "missing or mis-sized Float32 tensor '\(name)' (\(t.count) elements expected)")
                }
                do { try ck.read(name, into: UnsafeMutableBufferPointer(start: b.pointer + t.offset, count: t.count)) } catch {
                    throw .files(error)
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
        let run: RunFolder
        if URL(fileURLWithPath: stepFolder).deletingLastPathComponent().standardizedFileURL.path
            == URL(fileURLWithPath: outputFolder).standardizedFileURL.path
        {
            run = try RunFolder.open(outputFolder)
            if let later = run.savedSteps.first(where: { $0 > state.step }) {
                throw .state(
                    file: run.stepFolder(later), reason: "is past step \(state.step), the step resumed from; resume from the latest step, or move it away first"
                )
            }
            try run.truncate(after: state.step)
            run.removeStaleTemporaryFolders()
        } else {
            run = try RunFolder.create(outputFolder)
        }
        trainer.runFolder = run
        return trainer
    }

    // MARK: - Running

    /// Trains from the current step to `options.steps`, saving as configured and at the end.
    public func run(report: ((TrainingEvent) -> Void)? = nil) throws(TrainingError) {
        _ = try folder()
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
                if let (loss, tokens) = lastEvaluation {
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
                model.forwardBackward(
                    workspace, targets: tp.baseAddress!, lbWeight: lbWeight, zWeight: options.zWeight,
                    scale: 1 / Double(K), gradients: gradients, trainable: trainable, precision: options.precision)
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
        return TrainingLogRow(
            step: step, tokens: tokensSeen, learningRate: lr, loss: total, lmLoss: losses.languageModel,
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

    /// The run folder, created on the first write of a new run.
    func folder() throws(TrainingError) -> RunFolder {
        if let runFolder { return runFolder }
        let created = try RunFolder.create(outputFolder)
        runFolder = created
        return created
    }

    /// Saves step N: first the rows of `analysis.csv` (one per layer) and, with held-out data,
    /// of `eval.csv`, then `DIR/step{N}/` (the model as a Hugging Face folder plus the trainer
    /// state) built aside and renamed into place. Rows written before a kill belong to a step
    /// whose folder never appeared, and resume drops them. Returns the folder.
    @discardableResult
    public func save() throws(TrainingError) -> String {
        let run = try folder()
        let final = run.stepFolder(step)
        if FileManager.default.fileExists(atPath: final) {
            throw .io(file: final, reason: "already exists; the trainer does not replace a saved step")
        }
        try appendAnalysis()
        lastEvaluation = nil
        if evalData != nil {
            let (loss, tokens) = try evaluate()
            try run.append(.eval, [[String(step), String(tokensSeen), String(format: "%.8g", loss), String(tokens)]])
            lastEvaluation = (loss, tokens)
        }
        do {
            try AtomicOutput.buildFolder(at: final, replace: false) { tmp in
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
                } catch let e as CheckpointError { throw TrainingError.files(e) } catch { throw TrainingError.io(file: tmp, reason: "\(error)") }
                let state = TrainerState(
                    step: step, tokens: tokensSeen, generator: TrainerState.encode(generator), options: options,
                    dataPath: data.path, dataTokens: data.count, dataHash: data.contentHash,
                    evalDataPath: evalData?.path, format: format,
                    optimizerSteps: optimizer.stepCount, hasMasterWeights: narrow)
                try state.write(folder: tmp)
                if let tokenizerFile {
                    do { try FileManager.default.copyItem(atPath: tokenizerFile, toPath: tmp + "/tokenizer.json") } catch {
                        throw TrainingError.io(file: tokenizerFile, reason: "cannot copy into the step folder: \(error.localizedDescription)")
                    }
                }
            }
        } catch let e as TrainingError {
            throw e
        } catch let e as CheckpointError {
            throw .files(e)
        } catch {
            throw .io(file: final, reason: "\(error)")
        }
        return final
    }

    /// Per-layer analysis row at a save: ERC loss (noise off, so the row is reproducible) and eps.
    func appendAnalysis() throws(TrainingError) {
        let plain = ERCRegularizer(alpha: options.ercAlpha, noise: false)
        let r = try plain.apply(model: model, generator: generator, weight: 0, gradients: nil, trainable: [])
        let rows = r.layers.enumerated().map { l, row in
            [String(step), String(l), String(format: "%.8g", row.loss), String(format: "%.8g", row.epsMean), String(format: "%.8g", row.epsMin)]
        }
        try folder().append(.analysis, rows)
    }

    // MARK: - Logs

    func appendLog(_ row: TrainingLogRow) throws(TrainingError) {
        try folder().append(.log, [row.fields])
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
    /// What a saved run (`DIR` or `DIR/step{N}`) needs to be continued: its model config, its
    /// data files and its run folder.
    public struct SavedRun: Sendable {
        /// The model's hyper-parameters.
        public var config: OlmoeConfig
        /// The training data the run was saved with.
        public var dataPath: String
        /// The held-out data of the run, if any.
        public var evalDataPath: String?
        /// The run folder that holds the step folder.
        public var runFolder: String
        /// The step the run continues from.
        public var step: Int
    }

    /// The saved run at `folder` (`DIR` or `DIR/step{N}`).
    public static func savedRun(_ folder: String) throws(TrainingError) -> SavedRun {
        let stepFolder = try TrainerState.resolve(folder)
        let state = try TrainerState.read(folder: stepFolder)
        try state.validate(folder: stepFolder)
        return SavedRun(
            config: try OlmoeConfig(contentsOf: stepFolder + "/config.json"), dataPath: state.dataPath,
            evalDataPath: state.evalDataPath, runFolder: (stepFolder as NSString).deletingLastPathComponent, step: state.step)
    }
}

extension Trainer {
    /// Checks the bytes of a `trainer_state.json` as resume would (for fuzzing and tools).
    /// - Throws: `TrainingError.state` naming the file and what is wrong.
    public static func checkState(_ data: Data, folder: String) throws(TrainingError) {
        _ = try TrainerState.parse(data, folder: folder)
    }
}
