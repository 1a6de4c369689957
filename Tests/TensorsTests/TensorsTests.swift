import Tensors
import Testing

@Suite struct TensorsTests {
    @Test func gemmMatchesHandComputedProduct() {
        // [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]] = [[58,64],[139,154]]
        let a = Tensor(shape: [2, 3], storage: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3, 2], storage: [7, 8, 9, 10, 11, 12])
        #expect(BLAS.matmul(a, b).storage == [58, 64, 139, 154])
        // a a^T = [[14, 32], [32, 77]]
        #expect(BLAS.matmul(a, a, transB: true).storage == [14, 32, 32, 77])
        #expect(BLAS.matmul(a, a, transA: true).shape == [3, 3])
    }

    @Test func bf16RoundsToNearestEven() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        #expect(Conversion.bf16Bits(1 + 0x1p-8) == 0x3F80)
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to even.
        #expect(Conversion.bf16Bits(1 + 3 * 0x1p-8) == 0x3F82)
        #expect(Conversion.bf16Bits(-2) == 0xC000)
        #expect(Conversion.bf16Bits(.infinity) == 0x7F80)
        #expect(Conversion.bf16Bits(.nan) & 0x7FC0 == 0x7FC0)
    }

    @Test func bf16RoundingOfArraysGivesTheScalarBitsOnEveryLane() {
        // 37 values (two full vectors and a tail of 5), the same cases as above in several lanes
        let cases: [Float] = [
            1 + 0x1p-8, 1 + 3 * 0x1p-8, -2, .infinity, -.infinity, 0, -0.0, 0x1p-130, .greatestFiniteMagnitude,
            Float(bitPattern: 0x7F80_0001), 3.14159,
        ]
        let values = (0..<37).map { cases[$0 % cases.count] }
        var bits = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { v in bits.withUnsafeMutableBufferPointer { Conversion.roundToBF16(v.baseAddress!, count: 37, into: $0.baseAddress!) } }
        // 2^-130 is subnormal in both (bits 0x0008_0000); the largest float rounds up to infinity
        let expected: [UInt16] = [0x3F80, 0x3F82, 0xC000, 0x7F80, 0xFF80, 0, 0x8000, 0x0008, 0x7F80, 0x7FC0, 0x4049]
        #expect(bits == (0..<37).map { expected[$0 % expected.count] })
        #expect(bits == values.map(Conversion.bf16Bits))
    }

    @Test func seededGeneratorIsReproducibleAndSplitsIndependently() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42)
        let xs = (0..<5).map { _ in a.next() }
        #expect(xs == (0..<5).map { _ in b.next() })
        var s1 = a.split(1), s2 = a.split(2)
        #expect(s1.next() != s2.next())
        var r = SeededGenerator(state: a.state)
        #expect(r.next() == a.next())
        var g = SeededGenerator(seed: 7)
        let u = (0..<10_000).map { _ in g.nextUnitDouble() }
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(abs(u.reduce(0, +) / 10_000 - 0.5) < 0.02)
        var normals = [Float](repeating: 0, count: 20_000)
        normals.withUnsafeMutableBufferPointer { g.fillNormal($0, std: 2) }
        let mean = normals.reduce(0, +) / 20_000
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 20_000
        #expect(abs(mean) < 0.05)
        #expect(abs(variance.squareRoot() - 2) < 0.05)
    }

    @Test func dtypeSpellings() {
        #expect(DType(userSpelling: "bfloat16") == .bf16)
        #expect(DType(userSpelling: "fp32") == .f32)
        #expect(DType(userSpelling: "F8_E4M3") == .f8e4m3)
        #expect(DType(userSpelling: "f7") == nil)
    }
}

@Suite struct BLASKernelTests {
    @Test func betterCoreTypeFollowsTheCPUFlags() {
        // Only meaningful when OpenBLAS chose a generic kernel; otherwise nothing is suggested.
        let generic = ["prescott", "core2", "nehalem"].contains(BLAS.coreName.lowercased())
        let avx512 = "processor : 0\nflags : fpu sse2 avx2 fma avx512f avx512vl avx512bw avx512dq\n"
        let avx2 = "flags : fpu sse2 avx2 fma\n"
        let old = "flags : fpu sse2 sse3\n"
        #expect(BLAS.betterCoreType(cpuinfo: avx512) == (generic ? "SkylakeX" : nil))
        #expect(BLAS.betterCoreType(cpuinfo: avx2) == (generic ? "Haswell" : nil))
        #expect(BLAS.betterCoreType(cpuinfo: old) == nil)
    }
}
