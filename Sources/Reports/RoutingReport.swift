import Checkpoints
import Foundation
import Plotting
import Routing

/// Figures of `moe-inspect routing`, one builder per figure.
public enum RoutingFigures {
    /// Expert load per layer: counts / (T k / n), 1 when balanced (layers down, experts across).
    public static func loadHeatmap(_ c: CheckpointRouting, label: String? = nil) throws -> Figure? {
        guard let n = c.layers.first?.experts, c.layers.allSatisfy({ $0.experts == n }) else { return nil }
        let values = c.layers.map { l in l.load.counts.map { Double($0) * Double(l.experts) / Double(l.tokens * l.topK) } }
        let f = Figure(width: min(12, 2.5 + 0.22 * Double(n)), height: min(9, 1.6 + 0.32 * Double(c.layers.count)))
        f.title = "Expert load (1 = balanced)" + (label.map { ", " + $0 } ?? "")
        let ax = f.axes[0]
        ax.x.label = "expert"
        ax.y.label = "layer"
        let scale = ColorScale.fitting(values.joined(), colormap: .viridis)
        try ax.heatmap(
            values, scale: scale, annotation: n <= 8 && c.layers.count <= 8 ? CellAnnotation(decimals: 2) : nil,
            rowLabels: c.layers.map { String($0.layer) })
        ax.x.showsTickLabels = n <= 32
        ax.colorbar = Colorbar(label: "top-k selections / (T k / n)", scale: scale)
        return f
    }

