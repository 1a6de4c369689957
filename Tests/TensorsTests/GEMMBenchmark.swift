import Dispatch
import Foundation
import Tensors
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The machine's measured f32 product rate, the yardstick of `make bench`'s ERC figures
/// (run with MOE_BENCH=1; skipped otherwise).
@Suite struct GEMMBenchmark {
    /// CPU seconds of the calling thread.
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + 1e-9 * Double(t.tv_nsec)
    }

    /// GFLOP/s of `workers` threads each running one-core `size`^3 products on `kernel`, by wall
    /// time and by CPU time (as if each worker had its core to itself), the best of three rounds
    /// of `rounds` products per worker.
    func perCoreRate(kernel: GEMMKernel, size: Int, workers: Int, rounds: Int = 3) -> (wall: Double, cpu: Double) {
        guard let p = ThreadProduct(m: size, n: size, k: size, transB: true, kernel: kernel) else { return (.nan, .nan) }
        var g = SeededGenerator(seed: 1)
        let a = (0..<(size * size)).map { _ in Float(g.nextNormal()) }
        var best = Double.infinity, bestCPU = Double.infinity
        let cpu = UnsafeMutableBufferPointer<Double>.allocate(capacity: workers)
        defer { cpu.deallocate() }
        let shared = UnsafeShared(cpu)
        BLAS.withThreads(1) {
            for _ in 0..<3 {
                let t = Date()
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    let c = UnsafeMutablePointer<Float>.allocate(capacity: size * size)
                    defer { c.deallocate() }
                    let s = ThreadProduct.Scratch(for: p)
                    let c0 = GEMMBenchmark.threadCPUSeconds()
                    a.withUnsafeBytes { ab in
                        for _ in 0..<rounds { p.run(a: ab.baseAddress!, b: ab.baseAddress!, c: c, scratch: s) }
                    }
                    shared.value[w] = GEMMBenchmark.threadCPUSeconds() - c0
                }
                best = min(best, Date().timeIntervalSince(t))
                bestCPU = min(bestCPU, cpu.reduce(0, +) / Double(workers))
            }
        }
        let flop = 2 * Double(size * size * size) * Double(workers * rounds)
        return (flop / best / 1e9, flop / bestCPU / 1e9)
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["MOE_BENCH"] == "1"))
    func f32Peak() {
        let workers = ProcessInfo.processInfo.activeProcessorCount
        var rates: [(GEMMKernel, (wall: Double, cpu: Double))] = []
        for kernel in GEMMKernel.allCases where kernel == .openBLAS || OneDNN.isAvailable {
            rates.append((kernel, perCoreRate(kernel: kernel, size: 2048, workers: workers)))
        }
        for (k, r) in rates {
            print(
                String(
                    format: "BENCH f32 GEMM 2048^3, %d workers x one-core products, %@: %.0f GFLOP/s (by CPU time %.0f)",
                    workers, k.rawValue, r.wall, r.cpu))
        }
        let wall = rates.map(\.1.wall).max() ?? .nan, cpu = rates.map(\.1.cpu).max() ?? .nan
        print(
            String(
                format: "BENCH f32 GEMM peak (best of the above): %.0f GFLOP/s, by CPU time %.0f GFLOP/s; kernel in use: %@",
                wall, cpu, GEMMKernel.description))
        #expect(wall > 0 && cpu > 0)
    }
}
