import Checkpoints
import Foundation
import Plotting
import Routing

/// Figures of `moe-inspect routing`, one builder per figure.
public enum RoutingFigures {
    /// Expert load per layer: counts / (T k / n), 1 when balanced (layers down, experts across).
    public static func loadHeatmap(_ c: CheckpointRouting) throws -> Figure? {
        guard let n = c.layers.first?.experts, c.layers.allSatisfy({ $0.experts == n }) else { return nil }
        let values = c.layers.map { l in l.load.counts.map { Double($0) * Double(l.experts) / Double(l.tokens * l.topK) } }
        let f = Figure(width: min(12, 2.5 + 0.22 * Double(n)), height: min(9, 1.6 + 0.32 * Double(c.layers.count)))
        f.title = "Expert load (1 = balanced)"
        let ax = f.axes[0]
        ax.x.label = "expert"
        ax.y.label = "layer"
        let scale = ColorScale.fitting(values.joined(), colormap: .viridis)
        try ax.heatmap(values, scale: scale, annotation: n <= 8 && c.layers.count <= 8 ? CellAnnotation(decimals: 2) : nil,
                       rowLabels: c.layers.map { String($0.layer) })
        ax.x.showsTickLabels = n <= 32
        ax.colorbar = Colorbar(label: "top-k selections / (T k / n)", scale: scale)
        return f
    }

    /// Co-activation of one layer as OLMoE draws it: P(j in top-k | i in top-k) = C[i][j] / C[i][i]
    /// (the diagonal left blank).
    public static func coactivation(_ l: LayerRouting) throws -> Figure? {
        let n = l.experts
        let values = (0..<n).map { i in (0..<n).map { j -> Double in
            let d = Double(l.load.coactivation[i][i])
            return i == j || d == 0 ? .nan : Double(l.load.coactivation[i][j]) / d
        } }
        let f = Figure(width: 5.6, height: 4.8)
        f.title = "Co-activation, layer \(l.layer)"
        let ax = f.axes[0]
        ax.x.label = "expert j"
        ax.y.label = "expert i"
        let scale = ColorScale.fitting(values.joined(), colormap: .viridis, fallback: 0...1)
        try ax.heatmap(values, scale: scale, annotation: n <= 8 ? CellAnnotation(decimals: 2) : nil)
        ax.x.showsTickLabels = n <= 32
        ax.y.showsTickLabels = n <= 32
        ax.colorbar = Colorbar(label: "tokens with i and j / tokens with i", scale: scale)
        return f
    }

    /// Domain specialization of one layer: share of the domain's tokens routed to each expert over k/n.
    public static func domains(_ l: LayerRouting) throws -> Figure? {
        guard l.domains.count >= 2 else { return nil }
        let values = l.domains.map(\.specialization)
        let f = Figure(width: min(12, 2.5 + 0.22 * Double(l.experts)), height: 1.8 + 0.4 * Double(l.domains.count))
        f.title = "Domain specialization, layer \(l.layer)"
        let ax = f.axes[0]
        ax.x.label = "expert"
        let top = max(2, values.joined().filter(\.isFinite).max() ?? 2)
        let scale = ColorScale(colormap: .viridis, range: 0...top)
        try ax.heatmap(values, scale: scale, rowLabels: l.domains.map(\.name))
        ax.colorbar = Colorbar(label: "share / (k/n)", scale: scale)
        return f
    }

    /// Router saturation: each checkpoint's top-k overlap with the last, one line per layer.
    public static func saturation(_ runs: [CheckpointRouting]) throws -> Figure? {
        guard runs.count >= 2, let last = runs.last else { return nil }
        let steps = runs.enumerated().map { Double($0.element.step ?? $0.offset) }
        let f = Figure(width: 6.4, height: 4.2)
        f.title = "Router saturation: top-k overlap with the last checkpoint"
        let ax = f.axes[0]
        ax.x.label = runs.allSatisfy { $0.step != nil } ? "step" : "checkpoint"
        ax.y.label = "overlap"
        ax.y.includesZero = true
        for (k, l) in last.layers.enumerated() {
            let y = runs.map { r in r.layers.first { $0.layer == l.layer }?.saturation ?? .nan }
            try ax.plot(x: steps, y: y, label: "layer \(l.layer)", color: last.layers.count > 1 ? Colormap.viridis.color(at: 0.88 * Double(k) / Double(last.layers.count - 1)) : nil, marker: .circle)
        }
        ax.legend = last.layers.count <= 12 ? .automatic : .none
        return f
    }

