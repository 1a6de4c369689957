import Analysis
import Foundation
import Plotting
import Tensors
import Testing

@testable import Reports

@Suite struct ReportTests {
    /// Two hand-made layers: one coupled (strong diagonal), one not.
    static func layers() -> [LayerCoupling] {
        let m0 = Tensor(shape: [3, 3], storage: [3, 1, 1, 1, 3, 1, 1, 1, 3])
        let m1 = Tensor(shape: [3, 3], storage: [1, 2, 2, 2, 1, 2, 2, 2, 1])
        let r = Tensor(shape: [3, 2], storage: [1, 0, 0, 1, -1, 0.1])
        return [(0, m0), (1, m1)].map { (layer, m) in
            let stack = ExpertStack(gate: Tensor(shape: [3, 1, 2], repeating: 1), experts: 3, intermediate: 1, hidden: 2)
            var l = CouplingAnalysis.analyze(layer: layer, router: r, stack: stack, options: CouplingOptions(alphas: [1], noise: false))
            l.activation = m
            l.couplingAlpha = ERCLoss.couplingThreshold(m)
            return l
        }
    }

    @Test func reportWritesEveryFigureTableAndPage() throws {
        let dir = NSTemporaryDirectory() + "moe-report-" + UUID().uuidString
        let runs = [
            CheckpointCoupling(checkpoint: "a/step100", step: 100, layers: Self.layers()),
            CheckpointCoupling(checkpoint: "a/step200", step: 200, layers: Self.layers()),
        ]
        let report = CouplingReport(FigureSettings(formats: [.png, .svg], dpi: 72, provenance: ["moe-inspect:checkpoint": "a"]))
        let figures = try report.write(runs, options: CouplingOptions(alphas: [1], noise: false), to: dir)
        let stems = Set(figures.map(\.stem))
        for s in [
            "series_erc_loss", "series_epsilon", "series_coupling_alpha", "coupling_alpha", "erc_by_layer", "coupling_profile",
            "activation_all_layers", "epsilon_by_layer", "router_cosine_by_layer", "activation_layer0", "router_cosine_layer1",
        ] {
            #expect(stems.contains(s), "\(s)")
        }
        // alpha* of layer 1 is 2 (off-diagonal 2 over diagonal 1): the reading names it the weakest.
        let alpha = try #require(figures.first { $0.stem == "coupling_alpha" })
        #expect(alpha.reading.hasPrefix("layer 1: α* 2.00, the weakest coupling"))
        let html = try String(contentsOfFile: dir + "/index.html", encoding: .utf8)
        for f in figures { #expect(html.contains("figures/\(f.stem).png")) }
        #expect(html.contains("tables/erc.csv"))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as? [String: Any]
        #expect((summary?["checkpoints"] as? [Any])?.count == 2)
        let csv = try String(contentsOfFile: dir + "/tables/erc.csv", encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 1 + 2 * 2)
        let svg = try String(contentsOfFile: dir + "/figures/coupling_alpha.svg", encoding: .utf8)
        #expect(svg.contains("<svg"))
    }

    @Test func tablesRenderAndQuote() {
        var t = Table(columns: ["a", "b"])
        t.rows = [[.text("x,y"), .number(.nan)], [.int(3), .number(0.5)]]
        #expect(t.csv == "a,b\n\"x,y\",nan\n3,0.5\n")
        #expect(t.aligned().contains("x,y"))
    }
}
