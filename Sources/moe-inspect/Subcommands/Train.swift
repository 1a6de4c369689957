import ArgumentParser
import Foundation
import Tensors
import Tokenizers
import Training

extension ScheduleKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension DataOrder: ExpressibleByArgument {}
extension TokenDType: ExpressibleByArgument {}
extension TrainingPrecision: ExpressibleByArgument {}

extension MoEInspect {
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train",
            abstract: "Train (or continue training) an OLMoE model on token files, optionally with the ERC loss.",
            discussion: """
                Starts from a checkpoint (CKPT: a Hugging Face folder, safetensors file or HDF5 file with its config), from a fresh model (--init CONFIG.json), or continues a run (--resume DIR).

                Total loss = LM cross-entropy + lb-weight * load balancing + z-weight * router z-loss + erc-weight * sum over layers of the ERC loss (eps and the noise drawn fresh each step). Each micro-batch reads batch-size windows of seq-len + 1 tokens (the model sees seq-len tokens, each next token is a target); grad-accum micro-batches make one step.

                Writes DIR/log.csv every step, and DIR/step{N}/ (config.json, model.safetensors, trainer state) every --save-every steps and at the last, each folder renamed into place when complete, so that a killed run continues exactly with --resume DIR.
                """)

        @Argument(help: ArgumentHelp("Checkpoint to start from (folder, .safetensors, index or .h5 with a config).", valueName: "CKPT"))
        var checkpoint: String?

        @Option(
            name: .customLong("init"),
            help: ArgumentHelp(
                "Start from a new model of this config.json (transformers OlmoeConfig keys), initialised as transformers does.", valueName: "CONFIG.json"))
        var initConfig: String?

        @Option(
            help: ArgumentHelp(
                "Training tokens: .npy (1-D uint16/uint32/int32/int64), raw .bin (see --data-dtype) or .txt (encoded by the model's tokenizer.json or --tokenizer; bytes only for a byte-sized vocabulary without one). With --resume: default the run's own.",
                valueName: "FILE"))
        var data: String?

        @Option(
            help: ArgumentHelp(
                "The tokenizer.json that encodes .txt data (default: the one beside CKPT, --init's config or the resumed step); it is copied into every saved step.",
                valueName: "FILE"))
        var tokenizer: String?

        @Option(help: ArgumentHelp("Element type of a raw .bin token file: uint8, uint16 (default), uint32, int32, int64.", valueName: "dtype"))
        var dataDtype: TokenDType?

        @Option(
            help: ArgumentHelp(
                "Run folder: log.csv, analysis.csv, eval.csv and step{N}/ checkpoints (a new or empty folder; with --resume: default the run's own).",
                valueName: "DIR"))
        var out: String?

        @Option(help: "Optimizer steps to reach (default 100; with --resume, the step to continue to).") var steps: Int?
        @Option(help: "Sequences (windows) per micro-batch.") var batchSize: Int = 8
        @Option(help: "Tokens per sequence fed to the model; each window is seq-len + 1 tokens.") var seqLen: Int = 256
        @Option(help: "Micro-batches averaged into one step.") var gradAccum: Int = 1
        @Option(help: "Peak learning rate (per step, after warm-up).") var lr: Double = 1e-3
        @Option(help: ArgumentHelp("Learning-rate schedule: constant (default) or cosine (decays to --min-lr at the last step).", valueName: "kind"))
        var schedule: ScheduleKind = .constant
        @Option(help: "Linear warm-up steps (learning rate ramps from peak/warmup to peak).") var warmup: Int = 0
        @Option(help: "Final learning rate of the cosine schedule.") var minLr: Double = 0
        @Option(help: ArgumentHelp("adamw (default) or sgd (plain: no momentum, no weight decay).", valueName: "name")) var optimizer: OptimizerKind = .adamw
        @Option(help: "AdamW beta1.") var beta1: Double = 0.9
        @Option(help: "AdamW beta2.") var beta2: Double = 0.95
        @Option(help: "AdamW epsilon.") var adamEps: Double = 1e-8
        @Option(help: "AdamW decoupled weight decay (per step, times the learning rate).") var weightDecay: Double = 0
        @Option(help: "Global L2 gradient-norm clipping threshold; 0 turns clipping off.") var clipGradNorm: Double = 1
        @Option(help: "ERC loss weight; 0 leaves the ERC loss out of training (it is still measured at each save). The paper uses 1.") var ercWeight: Double = 0
        @Option(help: "ERC alpha in M[i,j] <= alpha M[i,i]; 1 is the paper's best at 64 experts, 0.5 at 256.") var ercAlpha: Double = 1
        @Flag(help: "No multiplicative noise on the ERC proxies (the paper's ablation).") var noErcNoise = false
        @Option(help: "Load-balancing loss weight (default: the config's router_aux_loss_coef).") var lbWeight: Double?
        @Option(help: "Router z-loss weight (OLMoE trained with 0.001).") var zWeight: Double = 0
        @Option(help: "Seed of initialisation, data order and ERC noise.") var seed: UInt64 = 0
        @Option(
            help: ArgumentHelp(
                "random (a seeded permutation of the windows per pass) or sequential (row b of step s starts at token (s*B+b)*(seq-len+1)).", valueName: "order"
            )) var dataOrder: DataOrder = .random
        @Option(help: "Save DIR/step{N}/ every N steps; 0 saves only at the last step.") var saveEvery: Int = 0
        @Option(help: ArgumentHelp("Saved weight dtype: bf16, f16 or f32 (default: the input's; f32 with --init).", valueName: "dtype")) var saveDtype: String?
        @Option(
            help: ArgumentHelp(
                "Parameter groups to train, comma-separated: embed, attention, norm, router, gate_proj, up_proj, down_proj, lm_head, experts, all.",
                valueName: "groups")) var train: String = "all"
        @Option(help: ArgumentHelp("Held-out tokens; the mean LM loss on them is printed at each save.", valueName: "FILE")) var evalData: String?
        @Option(help: "Batches of held-out data per evaluation.") var evalBatches: Int = 8
        @Option(
            help: ArgumentHelp(
                "Matrix products: fp32 (default) or bf16 (BF16 inputs, Float32 accumulation, on oneDNN and the CPU's AVX-512 BF16 units, emulated in Float32 with a warning where there are none; weights, optimizer state, norms, softmax and losses stay Float32). With --resume: default the run's own.",
                valueName: "precision")) var precision: TrainingPrecision?
        @Option(
            help: ArgumentHelp(
                "Continue the run in DIR (its latest step folder) or in a step{N} folder. The saved run's settings apply; only --steps, --save-every, --eval-data, --precision and --quiet given here are used.",
                valueName: "DIR")) var resume: String?
        @Flag(name: [.short, .long], help: "No progress on stderr.") var quiet = false

        func validate() throws {
            let sources = [checkpoint != nil, initConfig != nil, resume != nil].filter { $0 }.count
            if sources == 0 { throw ValidationError("give a checkpoint CKPT, --init CONFIG.json or --resume DIR") }
            if sources > 1 { throw ValidationError("CKPT, --init and --resume exclude each other") }
            if resume == nil && data == nil { throw ValidationError("--data FILE is needed (only --resume can take the run's own)") }
            if resume == nil && out == nil { throw ValidationError("--out DIR is needed (only --resume can take the run's own)") }
            if let s = saveDtype, DType(userSpelling: s).map({ [.bf16, .f16, .f32].contains($0) }) != true {
                throw ValidationError("--save-dtype must be bf16, f16 or f32")
            }
            do {
                _ = try ParameterGroup.parseList(train)
                try options().validate()
            } catch let e as TrainingError {
                throw ValidationError(e.commandLineDescription)
            }
        }

        func options() throws -> TrainingOptions {
            var o = TrainingOptions()
            o.steps = steps ?? 100
            o.batchSize = batchSize
            o.sequenceLength = seqLen
            o.accumulation = gradAccum
            o.learningRate = lr
            o.schedule = schedule
            o.warmupSteps = warmup
            o.minimumLearningRate = minLr
            o.optimizer = optimizer
            o.beta1 = beta1; o.beta2 = beta2; o.adamEpsilon = adamEps
            o.weightDecay = weightDecay
            o.clipGradNorm = clipGradNorm
            o.ercWeight = ercWeight
            o.ercAlpha = ercAlpha
            o.ercNoise = !noErcNoise
            o.lbWeight = lbWeight
            o.zWeight = zWeight
            o.seed = seed
            o.dataOrder = dataOrder
            o.saveEvery = saveEvery
            o.saveDType = saveDtype.flatMap { DType(userSpelling: $0) }
            o.trainGroups = ParameterGroup.allCases.filter { (try? ParameterGroup.parseList(train))?.contains($0) == true }
            o.evalBatches = evalBatches
            o.precision = precision ?? .fp32
            return o
        }

        /// The model's tokenizer: `--tokenizer`, else the `tokenizer.json` beside `model` (its
        /// path, and the tokenizer read only when text needs it: a tokenizer this tool cannot
        /// read does not stop training on token ids).
        func modelTokenizer(beside model: String, text: Bool) throws -> (file: String?, tokenizer: Tokenizer?) {
            let file = try tokenizer.map { t throws in try Tokenizer.locate(t) } ?? Tokenizer.locate(besideCheckpoint: model)
            guard let file, text || tokenizer != nil else { return (file, nil) }
            return (file, try Tokenizer(contentsOf: file))
        }

        static func isText(_ path: String?) -> Bool { path?.lowercased().hasSuffix(".txt") == true }

        func run() throws {
            let binary = dataDtype
            let trainer: Trainer
            let out: String
            let progress = Progress(quiet: quiet)
            if let resume {
                let saved = try Trainer.savedRun(resume)
                out = self.out ?? saved.runFolder
                let V = saved.config.vocabularySize
                let evalPath = evalData ?? saved.evalDataPath
                let (tokFile, tok) = try modelTokenizer(
                    beside: saved.runFolder + "/step\(saved.step)",
                    text: Self.isText(data ?? saved.dataPath) || Self.isText(evalPath))
                if let tok { progress.say("tokenizer \(tok.source)") }
                let train = try TokenData(path: data ?? saved.dataPath, vocabularySize: V, binaryDType: binary, tokenizer: tok)
                let eval = try evalPath.map { p throws(TrainingError) in try TokenData(path: p, vocabularySize: V, binaryDType: binary, tokenizer: tok) }
                trainer = try Trainer.resume(
                    from: resume, data: train, evalData: eval, outputFolder: out, steps: steps,
                    saveEvery: saveEvery > 0 ? saveEvery : nil, precision: precision)
                trainer.tokenizerFile = tokFile
                let changed = [
                    data.map { "--data \($0)" }, evalData.map { "--eval-data \($0)" }, steps.map { "--steps \($0)" },
                    saveEvery > 0 ? "--save-every \(saveEvery)" : nil, precision.map { "--precision \($0)" },
                ].compactMap { $0 }
                var note = ""
                if trainer.options.schedule == .cosine, let end = trainer.options.scheduleSteps, end < trainer.options.steps {
                    note = String(
                        format: "; the cosine schedule still ends at step %d, steps after it run at --min-lr %g", end, trainer.options.minimumLearningRate)
                }
                if !quiet {
                    FileHandle.standardError.write(
                        Data(
                            "resuming \(saved.runFolder) at step \(saved.step) with the run's own settings\(changed.isEmpty ? "" : "; changed: " + changed.joined(separator: ", "))\(note)\n"
                                .utf8))
                }
            } else {
                out = self.out ?? ""
                let data = self.data ?? ""
                let model: OlmoeNetwork, format: StoredFormat
                if let initConfig {
                    let config = try OlmoeConfig(contentsOf: initConfig)
                    model = OlmoeNetwork(config: config)
                    var g = SeededGenerator(seed: seed)
                    model.initialize(generator: &g)
                    format = .float32
                } else {
                    (model, format) = try NetworkCheckpoint.load(checkpoint ?? "")
                }
                let V = model.config.vocabularySize
                let (tokFile, tok) = try modelTokenizer(beside: initConfig ?? checkpoint ?? "", text: Self.isText(data) || Self.isText(evalData))
                if let tok { progress.say("tokenizer \(tok.source)") }
                let train = try TokenData(path: data, vocabularySize: V, binaryDType: binary, tokenizer: tok)
                let eval = try evalData.map { p throws(TrainingError) in try TokenData(path: p, vocabularySize: V, binaryDType: binary, tokenizer: tok) }
                trainer = try Trainer(model: model, format: format, data: train, evalData: eval, options: try options(), outputFolder: out)
                trainer.tokenizerFile = tokFile
            }
            if let why = trainer.bf16EmulationReason {
                FileHandle.standardError.write(
                    Data(
                        "moe-inspect: warning: --precision bf16: \(why); the BF16-rounded operands are multiplied in Float32 (the same numbers, without the speed-up)\n"
                            .utf8))
            }
            let bar = TrainProgress(quiet: quiet, startStep: trainer.step)
            if !quiet {
                let c = trainer.model.config
                bar.line(
                    "training \(formatCount(trainer.model.parameters.count)) parameters (\(c.layerCount) layers, \(c.expertCount) experts, top-\(c.topK)) from step \(trainer.step) to \(trainer.options.steps) on \(trainer.data.count) tokens\(trainer.options.precision == .bf16 ? ", bf16 products" : "")"
                )
            }
            var last: TrainingLogRow?
            try trainer.run { event in
                switch event {
                case let .step(row, total, elapsed):
                    last = row
                    bar.step(row, total: total, elapsed: elapsed)
                case let .saved(step, folder):
                    bar.line("step \(step): saved \(folder)")
                case let .evaluated(step, loss, tokens):
                    bar.finishLine()
                    print(String(format: "step %d: eval loss %.6f on %d tokens", step, loss, tokens))
                }
            }
            bar.finishLine()
            if let r = last {
                print(
                    String(
                        format: "step %d: loss %.6f (lm %.6f, lb %.6f, z %.6f%@), %d tokens; log %@/log.csv",
                        r.step, r.loss, r.lmLoss, r.lbLoss, r.zLoss, r.ercLoss.map { String(format: ", erc %.6f", $0) } ?? "",
                        r.tokens, out))
            } else {
                print("nothing to do: the run is already at step \(trainer.step)")
            }
        }
    }
}

