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
    /// With `inputs` bf16, the operands are BF16 bits and `anyShape` picks oneDNN's runtime-size
    /// product (what bf16 training runs) instead of the fixed-shape one.
    func perCoreRate(
        kernel: GEMMKernel, size: Int, workers: Int, rounds: Int = 3, inputs: ThreadProduct.Inputs = .f32, anyShape: Bool = false
    ) -> (wall: Double, cpu: Double, name: String) {
        let fixed = anyShape ? nil : ThreadProduct(m: size, n: size, k: size, transB: true, inputs: inputs, kernel: kernel)
        let runtime = anyShape ? AnyShapeProduct(transB: true, inputs: inputs) : nil
        guard fixed != nil || runtime != nil else { return (.nan, .nan, "none") }
        var g = SeededGenerator(seed: 1)
        let values = (0..<(size * size)).map { _ in Float(g.nextNormal()) }
        let a: [UInt8] =
            inputs == .f32
            ? values.withUnsafeBytes { Array($0) } : values.map { Conversion.bf16Bits($0) }.withUnsafeBytes { Array($0) }
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
                    let s = fixed.map { ThreadProduct.Scratch(for: $0) }
                    let c0 = GEMMBenchmark.threadCPUSeconds()
                    a.withUnsafeBytes { ab in
                        for _ in 0..<rounds {
                            if let fixed, let s {
                                fixed.run(a: ab.baseAddress!, b: ab.baseAddress!, c: c, scratch: s)
                            } else if let runtime {
                                runtime.run(m: size, n: size, k: size, a: ab.baseAddress!, lda: size, b: ab.baseAddress!, ldb: size, c: c, ldc: size)
                            }
                        }
                    }
                    shared.value[w] = GEMMBenchmark.threadCPUSeconds() - c0
                }
                best = min(best, Date().timeIntervalSince(t))
                bestCPU = min(bestCPU, cpu.reduce(0, +) / Double(workers))
            }
        }
        let flop = 2 * Double(size * size * size) * Double(workers * rounds)
        return (flop / best / 1e9, flop / bestCPU / 1e9, fixed?.kernelName ?? runtime?.kernelName ?? "")
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["MOE_BENCH"] == "1"))
    func f32Peak() {
        let workers = ProcessInfo.processInfo.activeProcessorCount
        var rates: [(GEMMKernel, (wall: Double, cpu: Double, name: String))] = []
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
        // BF16 beside it: the split-BF16 ERC products need more than twice the f32 rate to pay,
        // bf16 training's runtime-size products more than the f32 rate
        if OneDNN.hasBF16Products {
            for anyShape in [false, true] {
                let r = perCoreRate(kernel: .oneDNN, size: 2048, workers: workers, inputs: .bf16, anyShape: anyShape)
                print(
                    String(
                        format: "BENCH bf16 GEMM 2048^3, %d workers x one-core products, onednn %@ (%@): %.0f GFLOP/s = %.2fx the f32 peak",
                        workers, anyShape ? "runtime sizes" : "fixed shape", r.name, r.wall, r.wall / wall))
            }
        } else {
            print("BENCH bf16 GEMM: oneDNN has no BF16 products on this CPU")
        }
    }
}
