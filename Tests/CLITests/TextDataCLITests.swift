import Foundation
import Testing

/// `train` and `routing` on text through the model's own tokenizer.json, end to end.
extension CLITests {
    /// A folder with the demo config at a vocabulary of 1024 ids, and `tokenizer` beside it.
    func textModelFolder(tokenizer: String?) throws -> String {
        let dir = temporaryFolder()
        let config = try String(contentsOfFile: CLITests.fixtures + "/corpus/demo-config.json", encoding: .utf8)
        let big = config.replacingOccurrences(of: "\"vocab_size\": 256", with: "\"vocab_size\": 1024")
        #expect(big != config)
        try big.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        if let tokenizer { try FileManager.default.copyItem(atPath: CLITests.tokenizers + "/\(tokenizer).json", toPath: dir + "/tokenizer.json") }
        return dir
    }

    @Test func trainAndRoutingReadTextThroughTheTokenizer() throws {
        let dir = try textModelFolder(tokenizer: "gpt2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = CLITests.fixtures + "/corpus/kjv-eval.txt"
        let t = try run([
            "train", "--init", dir + "/config.json", "--data", text, "--out", dir + "/run", "--steps", "2",
            "--batch-size", "2", "--seq-len", "32",
        ])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stderr.contains("tokenizer \(dir)/tokenizer.json"), "\(t.stderr)")
        // 42708 tokens: what tokenizers gives for the file (fixtures/tokenizers/expected/kjv-eval.json)
        #expect(t.stderr.contains("on 42708 tokens"), "\(t.stderr)")
        let copied = try Data(contentsOf: URL(fileURLWithPath: dir + "/run/step2/tokenizer.json"))
        #expect(copied == (try Data(contentsOf: URL(fileURLWithPath: CLITests.tokenizers + "/gpt2.json"))))

        let r = try run(["routing", dir + "/run/step2", "--data", "bible=" + text, "--seq-len", "64", "--max-tokens", "2048", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("42708 tokens, 32 windows of 64 tokens"), "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        let layer = try #require((json.first?["layers"] as? [[String: Any]])?.first)
        #expect(layer["tokens"] as? Int == 2048)
        // the tokens each expert receives are decoded by the tokenizer: gpt2.json's id 587 is "In"
        #expect(r.stdout.contains("\"text\""), "no decoded tokens")
        let ids = try run(["routing", dir + "/run/step2", "--data", CLITests.fixtures + "/routing/tokens.npy", "--seq-len", "32", "--json", "-q"])
        #expect(ids.status == 0 && ids.stdout.contains("\"text\""), "\(ids.stderr)")
    }

    @Test func textWithoutATokenizerNeedsOneForALargeVocabulary() throws {
        let dir = try textModelFolder(tokenizer: nil)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = CLITests.fixtures + "/corpus/kjv-eval.txt"
        let no = try run(["train", "--init", dir + "/config.json", "--data", text, "--out", dir + "/run", "--steps", "1", "--seq-len", "16"])
        #expect(no.status == 1 && no.stderr.hasPrefix("moe-inspect: error: \(text): ") && no.stderr.contains("--tokenizer"), "\(no.stderr)")
        #expect(no.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/run"))
        let yes = try run([
            "train", "--init", dir + "/config.json", "--data", text, "--out", dir + "/run", "--steps", "1",
            "--batch-size", "1", "--seq-len", "16", "--tokenizer", CLITests.tokenizers + "/qwen2.json", "-q",
        ])
        #expect(yes.status == 0, "\(yes.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/run/step1/tokenizer.json"))
        // a tokenizer with more ids than the model is not the model's
        let small = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: small) }
        try FileManager.default.copyItem(atPath: CLITests.fixtures + "/corpus/demo-config.json", toPath: small + "/config.json")
        let wrong = try run([
            "train", "--init", small + "/config.json", "--data", text, "--out", small + "/run", "--steps", "1",
            "--tokenizer", CLITests.tokenizers + "/gpt2.json",
        ])
        #expect(wrong.status == 1 && wrong.stderr.contains("not this model's tokenizer"), "\(wrong.stderr)")
        // a broken tokenizer beside the model is an error, never bytes
        try Data("{\"model\": 3}".utf8).write(to: URL(fileURLWithPath: small + "/tokenizer.json"))
        let broken = try run(["train", "--init", small + "/config.json", "--data", text, "--out", small + "/run", "--steps", "1"])
        #expect(broken.status == 1 && broken.stderr.contains(small + "/tokenizer.json"), "\(broken.stderr)")
    }
}
