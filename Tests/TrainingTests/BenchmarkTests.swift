import Foundation
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
        print(String(format: "swift: %.0f tokens/s (%.3f s/step); with ERC %.0f tokens/s (overhead %.2f%%); peak RSS %.0f MiB",
                     plain.tokensPerSecond, plain.secondsPerStep, erc.tokensPerSecond, overhead, erc.peakResidentMiB))
    }
}
