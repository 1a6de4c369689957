import Analysis
import ArgumentParser
import Embedding
import Foundation
import MoELayout
import Reports

extension MapPoints: ExpressibleByArgument {}
extension MapLabel: ExpressibleByArgument {}

extension MoEInspect {
    struct TSNECommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tsne",
            abstract: "t-SNE map of expert parameters: one point per expert, or W_g rows with the router rows marked.",
            discussion:
                "--points experts embeds each expert's flattened W_g (count-sketched to 4096 coordinates) over one layer or all; --points neurons embeds rows of every expert's W_g in one layer together with the router rows R[i] (all scaled to unit length), where coupling shows as rows gathering around their router row. scikit-learn's defaults: perplexity 30, early exaggeration 12 for 250 iterations, learning rate auto, PCA initialisation; wide inputs are first reduced to 50 principal components. The silhouette score by label, in the map and in weight space, makes checkpoints comparable without looking."
        )

        @Argument(help: "A checkpoint.")
        var checkpoint: String

        @Option(help: ArgumentHelp("experts (one point per expert) or neurons (W_g rows and router rows).", valueName: "kind"))
        var points: MapPoints = .experts

        @Option(help: "Decoder layer (default: all MoE layers for experts, the first MoE layer for neurons).")
        var layer: Int?

        @Option(help: "W_g rows sampled per expert for --points neurons (default 64; 0 = all).")
        var perExpert: Int = 64

        @Flag(help: "With --points experts: W_g, W_p and W_o together instead of W_g alone.")
        var allProjections = false

        @Option(help: ArgumentHelp("Colour and silhouette label: expert or layer (default: layer when several layers, else expert).", valueName: "label"))
        var colorBy: MapLabel?

        @Option(help: "Perplexity (default 30; must be below the number of points).")
        var perplexity: Double = 30

        @Option(help: "Iterations, early exaggeration included (default 1000).")
        var iterations: Int = 1000

        @Option(help: "Seed of sampling, sketching and initialisation (default 0).")
        var seed: UInt64 = 0

        @Flag(help: "Exact t-SNE (O(N^2); up to 8192 points) instead of Barnes-Hut.")
        var exact = false

        @Option(help: ArgumentHelp("Write coordinates as CSV (x, y, layer, expert, kind).", valueName: "FILE"))
        var csv: String?

        @Option(help: ArgumentHelp("Draw the map (.png, .pdf or .svg).", valueName: "FILE"))
        var figure: String?

        @Flag(help: "Print the summary as JSON.")
        var json = false

        @OptionGroup var size: FigureSizeOptions

        @OptionGroup var layoutOptions: LayoutOptions

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            guard perExpert >= 0 else { throw ValidationError("--per-expert must be 0 (all) or positive") }
            guard iterations >= 250 else { throw ValidationError("--iterations must be at least 250 (the early-exaggeration phase)") }
            if let f = figure { _ = try figureFormat(f, option: "--figure") }
        }

        func run() throws {
            try protectInputs([csv, figure], from: [checkpoint] + [layoutOptions.layout].compactMap { $0 })
            let progress = Progress(quiet: quiet)
            let start = Date()
            let model = try layoutOptions.open(checkpoint)
            var selected = try model.moeLayers(in: layer.flatMap { LayerSelection([$0]) })
            if points == .neurons { selected = Array(selected.prefix(1)) }
            let pts: ExpertPoints =
                points == .neurons
                ? try ExpertPoints.neurons(model, layer: selected[0], perExpert: perExpert == 0 ? nil : perExpert, seed: seed)
                : try ExpertPoints.experts(model, layers: selected, allProjections: allProjections, seed: seed)
            let readTime = Date().timeIntervalSince(start)
            progress.say(String(format: "%d points of %d dimensions (%@), read in %.1f s", pts.data.rows, pts.data.columns, pts.note, readTime))
            var tsne = TSNE(perplexity: perplexity, method: exact ? .exact : .barnesHut, iterations: iterations, seed: seed)
            if pts.data.columns > 50 { tsne.reducedDimensions = min(50, pts.data.rows) }
            let label = colorBy ?? (points == .experts && selected.count > 1 ? .layer : .expert)
            let map = try ExpertMap.make(pts, tsne: tsne, labelBy: label) { p in
                if p.iteration % 250 == 0 || p.iteration == p.iterations {
                    progress.say(String(format: "iteration %d/%d, KL %.4f", p.iteration, p.iterations, p.klDivergence))
                }
            }
            let seconds = Date().timeIntervalSince(start)
            if let csv {
                var t = Table(columns: ["x", "y", "layer", "expert", "kind"])
                for i in 0..<pts.data.rows {
                    t.rows.append([
                        .number(Double(map.embedding[i, 0])), .number(Double(map.embedding[i, 1])), .int(pts.layers[i]), .int(pts.experts[i]),
                        .text(pts.kinds[i].rawValue),
                    ])
                }
                try t.writeCSV(to: csv)
            }
            if let figure {
                let what =
                    points == .neurons
                    ? "W_g rows and router rows, layer \(selected[0].index)"
                    : (selected.count == 1 ? "experts of layer \(selected[0].index)" : "experts of \(selected.count) layers")
                let f = try TSNEFigures.map(map, title: "t-SNE of \(what)")
                FigureSettings(width: size.width, fontScale: size.fontScale).fit(f)
                _ = try f.save(to: figure, provenance: provenance(checkpoints: [checkpoint]))
            }
            let summary = TSNESummary(
                points: pts.data.rows, dimensions: pts.data.columns, label: label.rawValue,
                klDivergence: map.klDivergence, silhouette2D: map.silhouette2D,
                silhouetteOriginal: map.silhouetteOriginal, seconds: seconds)
            if json {
                print(try summary.json())
            } else {
                print(summary.aligned())
            }
        }
    }
}

/// What `tsne` prints: sizes, the final KL divergence and the silhouette scores.
struct TSNESummary: Encodable {
    var points: Int
    var dimensions: Int
    var label: String
    var klDivergence: Double
    var silhouette2D: Double?
    var silhouetteOriginal: Double?
    var seconds: Double

    enum CodingKeys: String, CodingKey {
        case points, dimensions, label, seconds
        case klDivergence = "kl_divergence", silhouette2D = "silhouette_2d", silhouetteOriginal = "silhouette_original"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(points, forKey: .points)
        try c.encode(dimensions, forKey: .dimensions)
        try c.encode(label, forKey: .label)
        // JSON has no NaN: a value that is not finite is written as null.
        try c.encode(klDivergence.isFinite ? klDivergence : nil, forKey: .klDivergence)
        try c.encode(silhouette2D.flatMap { $0.isFinite ? $0 : nil }, forKey: .silhouette2D)
        try c.encode(silhouetteOriginal.flatMap { $0.isFinite ? $0 : nil }, forKey: .silhouetteOriginal)
        try c.encode(seconds, forKey: .seconds)
    }

    /// One JSON object, keys in a stable order.
    func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    /// One `name value` line each, as the text output.
    func aligned() -> String {
        let f = { (v: Double?, fmt: String) in v.map { String(format: fmt, $0) } ?? "n/a" }
        let rows: [(String, String)] = [
            ("points", String(points)), ("dimensions", String(dimensions)), ("label", label),
            ("kl_divergence", f(klDivergence, "%.5f")), ("silhouette_2d", f(silhouette2D, "%.4f")),
            ("silhouette_original", f(silhouetteOriginal, "%.4f")), ("seconds", String(format: "%.2f", seconds)),
        ]
        return rows.map { $0.0.padding(toLength: 22, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n")
    }
}
