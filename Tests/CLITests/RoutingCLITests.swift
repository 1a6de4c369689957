import Foundation
import Testing

/// `moe-inspect routing` end to end on the routing fixtures.
extension CLITests {
    @Test func routingJSONAssignmentsAndSaturation() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = CLITests.fixtures
        let r = try run([
            "routing", f + "/olmoe-tiny", f + "/routing/models/olmoe", "--data", "a=" + f + "/routing/tokens.npy",
            "--data", "b=" + f + "/routing/tokens-b.npy", "--seq-len", "32", "--json", "--assignments", dir + "/assign",
            "--out", dir + "/report", "-q",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        #expect(json.count == 2)
        let layers = try #require(json[0]["layers"] as? [[String: Any]])
        #expect(layers.count == 2)
        for key in ["layer", "tokens", "top_k", "counts", "coactivation", "agreement", "m_data", "saturation", "lb_loss_transformers", "lb_loss_olmo_core"] {
            #expect(layers[0][key] != nil, "missing \(key)")
        }
        #expect(layers[0]["tokens"] as? Int == 160 && layers[0]["top_k"] as? Int == 2)
        #expect((layers[0]["counts"] as? [Int])?.reduce(0, +) == 320)
        #expect(json[0]["domains"] as? [String] == ["a", "b"])
        // assignments: int32 [160, 2] per layer per checkpoint
        for sub in ["0-olmoe-tiny", "1-olmoe"] {
            for l in 0..<2 {
                let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/assign/\(sub)/layer\(l).npy"))
                #expect(data.count == 128 + 160 * 2 * 4, "\(sub) layer \(l)")
                let header = String(decoding: data.prefix(128), as: UTF8.self)
                #expect(header.contains("'descr': '<i4'") && header.contains("(160, 2)"))
            }
        }
        for file in ["index.html", "summary.json", "tables/routing.csv", "figures/expert_load.png", "figures/agreement.png", "figures/m_data_layer0.png"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/report/" + file), "\(file)")
        }
        // two checkpoints of different runs: no saturation figure (it would compare two models)
        #expect(!FileManager.default.fileExists(atPath: dir + "/report/figures/saturation.png"))
    }

    @Test func routingDataErrors() throws {
        let f = CLITests.fixtures
        #expect(try run(["routing", "--help"]).stdout.contains("USAGE"))
        let missing = try run(["routing", f + "/olmoe-tiny"])
        #expect(missing.status != 0 && missing.stderr.contains("--data"))
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // text as bytes: fine for a byte-level vocabulary, a byte beyond it is one clear error
        try Data("hello world, hello routing".utf8).write(to: URL(fileURLWithPath: dir + "/a.txt"))
        let ok = try run(["routing", f + "/olmoe-tiny", "--data", dir + "/a.txt", "--seq-len", "8", "--csv", "-", "-q"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.hasPrefix("checkpoint,step,layer,tokens"))
        try Data([104, 200, 105, 106, 107]).write(to: URL(fileURLWithPath: dir + "/b.txt"))
        let bad = try run(["routing", f + "/olmoe-tiny", "--data", dir + "/b.txt", "--seq-len", "2"])
        #expect(bad.status == 1 && bad.stderr.contains("outside the vocabulary"), "\(bad.stderr)")
        let short = try run(["routing", f + "/olmoe-tiny", "--data", dir + "/a.txt", "--seq-len", "100"])
        #expect(short.status == 1 && short.stderr.contains("do not fill one window"), "\(short.stderr)")
        // a large vocabulary needs a tokenizer for text
        try FileManager.default.createDirectory(atPath: dir + "/big", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: f + "/olmoe-tiny/model.safetensors", toPath: dir + "/big/model.safetensors")
        let config = try String(contentsOfFile: f + "/olmoe-tiny/config.json", encoding: .utf8).replacingOccurrences(
            of: "\"vocab_size\": 128", with: "\"vocab_size\": 50304")
        try config.write(toFile: dir + "/big/config.json", atomically: true, encoding: .utf8)
        let text = try run(["routing", dir + "/big", "--data", dir + "/a.txt", "--seq-len", "8"])
        #expect(text.status == 1 && text.stderr.contains("tokenizer"), "\(text.stderr)")
    }
}

/// `report --data` and `compare --data`: the routing figures, tables and section on their pages.
extension CLITests {
    @Test func reportAndCompareAddRoutingOnData() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = CLITests.fixtures
        // one run of two identical steps: router saturation is exactly 1 at both
        for step in ["step1", "step2"] {
            try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: f + "/olmoe-tiny", toPath: dir + "/run/" + step)
        }
        let tokens = f + "/routing/tokens.npy"
        let r = try run([
            "report", dir + "/run/step1", dir + "/run/step2", "--out", dir + "/report", "--data", "a=" + tokens,
            "--seq-len", "32", "--no-tsne", "--no-noise", "-q",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        for file in [
            "figures/agreement.png", "figures/saturation.png", "figures/expert_load.png", "figures/m_data_layer0.png",
            "figures/coactivation_layer1.png", "tables/routing.csv", "routing.json", "figures/erc_by_layer.png",
        ] {
            #expect(FileManager.default.fileExists(atPath: dir + "/report/" + file), "\(file)")
        }
        let page = try String(contentsOfFile: dir + "/report/index.html", encoding: .utf8)
        #expect(page.contains("id=\"routing\"") && page.contains("Routing on data"))
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/report/routing.json"))) as? [[String: Any]])
        #expect(json.count == 2)
        for c in json {
            let layers = try #require(c["layers"] as? [[String: Any]])
            #expect(layers.map { $0["saturation"] as? Double } == [1.0, 1.0])
            #expect(layers.first?["tokens"] as? Int == 96)  // tokens.npy holds 100 tokens: three windows of 32
        }

        let c = try run([
            "compare", f + "/olmoe-tiny", f + "/routing/models/olmoe", "--labels", "tiny,other", "--out", dir + "/compare",
            "--data", tokens, "--seq-len", "32", "--no-noise", "-q",
        ])
        #expect(c.status == 0, "\(c.stderr)")
        for file in [
            "figures/agreement.png", "figures/expert_load_tiny.png", "figures/expert_load_other.png",
            "figures/m_data_layer0_other.png", "tables/routing.csv", "routing.json",
        ] {
            #expect(FileManager.default.fileExists(atPath: dir + "/compare/" + file), "\(file)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/compare/figures/saturation.png"), "two runs have no saturation")
        let cpage = try String(contentsOfFile: dir + "/compare/index.html", encoding: .utf8)
        #expect(cpage.contains("Routing on data") && cpage.contains("tiny 0.") && cpage.contains("other 0."))

        let both = try run(["report", "--tables", dir, "--out", dir + "/t", "--data", tokens])
        #expect(both.status != 0 && both.stderr.contains("--tables"), "\(both.stderr)")
        let clash = try run(["compare", f + "/olmoe-tiny", f + "/routing/models/olmoe", "--out", tokens, "--data", tokens, "--seq-len", "32"])
        #expect(clash.status == 1 && clash.stderr.contains("input"), "\(clash.stderr)")
    }
}
