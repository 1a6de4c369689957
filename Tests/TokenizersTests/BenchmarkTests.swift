import Foundation
import Testing

@testable import Tokenizers

/// Encoding 10 MB of text on one thread (skipped unless MOE_BENCH=1); scripts/bench_tokenize.py
/// times Hugging Face `tokenizers` on the same text.
///
/// MOE_BENCH_TOKENIZER names the tokenizer.json (default: the gpt2 fixture); MOE_BENCH_IDS, if
/// set, receives the ids as .npy for `bench_tokenize.py --compare`.
@Suite struct BenchmarkTests {
    static let env = ProcessInfo.processInfo.environment

    /// kjv-train.txt repeated and cut at 10,000,000 bytes (as bench_tokenize.py builds it).
    static func benchText() throws -> [UInt8] {
        let corpus = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtures + "/corpus/kjv-train.txt")))
        var text: [UInt8] = []
        text.reserveCapacity(10_000_000 + corpus.count)
        while text.count < 10_000_000 { text += corpus }
        return Array(text.prefix(10_000_000))
    }

    @Test(.enabled(if: env["MOE_BENCH"] == "1"))
    func encodeTenMegabytesOnOneThread() throws {
        let path = Self.env["MOE_BENCH_TOKENIZER"] ?? tokenizerFixtures + "/gpt2.json"
        let loadStart = Date()
        let tok = try Tokenizer(contentsOf: path)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let text = try Self.benchText()
        var best = Double.infinity
        var ids: [Int32] = []
        for _ in 0..<3 {
            let t0 = Date()
            ids = try tok.encode(utf8: text, source: "bench text")
            best = min(best, Date().timeIntervalSince(t0))
        }
        print(
            String(
                format: "moe-inspect Tokenizers encode: %.3f s, %.2f MB/s, %d tokens (%@, vocabulary %d, loaded in %.3f s)",
                best, 10.0 / best, ids.count, path, tok.vocabularySize, loadSeconds))
        if let out = Self.env["MOE_BENCH_IDS"] {
            try TokenArrayFile.npy(ids).write(to: URL(fileURLWithPath: out))
        }
        #expect(ids.count > 1_000_000)
    }
}