    /// Agreement of the router's top-k with the experts that respond most, per layer, for every
    /// checkpoint, beside chance.
    public static func agreement(_ runs: [CheckpointRouting]) throws -> Figure? {
        guard let first = runs.first(where: { $0.layers.contains { $0.coupling != nil } }) else { return nil }
        let ok = first.layers.filter { $0.coupling != nil }
        let f = Figure(width: runs.count > 2 ? 7.6 : 6.4, height: 4)
        f.title = "Agreement of router and expert response, per layer"
        let ax = f.axes[0]
        ax.x.label = "layer"
        ax.y.label = "|TopK_{router} ∩ TopK_a| / k"
        ax.y.includesZero = true
        // Labels: the last two path parts (run/stepN), enough to tell checkpoints apart.
        let labels = runs.map { r in r.checkpoint.split(separator: "/").suffix(2).joined(separator: "/") }
        var series = zip(runs, labels).map { r, label in
            BarSeries(values: ok.map { l in r.layers.first { $0.layer == l.layer }?.coupling?.agreement ?? .nan },
                      label: runs.count == 1 ? "agreement" : label)
        }
        series.append(BarSeries(values: ok.map { Double($0.topK) / Double($0.experts) }, label: "chance k/n"))
        try ax.bars(categories: ok.map { String($0.layer) }, series: series)
        return f
    }

    /// m_data beside the proxy M, both divided by their row's diagonal, on one colour scale.
    public static func mData(_ l: LayerRouting) throws -> Figure? {
        guard let c = l.coupling else { return nil }
        let n = l.experts
        let data = (0..<n).map { i in (0..<n).map { j -> Double in
            guard let row = c.mData[i], row[i] > 0 else { return .nan }
            return row[j] / row[i]
        } }
        let proxy = (0..<n).map { i in (0..<n).map { j in c.proxy[i][i] > 0 ? c.proxy[i][j] / c.proxy[i][i] : .nan } }
        let f = Figure(width: 10, height: 4.6, rows: 1, columns: 2)
        f.title = String(format: "Layer %d: m_{data} (tokens) beside M (router rows), r = %.2f", l.layer, c.proxyCorrelation)
        let all: [Double] = Array(data.joined()) + Array(proxy.joined())
        let scale = ColorScale.fitting(all, colormap: .viridis)
        let annotate = n <= 8 ? CellAnnotation(decimals: 2) : nil
        try f.axes[0].heatmap(data, scale: scale, annotation: annotate, diagonalOutline: .white)
        f.axes[0].title = String(format: "m_{data}[i][j] / m_{data}[i][i], α* %.2f", c.couplingThreshold)
        f.axes[0].x.label = "expert j"
        f.axes[0].y.label = "tokens routed to i"
        try f.axes[1].heatmap(proxy, scale: scale, annotation: annotate, diagonalOutline: .white)
        f.axes[1].title = "M[i][j] / M[i][i]"
        f.axes[1].x.label = "expert j"
        f.axes[1].y.label = "router row i"
        f.colorbar = Colorbar(label: "relative to the diagonal", scale: scale)
        return f
    }
}

