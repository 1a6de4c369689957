import Foundation
import Testing

/// `moe-inspect tokenize` and hub-cache names, end to end on the built binary.
extension CLITests {
    static let tokenizers = fixtures + "/tokenizers"

    /// Texts and ids written by tokenizers (fixtures/tokenizers/make_tokenizer_fixtures.py).
    func peerCase(_ style: String, _ index: Int) throws -> (String, [Int]) {
        let texts =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CLITests.tokenizers + "/expected/texts.json"))) as? [String: Any]
        let expected =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CLITests.tokenizers + "/expected/\(style).json"))) as? [String: Any]
        let text = try #require((texts?["texts"] as? [String])?[index])
        let ids = try #require((expected?["ids"] as? [[Int]])?[index])
        return (text, ids)
    }

    @Test(arguments: ["qwen2", "llama2", "gpt2"])
    func tokenizePrintsThePeersIds(style: String) throws {
        let dir = temporaryFolder()
        for index in [10, 60, 200, 400] {
            let (text, ids) = try peerCase(style, index)
            let file = dir + "/text-\(index).txt"
            try Data(text.utf8).write(to: URL(fileURLWithPath: file))
            let r = try run(["tokenize", CLITests.tokenizers + "/\(style).json", "--text", file, "-q"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { Int($0) ?? -1 } == ids, "\(style) \(index)")
        }
    }

    @Test func tokenizeWritesNpyAtomicallyAndNeverOverAnInput() throws {
        let dir = temporaryFolder()
        let text = dir + "/in.npy"  // a text file whose name looks like an output
        try Data("And God said, Let there be light.".utf8).write(to: URL(fileURLWithPath: text))
        let r = try run(["tokenize", CLITests.tokenizers + "/gpt2.json", "--text", text, "--npy", dir + "/out.npy", "--stats", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("bytes per token") && r.stdout.contains("top tokens"))
        let npy = try Data(contentsOf: URL(fileURLWithPath: dir + "/out.npy"))
        #expect(npy.prefix(6) == Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]))
        #expect(String(decoding: npy.prefix(80), as: UTF8.self).contains("'descr': '<i4'"))
        let clash = try run(["tokenize", CLITests.tokenizers + "/gpt2.json", "--text", text, "--npy", text, "-q"])
        #expect(clash.status == 1)
        #expect(clash.stderr.hasPrefix("moe-inspect: error: ") && clash.stderr.contains("is an input"), "\(clash.stderr)")
        #expect(try String(contentsOfFile: text, encoding: .utf8) == "And God said, Let there be light.")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test func tokenizeErrorsAreOneLine() throws {
        let dir = temporaryFolder()
        try Data([0x61, 0xFF]).write(to: URL(fileURLWithPath: dir + "/bad.txt"))
        for args in [
            ["tokenize", CLITests.tokenizers + "/gpt2.json", "--text", dir + "/bad.txt"],
            ["tokenize", CLITests.tokenizers + "/gpt2.json", "--text", dir + "/missing.txt"],
            ["tokenize", CLITests.fixtures + "/olmoe-tiny", "--text", dir + "/bad.txt"],
            ["tokenize", CLITests.fixtures + "/malformed/valid.safetensors", "--text", dir + "/bad.txt"],
        ] {
            let r = try run(args)
            #expect(r.status == 1, "\(args)")
            #expect(r.stderr.hasPrefix("moe-inspect: error: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
    }

    @Test func hubCacheNamesOpenInCommands() throws {
        let env = ["HF_HUB_CACHE": CLITests.tokenizers + "/hub-cache"]
        let info = try run(["info", "moe-inspect/olmoe-tiny"], environment: env)
        #expect(info.status == 0, "\(info.stderr)")
        #expect(info.stdout.contains("olmoe"))
        let (text, ids) = try peerCase("gpt2", 60)
        let file = temporaryFolder() + "/t.txt"
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        let tok = try run(["tokenize", "moe-inspect/olmoe-tiny@v1.0", "--text", file, "-q"], environment: env)
        #expect(tok.status == 0, "\(tok.stderr)")
        #expect(tok.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { Int($0) ?? -1 } == ids)
        let miss = try run(["info", "moe-inspect/absent"], environment: env)
        #expect(miss.status == 1)
        #expect(miss.stderr.contains("huggingface-cli download moe-inspect/absent") && miss.stderr.contains("models--moe-inspect--absent"), "\(miss.stderr)")
    }
}
