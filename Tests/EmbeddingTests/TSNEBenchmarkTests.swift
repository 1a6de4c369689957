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
}