/// Writes the folder of `moe-inspect routing --out`: figures, `tables/routing.csv`,
/// `summary.json` (the JSON of `--json`) and an `index.html` that shows them.
public enum RoutingReport {
    /// Writes the report of `runs` (the figures of the last checkpoint, saturation over all) into `folder`.
    public static func write(_ runs: [CheckpointRouting], windowLength: Int, domainNames: [String],
                             decode: ((Int32) -> String?)? = nil, to folder: String,
                             settings: FigureSettings = FigureSettings()) throws {
        guard let last = runs.last else { return }
        let sink = try FigureSink(folder: folder, settings: settings)
        let a: [(Double, Double)] = last.layers.compactMap { l in l.coupling.map { c in (c.agreement, c.chance) } }
        if runs.count >= 2 {
            try sink.add("saturation", try RoutingFigures.saturation(runs),
                         reading: "Each checkpoint's top-k overlap with the last one's on the same tokens: the router has settled where the curve reaches 1 (OLMoE's router saturation).")
        }
        try sink.add("expert_load", try RoutingFigures.loadHeatmap(last),
                     reading: String(format: "Top-k selections per expert over the balanced T k / n; max/mean averaged over layers %.2f.",
                                     last.layers.map(\.load.maxOverMean).reduce(0, +) / Double(max(last.layers.count, 1))))
        try sink.add("agreement", try RoutingFigures.agreement(runs),
                     reading: (runs.count > 1 ? "\(last.checkpoint.split(separator: "/").suffix(2).joined(separator: "/")): " : "") + agreementReading(a))
        for l in last.layers {
            if let c = l.coupling {
                try sink.add("m_data_layer\(l.layer)", try RoutingFigures.mData(l),
                             reading: String(format: "Layer %d: m_data's α* %.2f, correlation with the proxy M %.2f over %d tokens.", l.layer, c.couplingThreshold, c.proxyCorrelation, c.tokens)
                                + (c.notes.isEmpty ? "" : " " + c.notes.joined(separator: "; ")))
            }
            try sink.add("coactivation_layer\(l.layer)", try RoutingFigures.coactivation(l),
                         reading: "Layer \(l.layer): how often expert j is chosen with expert i, among the tokens routed to i.")
            try sink.add("domains_layer\(l.layer)", try RoutingFigures.domains(l),
                         reading: "Layer \(l.layer): " + l.domains.map { String(format: "%@ %.3f", $0.name, $0.score) }.joined(separator: ", ") + " (distance from uniform routing).")
        }
        try RoutingTables.summary(runs).writeCSV(to: folder + "/tables/routing.csv")
        try AtomicOutput.write(RoutingTables.json(runs, windowLength: windowLength, domainNames: domainNames, decode: decode).serialized(pretty: true) + "\n",
                               to: folder + "/summary.json")
        var body = "<h2>Layers of \(ReportPage.escape(last.checkpoint))</h2>\n<div class=\"scroll\">" + html(RoutingTables.display(RoutingTables.summary([last]))) + "</div>\n"
        body += "<p>Tables: <a href=\"tables/routing.csv\">routing.csv</a> · <a href=\"summary.json\">summary.json</a></p>\n"
        let lede = """
        Routing on \(last.layers.first?.tokens ?? 0) tokens (windows of \(windowLength); domains \(ReportPage.escape(domainNames.joined(separator: ", ")))).
        Agreement = mean |TopK<sub>router</sub>(t) ∩ TopK<sub>a</sub>(t)| / k with a<sub>tj</sub> = ‖W<sub>g</sub><sup>j</sup> x<sub>t</sub>‖;
        m_data[i][j] = mean a<sub>tj</sub> over the tokens routed to i. lb_hf is transformers' load-balancing loss on one layer (k when balanced), lb_olmo OLMo-core's (1 when balanced).
        """
        try AtomicOutput.write(ReportPage.page(title: "moe-inspect routing: " + runs.map { ($0.checkpoint as NSString).lastPathComponent }.joined(separator: ", "),
                                               lede: lede, body: body, figures: sink.figures), to: folder + "/index.html")
    }

    static func agreementReading(_ a: [(Double, Double)]) -> String {
        guard !a.isEmpty else { return "" }
        let agreement = a.map(\.0).reduce(0, +) / Double(a.count), chance = a.map(\.1).reduce(0, +) / Double(a.count)
        return String(format: "Mean agreement over layers %.3f against chance %.3f: how often the router picks the experts whose gate projection responds most to the token.", agreement, chance)
    }

    static func html(_ t: Table) -> String {
        var h = "<table><tr>" + t.columns.map { "<th>\(ReportPage.escape($0))</th>" }.joined() + "</tr>\n"
        for r in t.rows {
            h += "<tr>" + r.map { c -> String in
                if case let .number(d) = c, d.isFinite { return String(format: "<td>%.4g</td>", d) }
                return "<td>\(ReportPage.escape(c.rendered))</td>"
            }.joined() + "</tr>\n"
        }
        return h + "</table>\n"
    }
}
