import Foundation
import Tensors

/// Reading the t-SNE fixtures written by `scripts/make_tsne_fixtures.py`.
enum TSNEFixtures {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/tsne")

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads a `MOEARRAY <dtype> <rows> <cols>\n` + little-endian data file as a `[rows, cols]` tensor.
    static func array(_ name: String) throws -> Tensor {
        let data = try Data(contentsOf: folder.appendingPathComponent(name))
        guard let newline = data.firstIndex(of: 0x0A),
            let header = String(data: data[data.startIndex..<newline], encoding: .ascii)
        else {
            throw FixtureError(description: "\(name): no header line")
        }
        let words = header.split(separator: " ")
        guard words.count == 4, words[0] == "MOEARRAY", let dtype = DType(rawValue: String(words[1])),
            let rows = Int(words[2]), let cols = Int(words[3])
        else {
            throw FixtureError(description: "\(name): bad header \(header)")
        }
        let body = data[(newline + 1)...]
        guard body.count == rows * cols * dtype.byteSize else {
            throw FixtureError(description: "\(name): \(body.count) bytes for \(rows) x \(cols) \(dtype)")
        }
        var out = [Float](repeating: 0, count: rows * cols)
        body.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { o in
                Conversion.decode(dtype, from: raw.baseAddress!, count: rows * cols, into: o.baseAddress!)
            }
        }
        return Tensor(shape: [rows, cols], storage: out)
    }

    /// Integer labels stored as a one-column array.
    static func labels(_ name: String) throws -> [Int] {
        try array(name).storage.map { Int($0) }
    }

    /// The peers' figures: `expected.json`, run name -> {"kl": ..., "seconds": ...}.
    static func expected() throws -> [String: [String: Any]] {
        let data = try Data(contentsOf: folder.appendingPathComponent("expected.json"))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FixtureError(description: "expected.json is not an object")
        }
        return object.compactMapValues { $0 as? [String: Any] }
    }

    static func peerKL(_ run: String) throws -> Double {
        guard let kl = try expected()[run]?["kl"] as? Double else {
            throw FixtureError(description: "expected.json has no kl for \(run)")
        }
        return kl
    }
}

/// Points from a seeded generator: `centers` Gaussian blobs (std 1) in `d` dimensions with
/// centres drawn uniformly from [-spread, spread]^d, `perCenter` points each.
func gaussianBlobs(centers: Int, perCenter: Int, d: Int, spread: Double, seed: UInt64) -> (Tensor, [Int]) {
    var rng = SeededGenerator(seed: seed)
    let middles = (0..<(centers * d)).map { _ in (2 * rng.nextUnitDouble() - 1) * spread }
    var values: [Float] = [], labels: [Int] = []
    for c in 0..<centers {
        for _ in 0..<perCenter {
            for k in 0..<d { values.append(Float(middles[c * d + k] + rng.nextNormal())) }
            labels.append(c)
        }
    }
    return (Tensor(shape: [centers * perCenter, d], storage: values), labels)
}
