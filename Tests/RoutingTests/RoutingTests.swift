import Analysis
import Checkpoints
import Foundation
import MoELayout
import Models
import Tensors
import Testing

@testable import Routing

/// The reference runs of `fixtures/routing/make_routing_fixtures.py` (transformers + PyTorch).
enum Reference {
    static let root: String = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.appendingPathComponent("../../fixtures").standardized.path
    }()

    static let models: [(String, String)] = [
        ("olmoe-tiny", "olmoe-tiny"), ("mixtral-tiny", "mixtral-tiny"), ("qwen2-moe-tiny", "qwen2-moe-tiny"),
        ("qwen3-moe-tiny", "qwen3-moe-tiny"), ("deepseek-v3-tiny", "deepseek-v3-tiny"),
        ("models-olmoe", "routing/models/olmoe"), ("models-mixtral", "routing/models/mixtral"),
        ("models-qwen2-moe", "routing/models/qwen2-moe"), ("models-qwen3-moe", "routing/models/qwen3-moe"),
        ("models-deepseek-v3", "routing/models/deepseek-v3"),
        ("models-deepseek-v3-noninterleaved", "routing/models/deepseek-v3-noninterleaved"),
        ("models-deepseek-v2", "routing/models/deepseek-v2"),
        // scaled RoPE
        ("models-deepseek-v3-yarn", "routing/models/deepseek-v3-yarn"), ("models-deepseek-v2-yarn", "routing/models/deepseek-v2-yarn"),
        ("models-mixtral-linear", "routing/models/mixtral-linear"), ("models-qwen3-moe-llama3", "routing/models/qwen3-moe-llama3"),
        ("models-qwen2-moe-dynamic", "routing/models/qwen2-moe-dynamic"), ("models-olmoe-longrope", "routing/models/olmoe-longrope"),
        // FlexOlmo, OLMo-core's Hugging Face exports, and the OLMo-core checkpoints they were made
        // from (training checkpoints and an unsharded export with OLMo-core's names) against them
        ("models-flex-olmo", "routing/models/flex-olmo"),
        ("olmo-core-dropless-hf", "olmo-core/dropless-hf"), ("olmo-core-default-hf", "olmo-core/default-hf"),
        ("olmo-core-dropless-hf", "olmo-core/dropless/step3"), ("olmo-core-default-hf", "olmo-core/default/step2"),
        ("olmo-core-dropless-hf", "olmo-core/dropless-unsharded"),
    ]

    static func expected(_ name: String) throws -> [String: Tensor] {
        let ck = try Checkpoint.open(root + "/routing/expected/\(name).safetensors")
        var out: [String: Tensor] = [:]
        for t in ck.tensors { out[t.name] = try ck.tensor(t.name) }
        return out
    }

    /// The 160 reference tokens as two domains: 3 windows "a", 2 windows "b".
    static func windows(_ ref: [String: Tensor]) throws -> TokenWindows {
        let tokens = try #require(ref["tokens"]).storage.map { Int32($0) }
        var w = try TokenWindows(windowLength: 32)
        try w.append(domain: "a", count: 96, source: "a") { tokens[$0] }
        try w.append(domain: "b", count: 64, source: "b") { tokens[96 + $0] }
        return w
    }

    static func run(_ name: String, _ folder: String, options: RoutingOptions = RoutingOptions(topTokens: 5)) throws -> ([String: Tensor], CheckpointRouting) {
        let ref = try expected(name)
        let model = try CausalModel(MoECheckpoint(Checkpoint.open(root + "/" + folder)))
        return (ref, try RoutingAnalysis.run(model, data: windows(ref), options: options, path: folder))
    }
}

/// |a - b| <= tol * max(|b|, floor).
func close(_ a: Double, _ b: Double, _ tol: Double, floor: Double = 1e-12) -> Bool {
    if a.isNaN && b.isNaN { return true }
    return abs(a - b) <= tol * max(abs(b), floor)
}

