import Analysis
import Checkpoints
import Foundation
import Plotting

/// `moe-inspect compare A B`: the coupling figures of two (or more) checkpoints side by side on
/// shared scales, series overlaid, and a table of differences per layer.
public struct ComparisonReport {
    public var settings: FigureSettings

    public init(_ settings: FigureSettings = FigureSettings()) { self.settings = settings }

    /// The per-layer difference table: for each layer and alpha, every checkpoint's values and B - A.
    public static func differences(_ runs: [CheckpointCoupling], labels: [String], options: CouplingOptions) -> Table {
        var columns = ["layer", "alpha"]
        for (name, _) in metrics { for l in labels { columns.append("\(name)_\(l)") }; if labels.count == 2 { columns.append("\(name)_diff") } }
        var t = Table(columns: columns)
        let layers = Array(Set(runs.flatMap { $0.layers.map(\.layer) })).sorted()
        for layer in layers {
            for (k, a) in options.alphas.enumerated() {
                var row: [Cell] = [.int(layer), .number(a)]
                for (_, metric) in metrics {
                    let values = runs.map { r -> Double? in r.layers.first { $0.layer == layer && $0.isOK }.flatMap { metric($0, k) } }
                    row += values.map { $0.map { .number($0) } ?? .empty }
                    if labels.count == 2 { row.append(values[0] != nil && values[1] != nil ? .number(values[1]! - values[0]!) : .empty) }
                }
                t.rows.append(row)
            }
        }
        return t
    }

    static let metrics: [(String, @Sendable (LayerCoupling, Int) -> Double?)] = [
        ("erc_loss", { l, k in k < l.ercLosses.count ? l.ercLosses[k].loss.mean : nil }),
        ("coupling_alpha", { l, _ in l.couplingAlpha }),
        ("eps_mean", { l, _ in l.eps.isEmpty ? nil : l.eps.reduce(0, +) / Double(l.eps.count) }),
        ("router_cos_mean_abs", { l, _ in l.geometry?.meanAbsCosine }),
        ("m_diag_over_offdiag", { l, _ in l.mOffDiagonalMean.mean > 0 ? l.mDiagonalMean.mean / l.mOffDiagonalMean.mean : nil }),
    ]

    /// Writes the comparison of `runs` (labelled `labels`) into `folder`.
    @discardableResult
    public func write(_ runs: [CheckpointCoupling], labels: [String], options: CouplingOptions, logs: [TrainingLog] = [],
                      to folder: String) throws -> [ReportFigure] {
        let sink = try FigureSink(folder: folder, settings: settings)
        if logs.count == runs.count {
            try sink.add("training_curves", try TrainingCurves.figure(logs, labels: labels), reading: TrainingCurves.reading(logs, labels: labels))
        }
        let a0 = options.alphas.first ?? 1
        let perLayer: [(String, String, String, (LayerCoupling) -> Double?)] = [
            ("erc_by_layer", String(format: "ERC loss per layer (α = %g)", a0), "ERC loss", { $0.ercLosses.first?.loss.mean }),
            ("coupling_alpha", "Coupling threshold α* per layer", "α*", { $0.couplingAlpha }),
            ("epsilon_by_layer", "Noise bound ε per layer (mean over experts)", "mean ε", { $0.eps.isEmpty ? nil : $0.eps.reduce(0, +) / Double($0.eps.count) }),
            ("router_cosine_by_layer", "Router similarity per layer", "mean |cos(R[i], R[j])|", { $0.geometry?.meanAbsCosine }),
        ]
        for (stem, title, yLabel, value) in perLayer {
            try sink.add(stem, try ComparisonFigures.overlaid(runs, labels: labels, title: title, yLabel: yLabel, value: value),
                         reading: ComparisonFigures.reading(runs, labels: labels, name: yLabel, value: value))
        }
        try sink.add("coupling_profile", try ComparisonFigures.profiles(runs, labels: labels),
                     reading: "Each panel is one checkpoint, on the same axes: lines that reach zero at smaller α belong to more tightly coupled layers.")
        let layers = Array(Set(runs.flatMap { $0.layers.filter(\.isOK).map(\.layer) })).sorted()
        for layer in layers {
            try sink.add("activation_layer\(layer)", try ComparisonFigures.sideBySide(runs, labels: labels, layer: layer, cosine: false),
                         reading: "Layer \(layer): M of each checkpoint on one colour scale; a brighter diagonal against its row and column is tighter coupling.")
            try sink.add("router_cosine_layer\(layer)", try ComparisonFigures.sideBySide(runs, labels: labels, layer: layer, cosine: true),
                         reading: "Layer \(layer): router cosine similarity of each checkpoint, on the same diverging scale.")
        }
        let diff = Self.differences(runs, labels: labels, options: options)
        try diff.writeCSV(to: folder + "/tables/differences.csv")
        try CouplingTables.erc(runs, options: options).writeCSV(to: folder + "/tables/erc.csv")
        var body = "<h2>Differences per layer</h2>\n<div class=\"scroll\"><table><tr>" + diff.columns.map { "<th>\(ReportPage.escape($0))</th>" }.joined() + "</tr>\n"
        for r in diff.rows { body += "<tr>" + r.map { c -> String in if case let .number(d) = c, d.isFinite { return String(format: "<td>%.4g</td>", d) }; return "<td>\(c.rendered)</td>" }.joined() + "</tr>\n" }
        body += "</table></div>\n<p>Tables: <a href=\"tables/differences.csv\">differences.csv</a> · <a href=\"tables/erc.csv\">erc.csv</a></p>\n"
        let title = "moe-inspect comparison: " + labels.joined(separator: " vs ")
        let lede = ReportPage.lede(options) + " Checkpoints: " + zip(labels, runs).map { "<b>\(ReportPage.escape($0))</b> = \(ReportPage.escape($1.checkpoint))" }.joined(separator: ", ") + "."
        try AtomicOutput.write(ReportPage.page(title: title, lede: lede, body: body, figures: sink.figures), to: folder + "/index.html")
        try AtomicOutput.write(JSONValue.object([("labels", .array(labels.map { .string($0) })), ("differences", diff.json)]).serialized(pretty: true) + "\n",
                               to: folder + "/summary.json")
        return sink.figures
    }
}

