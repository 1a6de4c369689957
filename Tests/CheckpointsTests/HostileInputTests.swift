import Foundation
import Tensors
import TestSupport
import Testing

@testable import Checkpoints

/// Inputs that used to crash, hang, lose data or be refused although valid (issue 10).
@Suite struct HostileInputTests {
    /// A safetensors file image with `header` as its JSON and `data` as its buffer.
    func image(_ header: String, _ data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        var n = UInt64(h.count).littleEndian
        return withUnsafeBytes(of: &n) { Array($0) } + h + data
    }

    func write(_ bytes: [UInt8], _ path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func fifoIsRefusedWithoutBlocking() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fifo = dir + "/model.safetensors"
        #expect(mkfifo(fifo, 0o600) == 0)
        // Before the fix, open(2) blocked here for ever, waiting for a writer.
        let e = #expect(throws: CheckpointError.self) { try Checkpoint.open(fifo) }
        #expect(e?.description.contains("FIFO") == true, "\(String(describing: e))")
        let config = dir + "/config.json"
        #expect(mkfifo(config, 0o600) == 0)
        #expect(throws: CheckpointError.self) { try ModelConfig(contentsOf: config) }
    }

    @Test func fileTruncatedWhileReadIsAnErrorNotSIGBUS() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = dir + "/m.safetensors"
        let values = (0..<(1 << 20)).map { Float($0) }
        try SafetensorsWriter.write([(TensorSpec(name: "w", dtype: .bf16, shape: [1 << 20]), Tensor(shape: [1 << 20], storage: values))], to: p)
        let ck = try Checkpoint.open(p)
        #expect(truncate(p, 4096) == 0)  // another process cuts the file short
        var out = [Float](repeating: 0, count: 1 << 20)
        let e = #expect(throws: CheckpointError.self) {
            try out.withUnsafeMutableBufferPointer { b in try ck.read("w", into: b) }
        }
        #expect(e?.description.contains("truncated") == true, "\(String(describing: e))")
    }

    @Test func headerMayStartWithSpaces() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = dir + "/m.safetensors"
        try write(image("   {\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", [0, 0, 0x80, 0x3F]), p)
        let t = try Checkpoint.open(p).tensor("a")
        #expect(t.storage == [1])
    }

    @Test func canonicallyEquivalentNamesAreDistinctTensors() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = dir + "/m.safetensors"
        // "café" in NFC and in NFD: two names for safetensors and Python, one for Swift's ==.
        let header =
            "{\"caf\u{E9}\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"cafe\u{301}\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        try write(image(header, [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]), p)
        let ck = try Checkpoint.open(p)
        #expect(ck.tensors.count == 2)
        #expect(try ck.tensor("caf\u{E9}").storage == [1])
        #expect(try ck.tensor("cafe\u{301}").storage == [2])
    }

    @Test func configDuplicateKeyTakesTheLastValueAsTransformersDoes() throws {
        let c = try ModelConfig(text: "{\"num_experts\": 8, \"num_experts\": 64}", source: "config.json")
        #expect(c.expertCount == 64)
    }

    @Test func indexShardsInSubfoldersWithEqualBaseNames() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (sub, v) in [("a", Float(1)), ("b", Float(2))] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
            try SafetensorsWriter.write(
                [(TensorSpec(name: "w." + sub, dtype: .f32, shape: [1]), Tensor(shape: [1], storage: [v]))],
                to: dir + "/\(sub)/model.safetensors")
        }
        let index = "{\"metadata\":{},\"weight_map\":{\"w.a\":\"a/model.safetensors\",\"w.b\":\"b/model.safetensors\"}}"
        try index.write(toFile: dir + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
        let ck = try Checkpoint.open(dir)
        #expect(try ck.tensor("w.a").storage == [1])
        #expect(try ck.tensor("w.b").storage == [2])
    }

    @Test func shardsOutsideTheFolderAreRefused() throws {
        let dir = temporaryFolder(), other = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: other) }
        try SafetensorsWriter.write([(TensorSpec(name: "w", dtype: .f32, shape: [1]), Tensor(shape: [1], storage: [1]))], to: other + "/x.safetensors")
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.safetensors", withDestinationPath: other + "/x.safetensors")
        for (shard, words) in [
            (other + "/x.safetensors", "absolute path"), ("../" + (other as NSString).lastPathComponent + "/x.safetensors", "outside"),
            ("link.safetensors", "outside"),
        ] {
            let index = "{\"weight_map\":{\"w\":\"\(shard)\"}}"
            try index.write(toFile: dir + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
            let e = #expect(throws: CheckpointError.self) { try Checkpoint.open(dir) }
            #expect(e?.description.contains(words) == true, "\(shard): \(String(describing: e))")
        }
    }

    @Test func csvQuotesWhatMustBeQuotedAndReadsItBack() throws {
        let fields = ["runs/a,b/step100", "say \"hi\"", "line\nbreak", "plain", ""]
        let text = CSV.record(fields) + CSV.record(["1", "2", "3", "4", "5"]) + "6,7"
        let parsed = try CSV.parse(text, source: "t.csv")
        #expect(parsed.records == [fields, ["1", "2", "3", "4", "5"]])
        #expect(parsed.partial == ["6", "7"])
        #expect(throws: CheckpointError.self) { try CSV.parse("a,\"b\n", source: "t.csv") }
        #expect(throws: CheckpointError.self) { try CSV.parse("a,b\"c\"\n", source: "t.csv") }
    }
}
