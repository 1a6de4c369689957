import Testing
import Tensors

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
        a.withUnsafeBytes { ab in bT.withUnsafeBytes { bb in c.withUnsafeMutableBufferPointer { cb in
            p.run(a: ab.baseAddress!, b: bb.baseAddress!, c: cb.baseAddress!, scratch: scratch)
        } } }
        #expect(c == [117, 129, -7, 279, 309, -7])
        // A^T stored [k, m]: the same product from [[1,4],[2,5],[3,6]]
        let aT: [Float] = [1, 4, 2, 5, 3, 6]
        let q = try #require(ThreadProduct(m: 2, n: 2, k: 3, transA: true, transB: true, kernel: kernel))
        var d = [Float](repeating: 0, count: 4)
        aT.withUnsafeBytes { ab in bT.withUnsafeBytes { bb in d.withUnsafeMutableBufferPointer { cb in
            q.run(a: ab.baseAddress!, b: bb.baseAddress!, c: cb.baseAddress!, scratch: ThreadProduct.Scratch(for: q))
        } } }
        #expect(d == [58, 64, 139, 154])
    }

    @Test func bf16ProductsNeedOneDNNAndAccumulateInFloat() throws {
        guard OneDNN.isAvailable else {
            #expect(ThreadProduct(m: 1, n: 1, k: 1, inputs: .bf16) == nil)
            return
        }
        #expect(ThreadProduct(m: 1, n: 1, k: 1, inputs: .bf16, kernel: .openBLAS) == nil)
        // 1.5 * 3 + 0.25 * (-2) + 1024 * 0.0078125 = 4.5 - 0.5 + 8 = 12 (every value exact in BF16)
        let a: [UInt16] = [1.5, 0.25, 1024].map { Conversion.bf16Bits($0) }
        let b: [UInt16] = [3, -2, 0.0078125].map { Conversion.bf16Bits($0) }
        let p = try #require(ThreadProduct(m: 1, n: 1, k: 3, inputs: .bf16))
        var c: [Float] = [0]
        a.withUnsafeBytes { ab in b.withUnsafeBytes { bb in c.withUnsafeMutableBufferPointer { cb in
            p.run(a: ab.baseAddress!, b: bb.baseAddress!, c: cb.baseAddress!, scratch: ThreadProduct.Scratch(for: p))
        } } }
        #expect(c == [12])
    }

    @Test func kernelDescriptionNamesWhatRuns() {
        let text = GEMMKernel.description
        #expect(text.hasPrefix(GEMMKernel.preferred == .oneDNN ? "onednn 2." : "openblas"))
    }
}
