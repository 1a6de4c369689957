import Foundation
import Tensors
import TestSupport
import Testing

@testable import Checkpoints

/// Tiny OLMo-core checkpoints with one defect each (fixtures/olmo-core/malformed, from
/// make_malformed.py): every one is refused with one line naming the file, never a trap, and no
/// pickle is ever executed.
@Suite struct MalformedOLMoCoreTests {
    static let root = fixtures + "/olmo-core/malformed"
    /// (case, the file the message names, a phrase it contains).
    static let cases: [(String, String, String)] = [
        ("truncated-metadata", ".metadata", "truncated"),
        ("unknown-class", ".metadata", "'posix.system', which is not among the classes"),
        ("unknown-opcode", ".metadata", "unsupported opcode"),
        ("compressed-entry", "__0_0.distcp", "is compressed"),
        ("evil-data-pkl", "__0_0.distcp", "'posix.system', which is not among the classes"),
        ("truncated-distcp", "__0_0.distcp", "past the end"),
        ("offset-out-of-range", "__0_0.distcp", "past the end"),
        ("overlapping-chunks", ".metadata", "overlap"),
        ("uncovered", ".metadata", "chunks cover 12 of its 24 elements"),
        ("missing-distcp", ".metadata", "__0_0.distcp, which is missing"),
        ("path-escape", ".metadata", "not a file in this folder"),
        ("no-storage-entry", ".metadata", "has no storage_data entry"),
        ("wrong-dtype", "__0_0.distcp", "holds F32 but the index says BF16"),
        ("wrong-shape", "__0_0.distcp", "holds a tensor of size [4, 3] but the index says [3, 4]"),
    ]

    @Test func validBaseReads() throws {
        let c = try Checkpoint.open(Self.root + "/valid")
        #expect(c.tensors.map(\.name) == ["w"])
        #expect(try c.tensor("w").storage == (0..<12).map(Float.init))
    }

    /// Column blocks (offsets along the second axis) reassemble in place.
    @Test func columnChunksReassemble() throws {
        let c = try Checkpoint.open(Self.root + "/valid-columns")
        #expect(c.info("w")?.shape == [4, 3])
        #expect(try c.tensor("w").storage == (0..<12).map(Float.init))
        let raw = try c.rawBytes("w")
        #expect(raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } == (0..<12).map(Float.init))
    }

    @Test(arguments: cases)
    func refused(_ name: String, _ file: String, _ phrase: String) {
        do {
            let c = try Checkpoint.open(Self.root + "/" + name)
            for t in c.tensors { _ = try c.tensor(t.name) }
            Issue.record("\(name) was accepted")
        } catch {
            let m = "\(error)"
            #expect(m.contains(phrase), "\(name): \(m)")
            #expect(m.contains(name + "/model_and_optim/" + file), "\(name): \(m)")
            #expect(!m.contains("\n"), "\(name): \(m)")
        }
    }

    /// A `.distcp` cut short after the checkpoint was opened gives an error when read, not SIGBUS.
    @Test func fileTruncatedAfterOpenIsAnError() throws {
        let dir = temporaryFolder() + "/step"
        try FileManager.default.copyItem(atPath: Self.root + "/valid", toPath: dir)
        let c = try Checkpoint.open(dir)
        let distcp = dir + "/model_and_optim/__0_0.distcp"
        let h = try #require(FileHandle(forWritingAtPath: distcp))
        try h.truncate(atOffset: 700)
        try h.close()
        #expect {
            _ = try c.tensor("w")
        } throws: { "\($0)".contains("__0_0.distcp") }
    }

    /// Every prefix of a real `.metadata` is refused cleanly (no trap, no hang).
    @Test func everyTruncationOfARealIndexIsRefused() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/olmo-core/dropless-2rank/step5/model_and_optim/.metadata"))
        var refused = 0
        for n in stride(from: 0, to: data.count, by: 97) {
            data.prefix(n).withUnsafeBytes { b in
                if (try? DistributedCheckpointMetadata(b, file: "x")) == nil { refused += 1 }
            }
        }
        #expect(refused == (data.count + 96) / 97)
    }

    /// Flipping bytes of a real index or archive gives a value or an error, never a trap.
    @Test func corruptedBytesNeverTrap() throws {
        let meta = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/valid/model_and_optim/.metadata"))
        let zip = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/valid/model_and_optim/__0_0.distcp"))
        var rng = SeededGenerator(seed: 12)
        for _ in 0..<2000 {
            var m = [UInt8](meta), z = [UInt8](zip)
            for _ in 0..<3 {
                m[Int.random(in: 0..<m.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                z[Int.random(in: 0..<z.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            fuzzOLMoCoreMetadata(m)
            z.withUnsafeBytes { _ = try? TorchSavedTensor($0, what: "z") }
        }
    }
}