@Suite("Routing statistics against PyTorch")
struct RoutingStatisticsTests {
    @Test("counts, co-activation, load balance, domains, vocabulary, agreement, m_data, M, Pearson", arguments: Reference.models)
    func matchesReference(name: String, folder: String) throws {
        let (ref, result) = try Reference.run(name, folder)
        #expect(!result.layers.isEmpty)
        for l in result.layers {
            let p = "layer\(l.layer)."
            let n = l.experts, k = l.topK
            // counts and co-activation follow from the top-k (checked equal in ModelsTests)
            #expect(l.load.counts.map(Float.init) == ref[p + "counts"]?.storage, "\(name) \(p)counts")
            #expect(l.load.coactivation.flatMap { $0.map(Float.init) } == ref[p + "coactivation"]?.storage, "\(name) \(p)coactivation")
            for (key, value) in [
                ("lb_transformers", l.load.loadBalancingLossTransformers), ("lb_olmocore", l.load.loadBalancingLossOLMoCore),
                ("entropy", l.load.meanRouterEntropy), ("top1", l.load.meanTopProbability),
            ] {
                let r = Double(try #require(ref[p + key]).storage[0])
                #expect(close(value, r, 1e-4), "\(name) \(p)\(key): \(value) vs \(r)")
            }
            // domains: 2 rows of n shares
            let shares = try #require(ref[p + "domain_shares"])
            #expect(l.domains.count == 2)
            for (di, dom) in l.domains.enumerated() {
                for e in 0..<n { #expect(close(dom.shares[e], Double(shares.storage[di * n + e]), 1e-6, floor: 1)) }
            }
            // vocabulary: top-5 ids and counts per expert
            let ids = try #require(ref[p + "top_token_ids"]), counts = try #require(ref[p + "top_token_counts"])
            for e in 0..<n {
                let mine = l.topTokens[e]
                let theirs = (0..<5).map { (Int32(ids.storage[e * 5 + $0]), Int(counts.storage[e * 5 + $0])) }.filter { $0.0 >= 0 }
                #expect(mine.map(\.id) == theirs.map(\.0) && mine.map(\.count) == theirs.map(\.1), "\(name) \(p) expert \(e) top tokens")
            }
            // coupling on data
            let c = try #require(l.coupling)
            let agreement = Double(try #require(ref[p + "agreement"]).storage[0])
            #expect(close(c.agreement, agreement, 1e-3), "\(name) \(p)agreement \(c.agreement) vs \(agreement)")
            #expect(c.chance == Double(k) / Double(n))
            let mData = try #require(ref[p + "m_data"]), proxy = try #require(ref[p + "m"])
            for i in 0..<n {
                let refRow = (0..<n).map { Double(mData.storage[i * n + $0]) }
                if refRow[0].isNaN {
                    #expect(c.mData[i] == nil, "\(name) \(p) m_data row \(i) should be null")
                    continue
                }
                let row = try #require(c.mData[i])
                let scale = refRow.map(abs).max() ?? 1
                for j in 0..<n {
                    #expect(abs(row[j] - refRow[j]) <= 1e-3 * scale, "\(name) \(p)m_data[\(i)][\(j)] \(row[j]) vs \(refRow[j])")
                    #expect(close(c.proxy[i][j], Double(proxy.storage[i * n + j]), 1e-4), "\(name) \(p)M[\(i)][\(j)]")
                }
            }
            let r = Double(try #require(ref[p + "pearson"]).storage[0])
            #expect(abs(c.proxyCorrelation - r) <= 1e-3, "\(name) \(p)pearson \(c.proxyCorrelation) vs \(r)")
            // the ERC loss of m_data is Analysis' loss of that matrix
            if c.expertsWithData.count == n, let first = c.losses.first {
                let m = Tensor(shape: [n, n], storage: mData.storage)
                #expect(close(first.loss.total, ERCLoss(activation: m, alpha: first.alpha).total, 1e-4, floor: 1e-6))
                #expect(close(c.couplingThreshold, ERCLoss.couplingThreshold(m), 1e-4))
            }
        }
    }

    @Test("router saturation: top-k overlap with the last checkpoint, as PyTorch computes it")
    func saturation() throws {
        let (_, first) = try Reference.run("olmoe-tiny", "olmoe-tiny")
        let (_, last) = try Reference.run("models-olmoe", "routing/models/olmoe")
        var results = [first, last]
        RoutingAnalysis.addSaturation(&results)
        let json = try JSONParser.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: Reference.root + "/routing/expected/saturation.json"))))
        for l in results[0].layers {
            let expected = try #require(json["overlap_with_last"]?["layer\(l.layer)"]?.doubleValue)
            #expect(close(try #require(l.saturation), expected, 1e-9))
        }
        #expect(results[1].layers.allSatisfy { $0.saturation == 1 })
        // another model: no saturation, a note
        let (_, other) = try Reference.run("mixtral-tiny", "mixtral-tiny")
        var mixed = [first, other]
        RoutingAnalysis.addSaturation(&mixed)
        #expect(mixed[0].layers.allSatisfy { $0.saturation == nil && $0.notes.contains { $0.contains("saturation") } })
    }

