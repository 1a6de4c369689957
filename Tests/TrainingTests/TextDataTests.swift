import Foundation
import Testing
import Tokenizers

@testable import Training

/// `.txt` training and routing data read through a `tokenizer.json`: the ids Hugging Face
/// `tokenizers` gives for the whole held-out corpus (fixtures/tokenizers/expected/kjv-eval.json,
/// written by make_tokenizer_fixtures.py), and the refusals.
@Suite struct TextDataTests {
    static let fixtures = URL(fileURLWithPath: #filePath).appendingPathComponent("../../../fixtures").standardized.path
    static let corpus = fixtures + "/corpus/kjv-eval.txt"

    struct Expected: Decodable {
        struct Encoding: Decodable { let count: Int; let first: [Int32]; let last: [Int32]; let sum: Int }
        let encodings: [String: Encoding]
    }

    static func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: fixtures + "/tokenizers/expected/kjv-eval.json")))
    }

    func ids(_ d: TokenData) -> [Int32] {
        var out = [Int32](repeating: -1, count: d.count)
        out.withUnsafeMutableBufferPointer { d.copyWindow(0, length: d.count - 1, into: $0.baseAddress!) }
        return out
    }

    @Test(arguments: ["gpt2", "qwen2", "llama2", "metaspace", "llama3", "deepseek-v3"])
    func textIsEncodedAsTokenizersDoes(style: String) throws {
        let want = try #require(try Self.expected().encodings[style])
        let tok = try Tokenizer(contentsOf: Self.fixtures + "/tokenizers/\(style).json")
        let d = try TokenData(path: Self.corpus, vocabularySize: 1024, tokenizer: tok)
        #expect(d.count == want.count)
        #expect(d.dtype == .int32 && d.tokenizerSource == tok.source)
        let got = ids(d)
        #expect(Array(got.prefix(16)) == want.first)
        #expect(Array(got.suffix(16)) == want.last)
        #expect(got.reduce(0) { $0 + Int($1) } == want.sum)
    }

    @Test func aTokenizerLargerThanTheModelIsRefused() throws {
        let tok = try Tokenizer(contentsOf: Self.fixtures + "/tokenizers/gpt2.json")  // 905 ids
        let e = #expect(throws: TrainingError.self) { try TokenData(path: Self.corpus, vocabularySize: 256, tokenizer: tok) }
        #expect(e?.description.contains("905 ids") == true && e?.description.contains("not this model's tokenizer") == true, "\(String(describing: e))")
        let d = #expect(throws: TrainingError.self) { try TokenData(path: Self.corpus, vocabularySize: 1024, binaryDType: .uint16, tokenizer: tok) }
        #expect(d?.description.contains("dataDType uint16 does not apply") == true, "\(String(describing: d))")
    }

    @Test func textThatIsNotUTF8IsOneError() throws {
        let dir = NSTemporaryDirectory() + "moe-text-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data([0x61, 0x62, 0xFF, 0x63]).write(to: URL(fileURLWithPath: dir + "/bad.txt"))
        let tok = try Tokenizer(contentsOf: Self.fixtures + "/tokenizers/gpt2.json")
        let e = #expect(throws: TrainingError.self) { try TokenData(path: dir + "/bad.txt", vocabularySize: 1024, tokenizer: tok) }
        #expect(e?.description == dir + "/bad.txt: is not UTF-8 text (invalid byte 0xFF at offset 2)", "\(String(describing: e))")
        // token ids files ignore the tokenizer
        let npy = Self.fixtures + "/routing/tokens.npy"
        #expect(try TokenData(path: npy, vocabularySize: 1024, tokenizer: tok).tokenizerSource == nil)
    }
}
