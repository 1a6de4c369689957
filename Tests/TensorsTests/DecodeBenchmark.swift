import Foundation
import Tensors
import Testing

/// BF16 -> Float32 decoding rate (run by `make bench` with MOE_BENCH=1; skipped otherwise).
@Suite struct DecodeBenchmark {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MOE_BENCH"] == "1"))
    func bf16DecodeRate() {
        let count = 128 << 20  // 128 M elements: 256 MB in, 512 MB out
        var src = [UInt16](repeating: 0, count: count)
        for i in stride(from: 0, to: count, by: 4096) { src[i] = UInt16(truncatingIfNeeded: i) }
        var dst = [Float](repeating: 0, count: count)
        var best = Double.infinity
        for _ in 0..<5 {
            let t = Date()
            src.withUnsafeBytes { s in
                dst.withUnsafeMutableBufferPointer { d in Conversion.decode(.bf16, from: s.baseAddress!, count: count, into: d.baseAddress!) }
            }
            best = min(best, Date().timeIntervalSince(t))
        }
        print(String(format: "BENCH bf16 decode, one core: %.2f GB/s of Float32 output (%.0f ms for 512 MB)", Double(count * 4) / best / 1e9, best * 1000))
        #expect(dst[4096] == Float(bitPattern: UInt32(4096) << 16))
    }
}
