import Foundation
import Tensors
import Testing

@testable import Training

/// The throughput benchmark; runs only with MOE_BENCH=1 (`make bench`), never in `swift test`.
@Suite struct BenchmarkTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MOE_BENCH"] == "1"))
    func referenceConfigurationThroughput() throws {
        let c = try TrainingBenchmark.referenceConfig()
        let plain = try TrainingBenchmark.run(config: c)
        let erc = try TrainingBenchmark.run(config: c, ercWeight: 1)
        let overhead = (erc.secondsPerStep / plain.secondsPerStep - 1) * 100
        let cpuOverhead = (erc.cpuSecondsPerStep / plain.cpuSecondsPerStep - 1) * 100
        print(
            String(
                format: "swift: ERC loss + gradient alone %.2f ms per step = %.2f%% of the step without it",
                plain.ercSecondsPerStep * 1000, plain.ercSecondsPerStep / plain.secondsPerStep * 100))
        print(
            String(
                format:
                    "swift: %.0f tokens/s (%.3f s/step, %.3f CPU s/step); with ERC %.0f tokens/s (overhead %.2f%% wall, %.2f%% CPU); peak RSS %.0f MiB; BLAS core %@",
                plain.tokensPerSecond, plain.secondsPerStep, plain.cpuSecondsPerStep, erc.tokensPerSecond, overhead, cpuOverhead,
                erc.peakResidentMiB, TrainingBenchmark.blasCore))
        // the same steps with BF16 products: oneDNN's BF16 kernels where this machine has them,
        // else emulated in Float32 (the line says which)
        let bf16 = try TrainingBenchmark.run(config: c, precision: .bf16)
        print(
            String(
                format: "swift bf16: %.0f tokens/s (%.3f s/step, %.3f CPU s/step) = %.2fx swift fp32; %@",
                bf16.tokensPerSecond, bf16.secondsPerStep, bf16.cpuSecondsPerStep, bf16.tokensPerSecond / plain.tokensPerSecond,
                BF16Products().description))
    }
}