    @Test("saturation by run: each run against its own latest step, never another run's")
    func saturationByRun() throws {
        let (_, first) = try Reference.run("olmoe-tiny", "olmoe-tiny")
        let (_, last) = try Reference.run("models-olmoe", "routing/models/olmoe")
        var a1 = first, a2 = last, b = first
        a1.checkpoint = "runs/a/step100"; a2.checkpoint = "runs/a/step1000"; b.checkpoint = "runs/b/step1000"
        var results = [a2, b, a1]  // shell-glob order, two runs
        RoutingAnalysis.addSaturationByRun(&results)
        let json = try JSONParser.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: Reference.root + "/routing/expected/saturation.json"))))
        for l in results[2].layers {
            #expect(close(try #require(l.saturation), try #require(json["overlap_with_last"]?["layer\(l.layer)"]?.doubleValue), 1e-9))
        }
        #expect(results[0].layers.allSatisfy { $0.saturation == 1 })
        #expect(results[1].layers.allSatisfy { $0.saturation == nil && $0.notes.contains { $0.contains("no other checkpoint of its run") } })
    }

    @Test("a coupling sample is seeded, sorted, without repeats; statistics of all tokens stay exact")
    func couplingSample() throws {
        let s = sampleRows(total: 160, count: 40, seed: 7)
        #expect(s.count == 40 && Set(s).count == 40 && s == s.sorted() && s.allSatisfy { $0 < 160 })
        #expect(s == sampleRows(total: 160, count: 40, seed: 7))
        #expect(sampleRows(total: 10, count: 40, seed: 7) == Array(0..<10))
        let (ref, result) = try Reference.run("models-olmoe", "routing/models/olmoe", options: RoutingOptions(couplingTokens: 40, topTokens: 5))
        for l in result.layers {
            #expect(l.coupling?.tokens == 40)
            #expect(l.load.counts.map(Float.init) == ref["layer\(l.layer).counts"]?.storage)
        }
        let (_, none) = try Reference.run("models-olmoe", "routing/models/olmoe", options: RoutingOptions(couplingTokens: 0))
        #expect(none.layers.allSatisfy { $0.coupling == nil })
    }

    @Test("windows: a partial window is dropped, max tokens cuts whole windows, too little data is an error")
    func windows() throws {
        var w = try TokenWindows(windowLength: 4)
        try w.append(domain: "x", count: 11, source: "x") { Int32($0) }
        #expect(w.tokens == (0..<8).map(Int32.init) && w.windowCount == 2)
        try w.append(domain: "y", count: 100, maxTokens: 5, source: "y") { Int32(100 + $0) }
        #expect(w.windowCount == 3 && w.domains[1].windows == 2..<3 && w.domainOfToken == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
        #expect(throws: RoutingError.self) { try w.append(domain: "z", count: 3, source: "z") { _ in 0 } }
        #expect(throws: RoutingError.self) { _ = try TokenWindows(windowLength: 0) }
    }
}
