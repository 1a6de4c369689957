import Tensors
import Testing

/// `ThreadProduct` on every kernel present, against hand-computed products.
@Suite struct ThreadProductTests {
    static let kernels: [GEMMKernel] = OneDNN.isAvailable ? [.openBLAS, .oneDNN] : [.openBLAS]

    @Test(arguments: kernels)
    func f32ProductsWithTransposesScalesAndLeadingDimensions(_ kernel: GEMMKernel) throws {
        // A [[1,2,3],[4,5,6]], B [[7,8],[9,10],[11,12]]: A B = [[58,64],[139,154]]
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let bT: [Float] = [7, 9, 11, 8, 10, 12]  // B stored [n, k]
        let p = try #require(ThreadProduct(m: 2, n: 2, k: 3, transB: true, ldc: 3, alpha: 2, beta: 1, kernel: kernel))
        #expect(p.kernel == kernel)
        var c: [Float] = [1, 1, -7, 1, 1, -7]  // C [2, 2] with leading dimension 3; -7 must stay
        let scratch = ThreadProduct.Scratch(for: p)
        a.withUnsafeBytes { ab in
            bT.withUnsafeBytes { bb in
                c.withUnsafeMutableBufferPointer { cb in
                    p.run(a: ab.baseAddress!, b: bb.baseAddress!, c: cb.baseAddress!, scratch: scratch)
                }
            }
        }
        #expect(c == [117, 129, -7, 279, 309, -7])
        // A^T stored [k, m]: the same product from [[1,4],[2,5],[3,6]]
        let aT: [Float] = [1, 4, 2, 5, 3, 6]
        let q = try #require(ThreadProduct(m: 2, n: 2, k: 3, transA: true, transB: true, kernel: kernel))
        var d = [Float](repeating: 0, count: 4)
        aT.withUnsafeBytes { ab in
            bT.withUnsafeBytes { bb in
                d.withUnsafeMutableBufferPointer { cb in
                    q.run(a: ab.baseAddress!, b: bb.baseAddress!, c: cb.baseAddress!, scratch: ThreadProduct.Scratch(for: q))
                }
            }
        }
        #expect(d == [58, 64, 139, 154])
    }

    @Test func bf16ProductsNeedOneDNNAndAccumulateInFloat() throws {
        // OpenBLAS has no BF16 products, on any CPU
        #expect(ThreadProduct(m: 1, n: 1, k: 1, inputs: .bf16, kernel: .openBLAS) == nil)
        guard OneDNN.isAvailable else {
            #expect(ThreadProduct(m: 1, n: 1, k: 1, inputs: .bf16) == nil)
            return
        }
        // oneDNN's BF16 kernels exist only on CPUs with BF16 units that its build recognises
        guard OneDNN.hasBF16Products else { return }
        // 1.5 * 3 + 0.25 * (-2) + 1024 * 0.0078125 = 4.5 - 0.5 + 8 = 12 (every value exact in BF16)
        let a: [UInt16] = [1.5, 0.25, 1024].map { Conversion.bf16Bits($0) }
        let b: [UInt16] = [3, -2, 0.0078125].map { Conversion.bf16Bits($0) }
        let p = try #require(ThreadProduct(m: 1, n: 1, k: 3, inputs: .bf16))
        var c: [Float] = [0]
        a.withUnsafeBytes { ab in
            b.withUnsafeBytes { bb in
                c.withUnsafeMutableBufferPointer { cb in
                    p.run(a: ab.baseAddress!, b: bb.baseAddress!, c: cb.baseAddress!, scratch: ThreadProduct.Scratch(for: p))
                }
            }
        }
        #expect(c == [12])
    }

    /// Runs `p` on `a` and `b` given as Float, passed as f32 or as BF16 bits (every value here is
    /// exact in BF16) as `p` takes them.
    static func run(
        _ p: AnyShapeProduct, m: Int, n: Int, k: Int, a: [Float], lda: Int, b: [Float], ldb: Int,
        c: inout [Float], ldc: Int
    ) -> Bool {
        c.withUnsafeMutableBufferPointer { cb in
            if p.inputs == .f32 {
                return a.withUnsafeBytes { ab in
                    b.withUnsafeBytes { bb in
                        p.run(m: m, n: n, k: k, a: ab.baseAddress!, lda: lda, b: bb.baseAddress!, ldb: ldb, c: cb.baseAddress!, ldc: ldc)
                    }
                }
            }
            return a.map(Conversion.bf16Bits).withUnsafeBytes { ab in
                b.map(Conversion.bf16Bits).withUnsafeBytes { bb in
                    p.run(m: m, n: n, k: k, a: ab.baseAddress!, lda: lda, b: bb.baseAddress!, ldb: ldb, c: cb.baseAddress!, ldc: ldc)
                }
            }
        }
    }

    @Test func anyShapeProductsTakeTheirSizesAtEachRun() throws {
        guard OneDNN.isAvailable else {
            #expect(AnyShapeProduct(inputs: .bf16) == nil)
            return
        }
        // BF16 where this CPU has oneDNN's BF16 kernels (bf16ProductsNeedOneDNN... checks the refusal elsewhere)
        for inputs in OneDNN.hasBF16Products ? [ThreadProduct.Inputs.f32, .bf16] : [.f32] {
            // A [[1,2,3],[4,5,6]] stored transposed with leading dimension 3 (a padding column of
            // 99), B [[7,8],[9,10],[11,12]] stored [n, k]: A B = [[58,64],[139,154]], plus C (beta 1)
            let p = try #require(AnyShapeProduct(transA: true, transB: true, beta: 1, inputs: inputs))
            var c: [Float] = [1, 1, -7, 1, 1, -7]  // leading dimension 3; -7 must stay
            #expect(Self.run(p, m: 2, n: 2, k: 3, a: [1, 4, 99, 2, 5, 99, 3, 6, 99], lda: 3, b: [7, 9, 11, 8, 10, 12], ldb: 3, c: &c, ldc: 3))
            #expect(c == [59, 65, -7, 140, 155, -7])
            // the same product object on other sizes: A's first column against B's second row
            var d: [Float] = [0, 0]
            #expect(Self.run(p, m: 2, n: 1, k: 1, a: [1, 4], lda: 2, b: [8], ldb: 1, c: &d, ldc: 1))
            #expect(d == [8, 32])
            // plain layouts, a new shape again
            let q = try #require(AnyShapeProduct(inputs: inputs))
            var e: [Float] = [5]
            #expect(Self.run(q, m: 1, n: 1, k: 3, a: [1, 2, 3], lda: 3, b: [7, 9, 11], ldb: 1, c: &e, ldc: 1))
            #expect(e == [58])
        }
    }

    @Test func kernelDescriptionNamesWhatRuns() {
        let text = GEMMKernel.description
        #expect(text.hasPrefix(GEMMKernel.preferred == .oneDNN ? "onednn 2." : "openblas"))
    }
}
