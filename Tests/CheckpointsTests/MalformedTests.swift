import Foundation
import TestSupport
import Testing

@testable import Checkpoints

/// Every malformed input gets a CheckpointError naming the file and the problem; none traps.
@Suite struct MalformedTests {
    static let cases: [(String, String)] = [
        ("empty.safetensors", "empty file"),
        ("five-bytes.safetensors", "too short"),
        ("header-length-past-end.safetensors", "past the end"),
        ("header-length-too-large.safetensors", "100 MB"),
        ("header-not-json.safetensors", "not valid JSON"),
        ("header-invalid-utf8.safetensors", "UTF-8"),
        ("header-json-array.safetensors", "does not start with '{'"),
        ("offsets-past-end.safetensors", "past the"),
        ("overlapping-offsets.safetensors", "overlap"),
        ("shape-overflow.safetensors", "overflow"),
        ("shape-byte-mismatch.safetensors", "needs 24 bytes"),
        ("negative-shape.safetensors", "negative"),
        ("non-integer-shape.safetensors", "non-integer"),
        ("unknown-dtype.safetensors", "unknown dtype 'F7'"),
        ("duplicate-names.safetensors", "duplicate key"),
        ("duplicate-names-identical.safetensors", "duplicate key"),
        ("hole-between-tensors.safetensors", "hole"),
        ("trailing-bytes.safetensors", "cover"),
        ("offsets-reversed.safetensors", "reversed"),
        ("missing-shard", "missing"),
        ("corrupt.h5", "HDF5"),
        ("garbage.h5", "HDF5"),
    ]

    @Test(arguments: cases)
    func rejected(_ file: String, _ phrase: String) {
        let path = fixtures + "/malformed/" + file
        do {
            let c = try Checkpoint.open(path)
            // HDF5 truncation may only show when data is read.
            for t in c.tensors { _ = try c.tensor(t.name) }
            Issue.record("\(file) was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("malformed/" + file) || text.contains("malformed/missing-shard"), "\(text)")
            #expect(text.contains(phrase), "\(file): \(text)")
            #expect(!text.contains("\n"), "one line: \(text)")
        }
    }

    @Test func validControlIsAccepted() throws {
        let c = try Checkpoint.open(fixtures + "/malformed/valid.safetensors")
        #expect(try c.tensor("a").storage == [1, 2, 3, 4])
    }

    @Test func jsonParserLimitsAndEscapes() throws {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(String(repeating: "[", count: 10_000)) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\"a\":1,\"a\":2}") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\"a\":1} x") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("\"\\ud800\"") }
        let v = try JSONParser.parse("{\"k\\u00e9\\n\":[1,-2.5e3,true,null,\"\\ud83d\\ude00\"]}")
        #expect(v["k\u{e9}\n"] == .array([.int(1), .number(-2500), .bool(true), .null, .string("\u{1F600}")]))
        #expect(try JSONParser.parse(v.serialized()) == v)
    }

    @Test func truncatedCopiesOfAValidFileNeverTrap() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/olmoe-tiny/model.safetensors"))
        let dir = temporaryFolder()
        var rejected = 0
        for cut in [0, 1, 7, 8, 9, 100, 1000, data.count / 2, data.count - 1] {
            let p = dir + "/cut\(cut).safetensors"
            try data.prefix(cut).write(to: URL(fileURLWithPath: p))
            do { _ = try SafetensorsFile(path: p) } catch { rejected += 1 }
        }
        #expect(rejected == 9)
    }
}