/// The training progress display on stderr: a bar with loss, tokens/s and ETA redrawn in place
/// on a terminal, plain lines (at most one a second) otherwise.
final class TrainProgress {
    let quiet: Bool
    let terminal = isatty(STDERR_FILENO) != 0
    let startStep: Int
    var lastPrint = Date.distantPast
    var open = false

    init(quiet: Bool, startStep: Int) {
        self.quiet = quiet
        self.startStep = startStep
    }

    func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

    func line(_ s: String) {
        guard !quiet else { return }
        finishLine()
        write(s + "\n")
    }

    func finishLine() {
        if open { write("\n"); open = false }
    }

    func step(_ r: TrainingLogRow, total: Int, elapsed: Double) {
        guard !quiet else { return }
        let done = r.step - startStep, left = total - r.step
        let eta = done > 0 ? elapsed / Double(done) * Double(left) : 0
        let text = String(
            format: "step %d/%d loss %.4f lm %.4f%@ %.0f tok/s ETA %@", r.step, total, r.loss, r.lmLoss,
            r.ercLoss.map { String(format: " erc %.4f", $0) } ?? "", r.tokensPerSecond, Self.duration(eta))
        if terminal {
            let width = 24, filled = total > 0 ? width * r.step / total : width
            write("\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] " + text + "\u{1B}[K")
            open = true
            if r.step == total { finishLine() }
        } else if Date().timeIntervalSince(lastPrint) >= 1 || r.step == total {
            write(text + "\n")
            lastPrint = Date()
        }
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
