import Checkpoints
import Foundation
import Tensors

/// Training throughput on the reference configuration (vocab 256, d 256, 4 layers,
/// 4 heads, 8 experts, top-2, D 256, sequence 256, batch 8, AdamW), in fp32 or bf16 products,
/// for `make bench`.
public enum TrainingBenchmark {
    /// What one measurement gave.
    public struct Result: Sendable {
        /// Median tokens per second over the measured steps.
        public var tokensPerSecond: Double
        /// Median seconds per step.
        public var secondsPerStep: Double
        /// Peak resident set size of the process so far, in MiB.
        public var peakResidentMiB: Double
        /// Median CPU seconds (user + system, all threads) per step: on a busy machine this
        /// tells the work done apart from the time lost waiting for a core.
        public var cpuSecondsPerStep: Double
        /// Median seconds of the ERC loss and its gradient over all layers alone (noise on),
        /// measured after the steps: the ERC overhead without the noise of whole-step timing.
        public var ercSecondsPerStep: Double
    }

    /// CPU seconds (user + system) used by this process so far.
    public static func cpuSeconds() -> Double {
        var u = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        #else
        getrusage(RUSAGE_SELF, &u)
        #endif
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }

    /// The OpenBLAS kernel family in use; `Prescott` on a modern CPU means slow SSE3 kernels
    /// (OpenBLAS 0.3.21 does not recognise some virtualised CPUs: set OPENBLAS_CORETYPE).
    public static var blasCore: String { ParallelGEMM.coreName }

    /// The reference model config.
    public static func referenceConfig(
        vocabulary: Int = 256, hidden: Int = 256, layers: Int = 4, heads: Int = 4,
        experts: Int = 8, topK: Int = 2, intermediate: Int = 256
    ) throws(TrainingError) -> OlmoeConfig {
        let json = JSONValue.object([
            ("model_type", .string("olmoe")), ("vocab_size", .int(vocabulary)), ("hidden_size", .int(hidden)),
            ("intermediate_size", .int(intermediate)), ("num_hidden_layers", .int(layers)), ("num_attention_heads", .int(heads)),
            ("num_key_value_heads", .int(heads)), ("num_experts", .int(experts)), ("num_experts_per_tok", .int(topK)),
            ("rope_theta", .number(10_000)), ("router_aux_loss_coef", .number(0.01)), ("max_position_embeddings", .int(4096)),
        ])
        return try OlmoeConfig(json: json, source: "reference config")
    }

    /// Trains `warmup + steps` steps on random tokens and reports the median of the last `steps`.
    /// - Parameters:
    ///   - ercWeight: > 0 adds the ERC loss (alpha 1, noise on).
    ///   - precision: of the matrix products.
    public static func run(
        config: OlmoeConfig, batch: Int = 8, length: Int = 256, steps: Int = 8, warmup: Int = 2,
        ercWeight: Double = 0, precision: TrainingPrecision = .fp32
    ) throws(TrainingError) -> Result {
        let folder = NSTemporaryDirectory() + "moe-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectoryOrThrow(folder)
        var g = SeededGenerator(seed: 1)
        let count = (warmup + steps) * batch * (length + 1) + 1
        var raw = Data(count: count * 2)
        raw.withUnsafeMutableBytes { b in
            for i in 0..<count { b.storeBytes(of: UInt16(g.next() % UInt64(config.vocabularySize)), toByteOffset: 2 * i, as: UInt16.self) }
        }
        let path = folder + "/tokens.bin"
        do { try raw.write(to: URL(fileURLWithPath: path)) } catch { throw .io(file: path, reason: "\(error)") }
        let data = try TokenData(path: path, vocabularySize: config.vocabularySize, binaryDType: .uint16)
        let model = OlmoeNetwork(config: config)
        var ig = SeededGenerator(seed: 2)
        model.initialize(generator: &ig)
        var o = TrainingOptions()
        o.steps = warmup + steps
        o.batchSize = batch
        o.sequenceLength = length
        o.learningRate = 1e-3
        o.weightDecay = 0.1
        o.clipGradNorm = 1
        o.ercWeight = ercWeight
        o.dataOrder = .sequential
        o.precision = precision
        let trainer = try Trainer(model: model, format: .float32, data: data, options: o, outputFolder: folder + "/run")
        var times: [Double] = [], cpu: [Double] = []
        for s in 0..<(warmup + steps) {
            let t0 = DispatchTime.now().uptimeNanoseconds, c0 = cpuSeconds()
            _ = try trainer.trainStep()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if s >= warmup { times.append(dt); cpu.append(cpuSeconds() - c0) }
        }
        times.sort()
        cpu.sort()
        let erc = ERCRegularizer(alpha: 1, noise: true)
        var ercTimes: [Double] = []
        for _ in 0..<max(3, steps) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try erc.apply(model: model, generator: g, weight: 1, gradients: trainer.gradients, trainable: Set(ParameterGroup.allCases))
            ercTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        ercTimes.sort()
        let median = times.isEmpty ? .nan : times[times.count / 2]
        return Result(
            tokensPerSecond: Double(batch * length) / median, secondsPerStep: median, peakResidentMiB: peakResidentMiB(),
            cpuSecondsPerStep: cpu.isEmpty ? .nan : cpu[cpu.count / 2], ercSecondsPerStep: ercTimes[ercTimes.count / 2])
    }

    /// Peak resident set size (VmHWM) in MiB, or NaN where /proc is not available.
    public static func peakResidentMiB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return .nan }
        let kb = Double(line.split(separator: " ").dropFirst().first.map(String.init) ?? "") ?? .nan
        return kb / 1024
    }
}
