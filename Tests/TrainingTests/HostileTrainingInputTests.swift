import Checkpoints
import Foundation
import Tensors
import Testing

@testable import Training

/// Token files, configs, options and saved states that used to crash, allocate without bound or
/// lose the user's rows (issue 10, items 2, 3, 4, 13, 14).
@Suite struct HostileTrainingInputTests {
    /// A `.npy` file with `header` (padded as NumPy pads it) and `data`.
    func npy(_ header: String, _ data: [UInt8], _ path: String) throws {
        var h = header
        while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
        h += "\n"
        var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        d.append(contentsOf: [UInt8(h.utf8.count & 0xFF), UInt8(h.utf8.count >> 8)])
        d.append(contentsOf: Array(h.utf8) + data)
        try d.write(to: URL(fileURLWithPath: path))
    }

    @Test(arguments: [
        ("{'descr': '<u2', 'fortran_order': False, 'shape': (9223372036854775807,), }", "promises"),
        ("{'descr': '<u4', 'fortran_order': False, 'shape': (4611686018427387904,), }", "promises"),
        ("{'descr': '<u2', 'fortran_order': False, 'shape': (99999999999999999999,), }", "dimension"),
        ("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), 'x': \"'descr': '<u1'\", }", "unexpected key"),
        ("{'shape': (3,), 'fortran_order': False, 'note': \"'descr': '<u2'\"}", "unexpected key"),
        ("{'descr': '<u2', 'descr': '<u2', 'fortran_order': False, 'shape': (3,), }", "twice"),
        ("{'descr': '<u2', 'fortran_order': False, 'shape': (3, 2), }", "1-D"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", "not a token type"),
        ("{'descr': '<u2', 'fortran_order': True, 'shape': (3,), }", "Fortran"),
        ("{'descr': '<u2', 'fortran_order': False, 'shape': (3,) } trailing", "after the header"),
    ])
    func npyHeadersAreParsedAsNumPyParsesThem(_ header: String, _ words: String) throws {
        let dir = temporaryFolder("npy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try npy(header, [1, 0, 2, 0, 3, 0], dir + "/t.npy")
        let e = #expect(throws: TrainingError.self) { try TokenData(path: dir + "/t.npy", vocabularySize: 64) }
        #expect(e?.description.contains(words) == true, "\(String(describing: e))")
    }

    @Test func aFolderOrFIFOAsDataIsAClearError() throws {
        let dir = temporaryFolder("data")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let e = #expect(throws: TrainingError.self) { try TokenData(path: dir, vocabularySize: 64) }
        #expect(e?.description.contains("a folder") == true && e?.description.contains("Cocoa") == false, "\(String(describing: e))")
        #expect(mkfifo(dir + "/fifo.bin", 0o600) == 0)
        let f = #expect(throws: TrainingError.self) { try TokenData(path: dir + "/fifo.bin", vocabularySize: 64) }
        #expect(f?.description.contains("FIFO") == true, "\(String(describing: f))")
    }

    @Test func textIsNeverReadAsByteIdsForALargeVocabulary() throws {
        let dir = temporaryFolder("txt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "In the beginning".write(toFile: dir + "/t.txt", atomically: true, encoding: .utf8)
        #expect(try TokenData(path: dir + "/t.txt", vocabularySize: 256).count == 16)
        let e = #expect(throws: TrainingError.self) { try TokenData(path: dir + "/t.txt", vocabularySize: 50304) }
        #expect(e?.description.contains("pass a tokenizer file") == true && e?.description.contains("t.txt") == true, "\(String(describing: e))")
    }

    @Test func configsTooLargeForTheMachineAreRefusedBeforeAllocating() throws {
        var json = try #require(
            try JSONParser.parse(try String(contentsOfFile: Fixtures.path("tiny-config.json"), encoding: .utf8), rejectDuplicateKeys: false).objectPairs)
        json.removeAll { $0.0 == "vocab_size" }
        json.append(("vocab_size", .int(1_000_000_000_000)))
        let e = #expect(throws: TrainingError.self) { try OlmoeConfig(json: .object(json), source: "config.json") }
        #expect(e?.description.contains("more than this machine") == true, "\(String(describing: e))")
        var eps = try #require(
            try JSONParser.parse(try String(contentsOfFile: Fixtures.path("tiny-config.json"), encoding: .utf8), rejectDuplicateKeys: false).objectPairs)
        eps.removeAll { $0.0 == "rms_norm_eps" }
        eps.append(("rms_norm_eps", .number(-1e-5)))
        let n = #expect(throws: TrainingError.self) { try OlmoeConfig(json: .object(eps), source: "config.json") }
        #expect(n?.description.contains("rms_norm_eps") == true)
    }

    @Test func hugeBatchesAreRefusedBeforeAllocating() throws {
        let dir = temporaryFolder("batch")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try TrainerTests.corpus(dir)
        var o = TrainerTests.options()
        o.batchSize = 1 << 62
        let (m, f) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let e = #expect(throws: TrainingError.self) { try Trainer(model: m, format: f, data: data, options: o, outputFolder: dir + "/run") }
        #expect(e?.description.contains("lower batchSize or sequenceLength") == true, "\(String(describing: e))")
    }

    @Test func aCorruptedTrainerStateChangesNothing() throws {
        let dir = temporaryFolder("state")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try TrainerTests.corpus(dir)
        var o = TrainerTests.options()
        o.steps = 3
        let (m, f) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        try Trainer(model: m, format: f, data: data, options: o, outputFolder: dir + "/run").run()
        let statePath = dir + "/run/step3/trainer_state.json"
        let log = try Data(contentsOf: URL(fileURLWithPath: dir + "/run/log.csv"))
        let original = try String(contentsOfFile: statePath, encoding: .utf8)
        for (from, to) in [
            ("\"step\" : 3", "\"step\" : -5"), ("\"batchSize\" : 2", "\"batchSize\" : 4611686018427387904"),
            ("\"step\" : 3", "\"step\" : 7"),
        ] {
            try original.replacingOccurrences(of: from, with: to).write(toFile: statePath, atomically: true, encoding: .utf8)
            #expect(throws: TrainingError.self) { try Trainer.resume(from: dir + "/run", data: data, outputFolder: dir + "/run") }
            #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/run/log.csv")) == log, "log.csv changed after '\(to)'")
            let entries = try FileManager.default.contentsOfDirectory(atPath: dir + "/run")
            #expect(!entries.contains { $0.hasPrefix("step-") || $0 == "step8" }, "\(entries)")
        }
        // Another data file of the same length is refused too.
        try original.write(toFile: statePath, atomically: true, encoding: .utf8)
        let other = try TrainerTests.corpus(dir + "/run", count: data.count, vocabulary: 63)
        let e = #expect(throws: TrainingError.self) { try Trainer.resume(from: dir + "/run", data: other, outputFolder: dir + "/run") }
        #expect(e?.description.contains("other ones") == true, "\(String(describing: e))")
    }

    @Test func aRunFolderIsRecognisedOrRefused() throws {
        let dir = temporaryFolder("runfolder")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "my notes".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        #expect(throws: TrainingError.self) { try RunFolder.create(dir) }
        #expect(throws: TrainingError.self) { try RunFolder.open(dir) }
        #expect(try String(contentsOfFile: dir + "/notes.txt", encoding: .utf8) == "my notes")
    }
}
