import Foundation
import Testing

/// `moe-inspect routing` end to end on the routing fixtures.
extension CLITests {
    @Test func routingJSONAssignmentsAndSaturation() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = CLITests.fixtures
        let r = try run(["routing", f + "/olmoe-tiny", f + "/routing/models/olmoe", "--data", "a=" + f + "/routing/tokens.npy",
                         "--data", "b=" + f + "/routing/tokens-b.npy", "--seq-len", "32", "--json", "--assignments", dir + "/assign",
                         "--out", dir + "/report", "-q"])
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
        for file in ["index.html", "summary.json", "tables/routing.csv", "figures/expert_load.png", "figures/saturation.png", "figures/m_data_layer0.png"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/report/" + file), "\(file)")
        }
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
        let config = try String(contentsOfFile: f + "/olmoe-tiny/config.json", encoding: .utf8).replacingOccurrences(of: "\"vocab_size\": 128", with: "\"vocab_size\": 50304")
        try config.write(toFile: dir + "/big/config.json", atomically: true, encoding: .utf8)
        let text = try run(["routing", dir + "/big", "--data", dir + "/a.txt", "--seq-len", "8"])
        #expect(text.status == 1 && text.stderr.contains("tokenizer"), "\(text.stderr)")
    }
}
