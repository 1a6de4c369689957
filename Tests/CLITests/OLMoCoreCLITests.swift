import Foundation
import Testing

/// End-to-end runs of `moe-inspect` on the OLMo-core fixtures (written by ai2-olmo-core 3.0):
/// a training step folder, its unsharded safetensors export and its Hugging Face export give the
/// same analysis, and `convert` writes the very file OLMo-core's export (saved by transformers) is.
@Suite struct OLMoCoreCLITests {
    static let root = CLITests.fixtures + "/olmo-core"

    func run(_ args: [String]) throws -> CLITests.Run { try CLITests().run(args) }

    func ercRows(_ path: String) throws -> [[String]] {
        let r = try run(["erc", path, "--no-noise", "--alpha", "1", "--alpha", "0.5", "--csv", "-", "-q"])
        #expect(r.status == 0, "\(path): \(r.stderr)")
        return r.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    @Test func infoOnEveryForm() throws {
        for (p, family) in [
            ("dropless/step3", "olmo_core"), ("dropless/step3/model_and_optim", "olmo_core"),
            ("dropless-unsharded", "olmo_core"), ("dropless-hf", "flex_olmo"), ("default/step2", "olmo_core"),
        ] {
            let r = try run(["info", "--json", Self.root + "/" + p])
            #expect(r.status == 0, "\(p): \(r.stderr)")
            let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            #expect(o?["family"] as? String == family, "\(p)")
            #expect(o?["experts"] as? Int == 8)
            #expect(o?["top_k"] as? Int == 2)
            #expect(o?["expert_intermediate_size"] as? Int == 16)
            #expect((o?["problems"] as? [Any])?.isEmpty == true, "\(p): \(r.stdout)")
        }
        let text = try run(["info", Self.root + "/dropless/step3"]).stdout
        #expect(text.contains("olmo-core distributed"))
        #expect(text.contains("OLMo-core dropless MoE"))
    }

    /// ERC loss, eps and alpha* of the three forms agree within 1e-5 (the CSV has 6 digits).
    @Test func ercAgreesAcrossForms() throws {
        let forms = [["dropless/step3", "dropless-unsharded", "dropless-hf"], ["default/step2", "default-hf"]]
        for group in forms {
            let tables = try group.map { try ercRows(Self.root + "/" + $0) }
            for t in tables.dropFirst() {
                #expect(t.count == tables[0].count)
                for (a, b) in zip(tables[0], t) {
                    for col in 2..<a.count {
                        if let x = Double(a[col]), let y = Double(b[col]) {
                            #expect(abs(x - y) <= 1e-5 * max(1, abs(x)), "\(group) column \(col): \(x) vs \(y)")
                        }
                    }
                }
            }
        }
    }

    @Test func convertWritesOLMoCoresHuggingFaceExport() throws {
        let dir = CLITests().temporaryFolder()
        for (step, reference) in [("dropless/step3", "dropless-hf"), ("default/step2", "default-hf")] {
            let out = dir + "/" + reference
            let r = try run(["convert", Self.root + "/" + step, out, "-q"])
            #expect(r.status == 0, "\(r.stderr)")
            let ours = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
            let theirs = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/" + reference + "/model.safetensors"))
            #expect(ours == theirs, "\(step): model.safetensors differs from OLMo-core's export")
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as? [String: Any]
            let ref =
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/" + reference + "/config.json"))) as? [String: Any]
            for k in [
                "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "num_experts", "num_experts_per_tok", "vocab_size", "tie_word_embeddings",
            ] {
                #expect("\(config?[k] ?? "-")" == "\(ref?[k] ?? "-")", "\(k)")
            }
        }
        // Refuses to replace an existing output.
        #expect(try run(["convert", Self.root + "/dropless/step3", dir + "/dropless-hf", "-q"]).status != 0)
    }

    @Test func malformedIsOneLineNamingTheFile() throws {
        let r = try run(["info", Self.root + "/malformed/unknown-class"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("unknown-class/model_and_optim/.metadata"))
        #expect(r.stderr.contains("not among the classes"))
        #expect(r.stderr.split(separator: "\n").count == 1)
    }
}