    /// Co-activation of one layer as OLMoE draws it: P(j in top-k | i in top-k) = C[i][j] / C[i][i]
    /// (the diagonal left blank).
    public static func coactivation(_ l: LayerRouting, label: String? = nil) throws -> Figure? {
        let n = l.experts
        let values = (0..<n).map { i in
            (0..<n).map { j -> Double in
                let d = Double(l.load.coactivation[i][i])
                return i == j || d == 0 ? .nan : Double(l.load.coactivation[i][j]) / d
            }
        }
        let f = Figure(width: 5.6, height: 4.8)
        f.title = "Co-activation, layer \(l.layer)" + (label.map { ", " + $0 } ?? "")
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
    public static func domains(_ l: LayerRouting, label: String? = nil) throws -> Figure? {
        guard l.domains.count >= 2 else { return nil }
        let values = l.domains.map(\.specialization)
        let f = Figure(width: min(12, 2.5 + 0.22 * Double(l.experts)), height: 1.8 + 0.4 * Double(l.domains.count))
        f.title = "Domain specialization, layer \(l.layer)" + (label.map { ", " + $0 } ?? "")
        let ax = f.axes[0]
        ax.x.label = "expert"
        let top = max(2, values.joined().filter(\.isFinite).max() ?? 2)
        let scale = ColorScale(colormap: .viridis, range: 0...top)
        try ax.heatmap(values, scale: scale, rowLabels: l.domains.map(\.name))
        ax.colorbar = Colorbar(label: "share / (k/n)", scale: scale)
        return f
    }

    /// Router saturation: each checkpoint's top-k overlap with the last, one line per layer.
    public static func saturation(_ runs: [CheckpointRouting], label: String? = nil) throws -> Figure? {
        guard runs.count >= 2, let last = runs.last else { return nil }
        let steps = runs.enumerated().map { Double($0.element.step ?? $0.offset) }
        let f = Figure(width: 6.4, height: 4.2)
        f.title = "Router saturation: top-k overlap with the last checkpoint" + (label.map { ", " + $0 } ?? "")
        let ax = f.axes[0]
        ax.x.label = runs.allSatisfy { $0.step != nil } ? "step" : "checkpoint"
        ax.y.label = "overlap"
        ax.y.includesZero = true
        for (k, l) in last.layers.enumerated() {
            let y = runs.map { r in r.layers.first { $0.layer == l.layer }?.saturation ?? .nan }
            try ax.plot(
                x: steps, y: y, label: "layer \(l.layer)",
                color: last.layers.count > 1 ? Colormap.viridis.color(at: 0.88 * Double(k) / Double(last.layers.count - 1)) : nil, marker: .circle)
        }
        ax.legend = last.layers.count <= 12 ? .automatic : .none
        return f
    }

    /// Agreement of the router's top-k with the experts that respond most, per layer, for every
    /// checkpoint, beside chance.
    /// - Parameter labels: a name per checkpoint (default: the last two path parts).
    public static func agreement(_ runs: [CheckpointRouting], labels: [String]? = nil) throws -> Figure? {
        guard let first = runs.first(where: { $0.layers.contains { $0.coupling != nil } }) else { return nil }
        let ok = first.layers.filter { $0.coupling != nil }
        let f = Figure(width: runs.count > 2 ? 7.6 : 6.4, height: 4)
        f.title = "Agreement of router and expert response, per layer"
        let ax = f.axes[0]
        ax.x.label = "layer"
        ax.y.label = "|TopK_{router} ∩ TopK_a| / k"
        ax.y.includesZero = true
        // Default labels: the last two path parts (run/stepN), enough to tell checkpoints apart.
        let labels = labels ?? runs.map { r in r.checkpoint.split(separator: "/").suffix(2).joined(separator: "/") }
        var series = zip(runs, labels).map { r, label in
            BarSeries(
                values: ok.map { l in r.layers.first { $0.layer == l.layer }?.coupling?.agreement ?? .nan },
                label: runs.count == 1 ? "agreement" : label)
        }
        series.append(BarSeries(values: ok.map { Double($0.topK) / Double($0.experts) }, label: "chance k/n"))
        try ax.bars(categories: ok.map { String($0.layer) }, series: series)
        return f
    }

    /// m_data beside the proxy M, both divided by their row's diagonal, on one colour scale.
    public static func mData(_ l: LayerRouting, label: String? = nil) throws -> Figure? {
        guard let c = l.coupling else { return nil }
        let n = l.experts
        let data = (0..<n).map { i in
            (0..<n).map { j -> Double in
                guard let row = c.mData[i], row[i] > 0 else { return .nan }
                return row[j] / row[i]
            }
        }
        let proxy = (0..<n).map { i in (0..<n).map { j in c.proxy[i][i] > 0 ? c.proxy[i][j] / c.proxy[i][i] : .nan } }
        let f = Figure(width: 10, height: 4.6, rows: 1, columns: 2)
        f.title = String(format: "Layer %d: m_{data} (tokens) beside M (router rows), r = %.2f", l.layer, c.proxyCorrelation) + (label.map { ", " + $0 } ?? "")
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

/// The routing of some tokens through checkpoints, ready for a page: what `routing` measured,
/// how the tokens were cut, and how to show a token id as text.
public struct DataRouting: Sendable {
    /// The checkpoints' routing, in the order they were run.
    public var runs: [CheckpointRouting]
    /// Tokens per window.
    public var windowLength: Int
    /// The `--data` domains in order.
    public var domainNames: [String]
    /// A token id as text (nil: ids only).
    public var decode: (@Sendable (Int32) -> String?)?

    public init(runs: [CheckpointRouting], windowLength: Int, domainNames: [String], decode: (@Sendable (Int32) -> String?)? = nil) {
        self.runs = runs
        self.windowLength = windowLength
        self.domainNames = domainNames
        self.decode = decode
    }

    /// The JSON of `routing --json`: one object per checkpoint.
    public var json: JSONValue { RoutingTables.json(runs, windowLength: windowLength, domainNames: domainNames, decode: decode) }
}

/// The routing part of a page: `routing --out` is nothing else; `report --data` and
/// `compare --data` add it to their own pages.
public enum RoutingReport {
    /// Writes the folder of `moe-inspect routing --out`: figures, `tables/routing.csv`,
    /// `summary.json` (the JSON of `--json`) and an `index.html` that shows them.
    public static func write(_ routed: DataRouting, to folder: String, settings: FigureSettings = FigureSettings()) throws {
        guard let last = routed.runs.last else { return }
        let sink = try FigureSink(folder: folder, settings: settings)
        // two checkpoints are often both "step400": name each by its last two path parts, and say
        // whose per-layer figures these are when there are several
        let names = routed.runs.map { $0.checkpoint.split(separator: "/").suffix(2).joined(separator: "/") }
        let lastName = names.last ?? last.checkpoint
        try addFigures(routed, names: names, detailed: [(routed.runs.count - 1, nil)], to: sink)
        try RoutingTables.summary(routed.runs).writeCSV(to: folder + "/tables/routing.csv")
        try AtomicOutput.write(routed.json.serialized(pretty: true) + "\n", to: folder + "/summary.json")
        var body = "<div class=\"scroll\">" + html(RoutingTables.display(RoutingTables.summary(routed.runs))) + "</div>\n"
        if routed.runs.count > 1 {
            body += "<p>Expert load, m_data beside M, co-activation and domains are drawn for \(ReportPage.escape(lastName)), the last checkpoint given.</p>\n"
        }
        body += "<p>Tables: <a href=\"tables/routing.csv\">routing.csv</a> · <a href=\"summary.json\">summary.json</a></p>\n"
        try AtomicOutput.write(
            ReportPage.page(
                title: "moe-inspect routing: " + names.joined(separator: ", "),
                lede: lede(routed), verdict: [],
                sections: [PageSection(id: "routing", title: routed.runs.count > 1 ? "Layers of every checkpoint" : "Layers of \(last.checkpoint)", html: body)],
                figures: sink.figures, info: PageInfo()),
            to: folder + "/index.html")
    }

    /// Adds the routing of `routed` to a report folder: its figures to `sink`, `tables/routing.csv`
    /// and `routing.json` (named in `tables`); returns the page's section.
    /// - Parameters:
    ///   - names: the page's name of each checkpoint (nil: the last two path parts).
    ///   - detailed: the checkpoints (indices into `routed.runs`) that get per-layer figures, each
    ///     with the label that tells their figures apart (nil when only one is shown).
    static func add(
        _ routed: DataRouting, names: [String]?, detailed: [(index: Int, label: String?)], to sink: FigureSink,
        folder: String, tables: inout [String]
    ) throws -> PageSection {
        try addFigures(routed, names: names, detailed: detailed, to: sink)
        try RoutingTables.summary(routed.runs).writeCSV(to: folder + "/tables/routing.csv")
        try AtomicOutput.write(routed.json.serialized(pretty: true) + "\n", to: folder + "/routing.json")
        tables += ["tables/routing.csv", "routing.json"]
        let shown = detailed.compactMap { $0.index < routed.runs.count ? routed.runs[$0.index] : nil }
        let body = "<p>" + lede(routed) + "</p>\n<div class=\"scroll\">" + html(RoutingTables.display(RoutingTables.summary(shown))) + "</div>\n"
        return PageSection(id: "routing", title: "Routing on data", html: body)
    }

    static func lede(_ routed: DataRouting) -> String {
        """
        Routing on \(routed.runs.last?.layers.first?.tokens ?? 0) tokens (windows of \(routed.windowLength); domains \(ReportPage.escape(routed.domainNames.joined(separator: ", ")))).
        Agreement = mean |TopK<sub>router</sub>(t) ∩ TopK<sub>a</sub>(t)| / k with a<sub>tj</sub> = ‖W<sub>g</sub><sup>j</sup> x<sub>t</sub>‖;
        m_data[i][j] = mean a<sub>tj</sub> over the tokens routed to i. lb_hf is transformers' load-balancing loss on one layer (k when balanced), lb_olmo OLMo-core's (1 when balanced).
        """
    }

    /// The routing figures: router saturation over each run's checkpoints, agreement of every
    /// checkpoint against chance, then the load, m_data, co-activation and domain figures of the
    /// `detailed` checkpoints.
    static func addFigures(_ routed: DataRouting, names: [String]?, detailed: [(index: Int, label: String?)], to sink: FigureSink) throws {
        let runs = routed.runs
        guard let last = runs.last else { return }
        let name = names ?? runs.map { $0.checkpoint.split(separator: "/").suffix(2).joined(separator: "/") }
        // router saturation: one figure per run (the checkpoints in one folder), in step order
        var folders: [String] = []
        var members: [String: [CheckpointRouting]] = [:]
        for r in runs {
            let folder = (r.checkpoint as NSString).deletingLastPathComponent
            if members[folder] == nil { folders.append(folder) }
            members[folder, default: []].append(r)
        }
        let saturated = folders.filter { f in (members[f]?.count ?? 0) >= 2 && members[f]?.contains { $0.layers.contains { $0.saturation != nil } } == true }
        for folder in saturated {
            let run = (members[folder] ?? []).sorted { ($0.step ?? Int.min) < ($1.step ?? Int.min) }
            let runName = (folder as NSString).lastPathComponent
            try sink.add(
                "saturation" + (saturated.count > 1 ? "_" + CouplingReport.fileName(runName) : ""),
                try RoutingFigures.saturation(run, label: saturated.count > 1 ? runName : nil),
                reading: (saturated.count > 1 ? "\(runName): " : "")
                    + "Each checkpoint's top-k overlap with the run's last checkpoint on the same tokens: the router has settled where the curve reaches 1 (OLMoE's router saturation)."
            )
        }
        func means(_ c: CheckpointRouting) -> (Double, Double)? {
            let a = c.layers.compactMap { l in l.coupling.map { ($0.agreement, $0.chance) } }
            guard !a.isEmpty else { return nil }
            return (a.map(\.0).reduce(0, +) / Double(a.count), a.map(\.1).reduce(0, +) / Double(a.count))
        }
        var reading = ""
        if runs.count == 1, let m = means(last) {
            reading =
                String(format: "Mean agreement over layers %.3f against chance %.3f: ", m.0, m.1)
                + "how often the router picks the experts whose gate projection responds most to the token."
        } else if runs.count > 1 {
            reading =
                "Mean agreement over layers: "
                + zip(runs, name).compactMap { r, n in means(r).map { String(format: "%@ %.3f", n, $0.0) } }.joined(separator: ", ")
                + (means(last).map { String(format: " (chance %.3f)", $0.1) } ?? "")
                + ": how often the router picks the experts whose gate projection responds most to the token."
        }
        try sink.add("agreement", try RoutingFigures.agreement(runs, labels: name), reading: reading)
        for (index, label) in detailed where index < runs.count {
            let c = runs[index]
            let suffix = label.map { "_" + CouplingReport.fileName($0) } ?? ""
            let prefix = label.map { "\($0): " } ?? ""
            try sink.add(
                "expert_load" + suffix, try RoutingFigures.loadHeatmap(c, label: label),
                reading: prefix
                    + String(
                        format: "Top-k selections per expert over the balanced T k / n; max/mean averaged over layers %.2f.",
                        c.layers.map(\.load.maxOverMean).reduce(0, +) / Double(max(c.layers.count, 1))))
            for l in c.layers {
                if let d = l.coupling {
                    try sink.add(
                        "m_data_layer\(l.layer)" + suffix, try RoutingFigures.mData(l, label: label),
                        reading: prefix
                            + String(
                                format: "Layer %d: m_data's α* %.2f, correlation with the proxy M %.2f over %d tokens.", l.layer, d.couplingThreshold,
                                d.proxyCorrelation, d.tokens)
                            + (d.notes.isEmpty ? "" : " " + d.notes.joined(separator: "; ")))
                }
                try sink.add(
                    "coactivation_layer\(l.layer)" + suffix, try RoutingFigures.coactivation(l, label: label),
                    reading: prefix + "Layer \(l.layer): how often expert j is chosen with expert i, among the tokens routed to i.")
                try sink.add(
                    "domains_layer\(l.layer)" + suffix, try RoutingFigures.domains(l, label: label),
                    reading: prefix + "Layer \(l.layer): " + l.domains.map { String(format: "%@ %.3f", $0.name, $0.score) }.joined(separator: ", ")
                        + " (distance from uniform routing).")
            }
        }
    }

    static func html(_ t: Table) -> String {
        var h = "<table><tr>" + t.columns.map { "<th>\(ReportPage.escape($0))</th>" }.joined() + "</tr>\n"
        for r in t.rows {
            h +=
                "<tr>"
                + r.map { c -> String in
                    if case let .number(d) = c, d.isFinite { return String(format: "<td>%.4g</td>", d) }
                    return "<td>\(ReportPage.escape(c.rendered))</td>"
                }.joined() + "</tr>\n"
        }
        return h + "</table>\n"
    }
}
