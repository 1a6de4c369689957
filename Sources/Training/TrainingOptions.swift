import Tensors

/// Learning-rate schedule shapes.
public enum ScheduleKind: String, Sendable, Codable, CaseIterable {
    case constant, cosine
}

/// Element type of the inputs of training's matrix products.
public enum TrainingPrecision: String, Sendable, Codable, CaseIterable {
    /// Float32 products, as transformers' fp32 training.
    case fp32
    /// The products of the attention and expert projections, of attention itself (scores and
    /// weighted values) and of the LM head, forward and backward, take BF16 inputs rounded from
    /// the Float32 weights, activations and gradients and accumulate into Float32 outputs
    /// (oneDNN, on the CPU's AVX-512 BF16 units). Master weights, optimizer state, norms,
    /// softmax, the router, losses and reductions stay Float32. BF16 keeps Float32's exponent
    /// range, so no loss scaling.
    case bf16
}

/// `TrainingOptions.precision` as saved: a trainer state written before the option existed
/// holds no `precision` and reads as fp32 (see the decoding overload below).
@propertyWrapper
public struct SavedPrecision: Codable, Sendable, Equatable {
    public var wrappedValue: TrainingPrecision
    public init(wrappedValue: TrainingPrecision) { self.wrappedValue = wrappedValue }
    public init(from decoder: any Decoder) throws { wrappedValue = try decoder.singleValueContainer().decode(TrainingPrecision.self) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(wrappedValue)
    }
}

extension KeyedDecodingContainer {
    /// Chosen by `TrainingOptions`' synthesised decoding for its `precision`: absent is fp32.
    func decode(_ type: SavedPrecision.Type, forKey key: Key) throws -> SavedPrecision {
        try decodeIfPresent(type, forKey: key) ?? SavedPrecision(wrappedValue: .fp32)
    }
}

/// Every setting of a training run. Saved with each checkpoint so that a resumed run
/// continues with the same ones.
public struct TrainingOptions: Sendable, Codable, Equatable {
    /// Optimizer steps to reach (a resumed run continues up to this step).
    public var steps = 100
    /// Rows (sequences) per micro-batch.
    public var batchSize = 8
    /// Tokens per row fed to the model; each row reads a window of `sequenceLength + 1` tokens.
    public var sequenceLength = 256
    /// Micro-batches whose gradients are averaged into one step.
    public var accumulation = 1
    /// Peak learning rate.
    public var learningRate = 1e-3
    public var schedule: ScheduleKind = .constant
    /// Linear warm-up steps.
    public var warmupSteps = 0
    /// Final learning rate of the cosine schedule.
    public var minimumLearningRate = 0.0
    public var optimizer: OptimizerKind = .adamw
    public var beta1 = 0.9, beta2 = 0.95, adamEpsilon = 1e-8
    /// AdamW decoupled weight decay (ignored by SGD).
    public var weightDecay = 0.0
    /// Global gradient-norm clipping threshold; 0 turns clipping off.
    public var clipGradNorm = 1.0
    /// Load-balancing loss weight; nil takes the config's `router_aux_loss_coef`.
    public var lbWeight: Double?
    /// Router z-loss weight.
    public var zWeight = 0.0
    /// ERC loss weight (0: the ERC loss is not trained on).
    public var ercWeight = 0.0
    /// ERC alpha.
    public var ercAlpha = 1.0
    /// Multiplicative noise on the router rows for the ERC proxies (the paper's default).
    public var ercNoise = true
    /// Seed of every random draw (initialisation, data order, ERC noise).
    public var seed: UInt64 = 0
    public var dataOrder: DataOrder = .random
    /// Save every this many steps (0: only at the end).
    public var saveEvery = 0
    /// Element type of saved weights; nil keeps the input's.
    public var saveDType: DType?
    /// Parameter groups trained; the others stay frozen.
    public var trainGroups: [ParameterGroup] = ParameterGroup.allCases
    /// Batches of held-out data evaluated at each save.
    public var evalBatches = 8
    /// The step at which the cosine schedule reaches `minimumLearningRate` (nil: `steps`). A run
    /// resumed to more steps keeps its schedule: the rate stays at the minimum past this step
    /// instead of jumping back up.
    public var scheduleSteps: Int?
    /// Element type of the matrix products' inputs (master weights and optimizer state are
    /// Float32 either way).
    @SavedPrecision public var precision: TrainingPrecision = .fp32

