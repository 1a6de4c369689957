import Checkpoints
import Foundation
import MoELayout
import Models
import Testing

@testable import Routing

/// Forward throughput of `routing` on the demo-size OLMoE; runs only with MOE_BENCH=1 (`make bench`),
/// never in `swift test`. scripts/bench_routing.py times transformers on the same tokens.
@Suite struct RoutingBenchmarkTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MOE_BENCH"] == "1"))
    func demoSizeThroughput() throws {
        let dir = NSTemporaryDirectory() + "moe-routing-bench-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // fixtures/corpus/demo-config.json's shape, Float32
        let shape = SyntheticCheckpoint.Shape(vocabSize: 256, hiddenSize: 128, intermediateSize: 128, layers: 4, heads: 4, kvHeads: 4, experts: 8, topK: 2)
        try SyntheticCheckpoint(shape: shape, dtype: .f32, seed: 1).write(to: dir)
        let text = try Data(contentsOf: URL(fileURLWithPath: Reference.root + "/corpus/kjv-eval.txt"))
        var windows = try TokenWindows(windowLength: 512)
        try windows.append(domain: "kjv", count: text.count, maxTokens: 16384, source: "kjv-eval.txt") { Int32(text[text.startIndex + $0]) }
        let model = try CausalModel(MoECheckpoint(Checkpoint.open(dir)))
        for coupling in [0, windows.tokenCount] {
            // measured as scripts/bench_routing.py measures transformers: one warm-up run, then
            // the median of three
            let options = RoutingOptions(couplingTokens: coupling)
            let first = try RoutingAnalysis.run(model, data: windows, options: options, path: dir)
            let runs = try (0..<3).map { _ in try RoutingAnalysis.run(model, data: windows, options: options, path: dir) }
            let best = runs.sorted { $0.forwardSeconds < $1.forwardSeconds }[1]
            var usage = rusage()
            #if os(Linux)
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
            #else
            getrusage(RUSAGE_SELF, &usage)
            #endif
            print(
                String(
                    format:
                        "BENCH routing demo-size, in-process after a warm-up, median of 3: %d tokens (windows of 512), forward %.3f s = %.0f tokens/s; coupling on %d tokens %.3f s; the first (cold) run's forward %.3f s; peak RSS of the test process %.0f MiB",
                    windows.tokenCount, best.forwardSeconds, Double(windows.tokenCount) / best.forwardSeconds, coupling, best.couplingSeconds,
                    first.forwardSeconds,
                    Double(usage.ru_maxrss) / 1024))
        }
    }
}
