import Foundation
import Tensors
import Testing

@testable import Embedding

/// Side-by-side with the peers; runs only with `MOE_BENCH=1` (it takes a while).
///
///     /work/venv/bin/python scripts/bench_tsne.py --out /tmp/peers.json
///     MOE_BENCH=1 MOE_TSNE_PEERS=/tmp/peers.json swift test -c release ... --filter TSNEBenchmark
///
/// Without `MOE_TSNE_PEERS` the peers' figures come from `fixtures/tsne/expected.json`.
/// Prints one JSON line per run: our KL and seconds, the peer's, and the ratios.
@Suite("t-SNE benchmark", .enabled(if: ProcessInfo.processInfo.environment["MOE_BENCH"] == "1"))
struct TSNEBenchmarkTests {
    static let runs: [(name: String, fixture: String, method: TSNE.Method, peer: String)] = [
        ("digits-exact", "digits.moearray", .exact, "digits-exact"),
        ("digits-bh", "digits.moearray", .barnesHut, "digits-bh"),
        ("digits-bh-vs-angle0.2", "digits.moearray", .barnesHut, "digits-bh-angle0.2"),
        ("digits-bh-vs-opentsne", "digits.moearray", .barnesHut, "digits-opentsne-bh"),
        ("blobs-bh", "blobs.moearray", .barnesHut, "blobs-opentsne-bh"),
    ]

    static func peers() throws -> [String: [String: Any]] {
        var peers = try TSNEFixtures.expected()
        if let path = ProcessInfo.processInfo.environment["MOE_TSNE_PEERS"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            if let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] {
                for (k, v) in object { if let v = v as? [String: Any] { peers[k] = v } }
            }
        }
        return peers
    }

    @Test("KL and time against scikit-learn and openTSNE (2 threads)")
    func sideBySide() throws {
        let peers = try Self.peers()
        var data: [String: Tensor] = [:]
        for run in Self.runs {
            let x = try data[run.fixture] ?? TSNEFixtures.array(run.fixture)
            data[run.fixture] = x
            var tsne = TSNE(method: run.method)
            tsne.threads = 2
            let result = try tsne.fit(x)
            let peerKL = peers[run.peer]?["kl"] as? Double ?? .nan
            let peerSeconds = peers[run.peer]?["seconds"] as? Double ?? .nan
            let t = result.timings
            let line: [String: Any] = [
                "run": run.name, "peer": run.peer, "points": x.rows, "dims": x.columns,
                "kl": result.klDivergence, "seconds": t.total,
                "affinities_s": t.affinities, "optimization_s": t.optimization,
                "peer_kl": peerKL, "peer_seconds": peerSeconds,
                "kl_ratio": result.klDivergence / peerKL, "time_ratio": t.total / peerSeconds,
            ]
            let json = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
            print(String(decoding: json, as: UTF8.self))
            #expect(result.klDivergence.isFinite)
        }
    }

    @Test("expert-row-like data: 4160 x 2048, PCA to 50, Barnes-Hut (issue target: under 20 s)")
    func wideRows() throws {
        // 65 groups of 64 rows around shared centres, like 64 sampled W_g rows per expert plus
        // the router rows.
        var rng = SeededGenerator(seed: 5)
        let n = 4160, d = 2048
        let centres = (0..<(65 * d)).map { _ in Float(rng.nextNormal()) }
        var values = [Float](repeating: 0, count: n * d)
        for i in 0..<n { for k in 0..<d { values[i * d + k] = 0.5 * centres[(i / 64) * d + k] + Float(rng.nextNormal()) } }
        let x = Tensor(shape: [n, d], storage: values)
        let labels = (0..<n).map { $0 / 64 }
        let clock = ContinuousClock()
        let start = clock.now
        var tsne = TSNE()
        tsne.reducedDimensions = 50
        tsne.threads = 2
        let result = try tsne.fit(x)
        let mapScore = try Silhouette.score(result.embedding, labels: labels)
        let elapsed = clock.now - start
        let line: [String: Any] = [
            "run": "rows-4160x2048-pca50-bh", "kl": result.klDivergence, "seconds_tsne": result.timings.total,
            "pca_s": result.timings.reduction,
            "seconds_with_silhouette": Double(elapsed.components.seconds)
                + Double(elapsed.components.attoseconds) * 1e-18, "silhouette_map": mapScore,
        ]
        let json = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
        #expect(mapScore > 0.5)
    }
}