    public init() {}

    /// Checks values that cannot work, naming the setting.
    public func validate() throws(TrainingError) {
        func bad(_ s: SettingMessage) -> TrainingError { .invalidOption(s) }
        if steps < 1 { throw bad("\(Setting.steps) must be at least 1, got \(steps)") }
        if batchSize < 1 { throw bad("\(Setting.batchSize) must be at least 1, got \(batchSize)") }
        if sequenceLength < 2 { throw bad("\(Setting.sequenceLength) must be at least 2, got \(sequenceLength)") }
        if accumulation < 1 { throw bad("\(Setting.accumulation) must be at least 1, got \(accumulation)") }
        if !(learningRate >= 0) || !learningRate.isFinite { throw bad("\(Setting.learningRate) must be a non-negative number, got \(learningRate)") }
        if warmupSteps < 0 { throw bad("\(Setting.warmupSteps) must be non-negative") }
        if schedule == .cosine && warmupSteps >= steps {
            throw bad("\(Setting.warmupSteps) \(warmupSteps) leaves no steps for the cosine decay of \(steps) steps")
        }
        if !(0..<1).contains(beta1) || !(0..<1).contains(beta2) { throw bad("\(Setting.beta1) and \(Setting.beta2) must lie in [0, 1)") }
        if !(adamEpsilon > 0) { throw bad("\(Setting.adamEpsilon) must be positive") }
        if !(weightDecay >= 0) { throw bad("\(Setting.weightDecay) must be non-negative") }
        if optimizer == .sgd && weightDecay > 0 {
            throw bad(
                "\(Setting.weightDecay) does not apply to plain SGD (no momentum, no weight decay); use \(Setting.optimizer) \(OptimizerKind.adamw.rawValue)")
        }
        if !(clipGradNorm >= 0) { throw bad("\(Setting.clipGradNorm) must be non-negative (0 turns clipping off)") }
        if let w = lbWeight, !(w >= 0) { throw bad("\(Setting.lbWeight) must be non-negative") }
        if !(zWeight >= 0) { throw bad("\(Setting.zWeight) must be non-negative") }
        if !(ercWeight >= 0) { throw bad("\(Setting.ercWeight) must be non-negative") }
        if !(ercAlpha >= 0) { throw bad("\(Setting.ercAlpha) must be non-negative") }
        if saveEvery < 0 { throw bad("\(Setting.saveEvery) must be non-negative") }
        if trainGroups.isEmpty { throw bad("\(Setting.trainGroups) selects no parameters") }
        if evalBatches < 1 { throw bad("\(Setting.evalBatches) must be at least 1") }
    }
}

/// The settings of a training run that messages name (`TrainingOptions`' properties and the
/// trainer's inputs); the command line shows them as its flags.
extension Setting {
    package static let steps: Setting = "steps", batchSize: Setting = "batchSize", sequenceLength: Setting = "sequenceLength"
    package static let accumulation: Setting = "accumulation", learningRate: Setting = "learningRate", warmupSteps: Setting = "warmupSteps"
    package static let beta1: Setting = "beta1", beta2: Setting = "beta2", adamEpsilon: Setting = "adamEpsilon"
    package static let weightDecay: Setting = "weightDecay", optimizer: Setting = "optimizer", clipGradNorm: Setting = "clipGradNorm"
    package static let lbWeight: Setting = "lbWeight", zWeight: Setting = "zWeight", ercWeight: Setting = "ercWeight", ercAlpha: Setting = "ercAlpha"
    package static let saveEvery: Setting = "saveEvery", trainGroups: Setting = "trainGroups", evalBatches: Setting = "evalBatches"
    /// The token data trained on, and its element type for raw `.bin` files.
    package static let data: Setting = "data", dataDType: Setting = "dataDType", tokenizer: Setting = "tokenizer"
    /// The run folder written, and the step folder resumed from.
    package static let output: Setting = "output", resume: Setting = "resume"
}