/// Figures that put several checkpoints on shared scales.
public enum ComparisonFigures {
    /// A per-layer quantity, one line per checkpoint.
    public static func overlaid(_ runs: [CheckpointCoupling], labels: [String], title: String, yLabel: String,
                                value: (LayerCoupling) -> Double?) throws -> Figure? {
        let f = Figure(width: 6.4, height: 4)
        f.title = title
        let ax = f.axes[0]
        var any = false
        var allLayers = Set<Int>()
        for (k, r) in runs.enumerated() {
            let pts = r.layers.filter(\.isOK).compactMap { l in value(l).flatMap { $0.isFinite ? (Double(l.layer), $0) : nil } }
            guard !pts.isEmpty else { continue }
            any = true
            allLayers.formUnion(pts.map { Int($0.0) })
            try ax.plot(x: pts.map(\.0), y: pts.map(\.1), label: labels[k], color: CategoricalPalette.color(k),
                        marker: MarkerShape.forCategory(k))
        }
        guard any else { return nil }
        CouplingFigures.layerAxis(ax, allLayers.sorted())
        ax.y.label = yLabel
        ax.y.includesZero = true
        return f
    }

    /// "A: mean x, B: mean y" for a reading line.
    static func reading(_ runs: [CheckpointCoupling], labels: [String], name: String, value: (LayerCoupling) -> Double?) -> String {
        let means = runs.map { r -> Double? in
            let v = r.layers.filter(\.isOK).compactMap(value).filter(\.isFinite)
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        return "Mean over layers of " + name + ": " + zip(labels, means).map { "\($0) \($1.map { String(format: "%.4g", $0) } ?? "–")" }.joined(separator: ", ") + "."
    }

    /// Coupling profiles of each checkpoint in its own panel, shared axes.
    public static func profiles(_ runs: [CheckpointCoupling], labels: [String]) throws -> Figure? {
        let f = Figure(width: 4.2 * Double(runs.count) + 1, height: 4, rows: 1, columns: runs.count)
        f.title = "Coupling profile: ERC loss against α"
        f.sharesY = true
        let alphas = stride(from: 0.0, through: 3.0, by: 0.05).map { $0 }
        var any = false
        for (k, r) in runs.enumerated() {
            let ax = f.axes[k]
            ax.title = labels[k]
            ax.x.label = "α"
            if k == 0 { ax.y.label = "ERC loss (noise-free)" }
            let ok = r.layers.filter { $0.isOK && $0.activation != nil }
            for (i, l) in ok.enumerated() {
                any = true
                try ax.plot(x: alphas, y: alphas.map { ERCLoss(activation: l.activation!, alpha: $0).total }, label: "layer \(l.layer)",
                            color: CouplingFigures.lineColor(i, of: ok.count))
            }
            ax.legend = (k == runs.count - 1 && ok.count <= 12) ? .automatic : .none
        }
        return any ? f : nil
    }

    /// One layer's M (or router cosine) of each checkpoint side by side on one colour scale.
    public static func sideBySide(_ runs: [CheckpointCoupling], labels: [String], layer: Int, cosine: Bool) throws -> Figure? {
        let mats: [[[Double]]?] = runs.map { r in
            guard let l = r.layers.first(where: { $0.layer == layer && $0.isOK }) else { return nil }
            let t = cosine ? l.geometry?.cosine : l.activation
            return t.map(CouplingFigures.matrix)
        }
        let present = mats.compactMap { $0 }
        guard !present.isEmpty else { return nil }
        let f = Figure(width: 4.0 * Double(runs.count) + 1.3, height: 4.1, rows: 1, columns: runs.count)
        f.title = cosine ? "Router cosine similarity, layer \(layer)" : "Activation matrix M, layer \(layer)"
        let scale = cosine ? ColorScale.symmetric(limit: 1) : ColorScale.fitting(present.flatMap { $0.joined() }, colormap: .viridis)
        for (k, m) in mats.enumerated() {
            let ax = f.axes[k]
            ax.title = labels[k]
            guard let m else { continue }
            try ax.heatmap(m, scale: scale, diagonalOutline: cosine ? nil : .white)
            ax.x.label = "expert j"
            if k == 0 { ax.y.label = cosine ? "expert i" : "proxy i" }
            ax.x.showsTickLabels = m.count <= 16
            ax.y.showsTickLabels = m.count <= 16
        }
        f.colorbar = Colorbar(label: cosine ? "cos(R[i], R[j])" : "M[i,j]", scale: scale)
        return f
    }
}
