import Analysis
import Checkpoints
import Foundation
import Tensors
import Plotting

/// One checkpoint of a comparison, with what its run folder adds.
public struct ComparisonItem: Sendable {
    /// The label (unique within the comparison).
    public var label: String
    /// The full analysis.
    public var coupling: CheckpointCoupling
    /// Its numbers.
    public var numbers: CheckpointNumbers
    /// The value of the `--by` parameter (alpha, weight, ...), if ordering by one.
    public var value: Double?
    /// The held-out loss at its step (its run's `eval.csv`), if known.
    public var heldOutLoss: Double?
    /// Its run's training logs, if any.
    public var curves: RunCurves?

    /// An item labelled `label`.
    public init(
        label: String, coupling: CheckpointCoupling, numbers: CheckpointNumbers, value: Double? = nil,
        heldOutLoss: Double? = nil, curves: RunCurves? = nil
    ) {
        self.label = label; self.coupling = coupling; self.numbers = numbers; self.value = value
        self.heldOutLoss = heldOutLoss; self.curves = curves
    }
}

/// `moe-inspect compare A B C ...`: the coupling figures of any number of checkpoints side by
/// side on shared scales, per-layer quantities overlaid, a table of values per layer, and with
/// `--by NAME` the quantities against a parameter of the runs (the paper's alpha ablation).
public struct ComparisonReport {
    public var settings: FigureSettings
    public var info: PageInfo

    public init(_ settings: FigureSettings = FigureSettings(), info: PageInfo = PageInfo()) { self.settings = settings; self.info = info }

    /// The per-layer table: for each layer and alpha, every checkpoint's values (and B - A for two).
    /// - Throws: `ReportError.badLabels` when labels repeat or make two columns of one name.
    public static func differences(_ items: [(label: String, numbers: CheckpointNumbers)], alphas: [Double]) throws(ReportError) -> Table {
        let labels = items.map(\.label)
        var columns = ["layer", "alpha"]
        for (name, _) in metrics {
            for l in labels { columns.append("\(name)_\(l)") }
            if labels.count == 2 { columns.append("\(name)_diff") }
        }
        if let dup = columns.first(where: { c in columns.filter { $0 == c }.count > 1 }) {
            throw .badLabels(reason: "the labels \(labels.joined(separator: ", ")) make two columns named \(dup); choose other \(Setting.labels)")
        }
        var t = Table(columns: columns)
        let layers = Array(Set(items.flatMap { $0.numbers.layers.map(\.layer) })).sorted()
        for layer in layers {
            for a in alphas {
                var row: [Cell] = [.int(layer), .number(a)]
                for (_, metric) in metrics {
                    let values = items.map { i -> Double? in
                        i.numbers.layers.first { $0.layer == layer && $0.isOK }.flatMap { metric($0, a) }.flatMap { $0.isFinite ? $0 : nil }
                    }
                    row += values.map { $0.map { .number($0) } ?? .empty }
                    if labels.count == 2 {
                        if let x = values[0], let y = values[1] { row.append(.number(y - x)) } else { row.append(.empty) }
                    }
                }
                t.rows.append(row)
            }
        }
        return t
    }

    static let metrics: [(String, @Sendable (LayerNumbers, Double) -> Double?)] = [
        ("erc_loss", { l, a in l.erc(at: a)?.loss }),
        ("coupling_alpha", { l, _ in l.couplingAlpha }),
        ("eps_mean", { l, _ in l.epsMean }),
        ("router_cos_mean_abs", { l, _ in l.cosineMeanAbs }),
        ("m_diag_over_offdiag", { l, _ in l.mOffDiagonalMean > 0 ? l.mDiagonalMean / l.mOffDiagonalMean : nil }),
    ]

    /// Writes the comparison of `items` into `folder`; with `by`, the items are already in order of their `value`.
    @discardableResult
    /// - Parameter routing: the items' routing on data, in the items' order (`compare --data`).
    public func write(
        _ items: [ComparisonItem], options: CouplingOptions, by: String? = nil, routing: DataRouting? = nil,
        to folder: String
    ) throws -> [ReportFigure] {
        let sink = try FigureSink(folder: folder, settings: settings)
        let labels = items.map(\.label)
        let pairs = items.map { (label: $0.label, numbers: $0.numbers) }
        let diff = try Self.differences(pairs, alphas: options.alphas)
        var tables = ["tables/differences.csv", "tables/erc.csv"]
        if let by {
            try sink.add(
                "by_\(CouplingReport.fileName(by))", try ByParameterFigures.figure(items, name: by, alphas: options.alphas, maxColumns: settings.maxColumns(3)),
                reading: ByParameterFigures.reading(items, name: by, alphas: options.alphas))
        }
        let curves = items.compactMap(\.curves)
        if curves.count == items.count && !curves.isEmpty {
            try sink.add("training_curves", try TrainingCurves.figure(curves, maxColumns: settings.maxColumns(3)), reading: TrainingCurves.reading(curves))
        }
        try ComparisonFigures.add(
            to: sink, items: items.map { ($0.label, $0.numbers, $0.coupling) }, alphas: options.alphas, maxColumns: settings.maxColumns(4))

        try diff.writeCSV(to: folder + "/tables/differences.csv")
        try CouplingTables.erc(items.map(\.numbers), alphas: options.alphas).writeCSV(to: folder + "/tables/erc.csv")
        var sections: [PageSection] = []
        if let by {
            let t = ByParameterFigures.table(items, name: by, alphas: options.alphas)
            let file = "tables/by_\(CouplingReport.fileName(by)).csv"
            try t.writeCSV(to: folder + "/" + file)
            tables.insert(file, at: 0)
            sections.append(
                PageSection(
                    id: "by", title: "Against \(by)",
                    html: ReportPage.table(t, caption: "Means over the analysed layers, in order of \(ReportPage.escape(by)).")))
        }
        sections.append(PageSection(id: "differences", title: "Per layer", html: ReportPage.table(diff)))
        if let routing {
            sections.append(
                try RoutingReport.add(
                    routing, names: labels, detailed: labels.indices.map { (index: $0, label: Optional(labels[$0])) }, to: sink, folder: folder,
                    tables: &tables))
        }
        tables.append("summary.json")
        sections.append(
            PageSection(
                id: "tables", title: "Tables",
                html: "<p>" + tables.map { "<a href=\"\(ReportPage.escape($0))\">\(ReportPage.escape($0))</a>" }.joined(separator: " · ") + "</p>\n"))
        let title = "moe-inspect comparison: " + labels.joined(separator: " vs ")
        let lede =
            ReportPage.lede(options) + " Checkpoints: "
            + items.map { "<b>\(ReportPage.escape($0.label))</b> = \(ReportPage.escape($0.coupling.checkpoint))" }.joined(separator: ", ") + "."
        let verdict = Readings.verdict(pairs, alpha: options.alphas.first)
        try AtomicOutput.write(
            ReportPage.page(title: title, lede: lede, verdict: verdict, sections: sections, figures: sink.figures, info: info),
            to: folder + "/index.html")
        let summary = JSONValue.object([
            ("tool", .string(info.version)), ("command", .string(info.command)),
            ("labels", .array(labels.map { .string($0) })),
            (
                "checkpoints",
                .array(
                    items.map { i in
                        .object([
                            ("label", .string(i.label)), ("checkpoint", .string(i.coupling.checkpoint)), ("step", i.numbers.step.map { .int($0) } ?? .null),
                            (by ?? "value", i.value.map { .number($0) } ?? .null), ("held_out_loss", i.heldOutLoss.map { .number($0) } ?? .null),
                        ])
                    })
            ),
            ("differences", diff.json),
        ])
        try AtomicOutput.write(summary.serialized(pretty: true) + "\n", to: folder + "/summary.json")
        try ReportMarker.write(into: folder, kind: "compare")
        return sink.figures
    }
}

/// Figures that put several checkpoints on shared scales.
public enum ComparisonFigures {
    /// Columns of a grid of `count` panels: at most four.
    static func columns(_ count: Int, max most: Int = 4) -> Int { min(most, max(1, count)) }

    /// Adds the comparison figures of `items` (label, numbers, full analysis if at hand) to `sink`.
    static func add(
        to sink: FigureSink, items: [(label: String, numbers: CheckpointNumbers, full: CheckpointCoupling?)], alphas: [Double], maxColumns: Int = 4
    ) throws {
        let labels = items.map(\.label)
        let numbers = items.map(\.numbers)
        var perLayer: [(String, String, String, Bool, (LayerNumbers) -> Double?)] = alphas.enumerated().map { k, a in
            (
                "erc_by_layer" + (k == 0 ? "" : String(format: "_alpha%g", a)), String(format: "ERC loss per layer (α = %g)", a), "ERC loss", true,
                { $0.erc(at: a)?.loss }
            )
        }
        perLayer += [
            ("coupling_alpha", "Coupling threshold α* per layer", "α*", false, { $0.couplingAlpha }),
            ("epsilon_by_layer", "Noise bound ε per layer (mean over experts)", "mean ε", false, { $0.epsMean }),
            ("router_cosine_by_layer", "Router similarity per layer", "mean |cos(R[i], R[j])|", false, { $0.cosineMeanAbs }),
        ]
        for (stem, title, yLabel, fromZero, value) in perLayer {
            try sink.add(
                stem, try overlaid(numbers, labels: labels, title: title, yLabel: yLabel, fromZero: fromZero, value: value),
                reading: reading(numbers, labels: labels, name: yLabel, value: value))
        }
        let full = items.compactMap(\.full)
        guard full.count == items.count else { return }
        try sink.add(
            "coupling_profile", try profiles(full, labels: labels, maxColumns: maxColumns),
            reading:
                "Each panel is one checkpoint, on the same axes; a diamond marks each layer's α*: lines that reach zero at smaller α belong to more tightly coupled layers."
        )
        let layers = Array(Set(full.flatMap { $0.layers.filter(\.isOK).map(\.layer) })).sorted()
        for layer in layers {
            for cosine in [false, true] {
                let mats: [(Int, [[Double]])] = full.enumerated().compactMap { k, r in
                    guard let l = r.layers.first(where: { $0.layer == layer && $0.isOK }), let t = cosine ? l.geometry?.cosine : l.activation else {
                        return nil
                    }
                    return (k, CouplingFigures.matrix(t))
                }
                try sink.add(
                    (cosine ? "router_cosine_layer" : "activation_layer") + "\(layer)",
                    try sideBySide(full, labels: labels, layer: layer, cosine: cosine, maxColumns: maxColumns),
                    reading: cosine
                        ? "Layer \(layer): router cosine similarity of each checkpoint, on the same diverging scale."
                        : "Layer \(layer): M of each checkpoint on one colour scale; a brighter diagonal against its row and column is tighter coupling.",
                    hover: mats.map { k, m in
                        .heatmap(
                            axes: k, values: m, rowName: cosine ? "expert" : "proxy", columnName: "expert", valueName: cosine ? "cos" : "M", title: labels[k])
                    })
            }
        }
    }

    /// A per-layer quantity, one line per checkpoint; 0 on the axis only for quantities whose floor it is.
    public static func overlaid(
        _ items: [CheckpointNumbers], labels: [String], title: String, yLabel: String, fromZero: Bool,
        value: (LayerNumbers) -> Double?
    ) throws -> Figure? {
        let f = Figure(width: 6.4, height: 4)
        f.title = title
        let ax = f.axes[0]
        var any = false
        var allLayers = Set<Int>()
        for (k, r) in items.enumerated() {
            let pts = r.okLayers.compactMap { l in value(l).flatMap { $0.isFinite ? (Double(l.layer), $0) : nil } }
            guard !pts.isEmpty else { continue }
            any = true
            allLayers.formUnion(pts.map { Int($0.0) })
            try ax.plot(
                x: pts.map(\.0), y: pts.map(\.1), label: labels[k], color: CategoricalPalette.color(k),
                marker: SeriesFigures.markers[k % SeriesFigures.markers.count])
        }
        guard any else { return nil }
        CouplingFigures.layerAxis(ax, allLayers.sorted())
        ax.y.label = yLabel
        ax.y.includesZero = fromZero
        ax.legend = .best
        return f
    }

    /// "Mean over layers of α*: A 2.15, B 0.86."
    static func reading(_ items: [CheckpointNumbers], labels: [String], name: String, value: (LayerNumbers) -> Double?) -> String {
        let means = items.map { $0.mean(value) }
        let shown = zip(labels, means).map { "\($0) \($1.map(Readings.number) ?? "–")" }
        let distinct = Set(means.compactMap { $0.map(Readings.number) })
        return "Mean over layers of " + name + ": " + shown.joined(separator: ", ") + (distinct.count == 1 && means.count > 1 ? " (the same for all)." : ".")
    }

    /// Coupling profiles of each checkpoint in its own panel, shared axes, alpha* marked.
    public static func profiles(_ runs: [CheckpointCoupling], labels: [String], maxColumns: Int = 4) throws -> Figure? {
        let cols = columns(runs.count, max: maxColumns), rows = (runs.count + cols - 1) / cols
        let f = Figure(width: 3.9 * Double(cols) + 0.8, height: 3.6 * Double(rows) + 0.5, rows: rows, columns: cols)
        f.title = "Coupling profile: ERC loss against α"
        f.sharesY = true
        let alphas = CouplingFigures.profileAlphas(runs.flatMap { $0.layers.filter(\.isOK).map(\.couplingAlpha) })
        var any = false
        for (k, r) in runs.enumerated() {
            let ax = f.axes[k]
            ax.title = labels[k]
            let ok = r.layers.filter { $0.isOK && $0.activation != nil }
            if !ok.isEmpty { any = true }
            try CouplingFigures.drawProfile(ax, ok, alphas: alphas)
            if k % cols != 0 { ax.y.label = nil }
            ax.legend = ok.count <= 8 ? .best : .none
        }
        return any ? f : nil
    }

    /// One layer's M (or router cosine) of each checkpoint side by side on one colour scale.
    public static func sideBySide(_ runs: [CheckpointCoupling], labels: [String], layer: Int, cosine: Bool, maxColumns: Int = 4) throws -> Figure? {
        let mats: [[[Double]]?] = runs.map { r in
            guard let l = r.layers.first(where: { $0.layer == layer && $0.isOK }) else { return nil }
            let t = cosine ? l.geometry?.cosine : l.activation
            return t.map(CouplingFigures.matrix)
        }
        let present = mats.compactMap { $0 }
        guard !present.isEmpty else { return nil }
        let cols = columns(runs.count, max: maxColumns), rows = (runs.count + cols - 1) / cols
        let f = Figure(width: 3.6 * Double(cols) + 1.3, height: 3.7 * Double(rows) + 0.4, rows: rows, columns: cols)
        f.title = cosine ? "Router cosine similarity, layer \(layer)" : "Activation matrix M, layer \(layer)"
        let scale = cosine ? ColorScale.symmetric(limit: 1) : ColorScale.fitting(present.flatMap { $0.joined() }, colormap: .viridis)
        for (k, m) in mats.enumerated() {
            let ax = f.axes[k]
            ax.title = labels[k]
            guard let m else { continue }
            try ax.heatmap(m, scale: scale, diagonalOutline: cosine ? nil : .white)
            ax.x.label = "expert j"
            if k % cols == 0 { ax.y.label = cosine ? "expert i" : "proxy i" }
            ax.x.showsTickLabels = m.count <= 16
            ax.y.showsTickLabels = m.count <= 16
        }
        f.colorbar = Colorbar(label: cosine ? "cos(R[i], R[j])" : "M[i,j]", scale: scale)
        return f
    }
}

/// The quantities of a comparison against a parameter of its runs (`compare --by alpha`): the
/// held-out loss, alpha*, eps and the ERC loss, each a point per checkpoint (mean over layers,
/// band from the smallest to the largest layer).
public enum ByParameterFigures {
    static func panels(_ items: [ComparisonItem], alphas: [Double]) -> [(String, Bool, (ComparisonItem) -> (Double, Double, Double)?)] {
        func layers(_ v: @escaping (LayerNumbers) -> Double?) -> (ComparisonItem) -> (Double, Double, Double)? {
            { i in
                guard let m = i.numbers.mean(v), let r = i.numbers.range(v) else { return nil }
                return (m, r.lowerBound, r.upperBound)
            }
        }
        var p: [(String, Bool, (ComparisonItem) -> (Double, Double, Double)?)] = []
        if items.contains(where: { $0.heldOutLoss != nil }) {
            p.append(("held-out loss", false, { i in i.heldOutLoss.map { ($0, $0, $0) } }))
        }
        p.append(("α*", false, layers { $0.couplingAlpha }))
        p.append(("mean ε", false, layers { $0.epsMean }))
        for a in alphas { p.append((String(format: "ERC loss (α = %g)", a), true, layers { $0.erc(at: a)?.loss })) }
        return p
    }

    /// The figure: one panel per quantity against `name`.
    public static func figure(_ items: [ComparisonItem], name: String, alphas: [Double], maxColumns: Int = 3) throws -> Figure? {
        let ps = panels(items, alphas: alphas)
        let cols = ps.count == 4 ? min(2, maxColumns) : min(maxColumns, ps.count), rows = (ps.count + cols - 1) / cols
        let f = Figure(width: 4.0 * Double(cols), height: 3.3 * Double(rows) + 0.5, rows: rows, columns: cols)
        f.title = "Against \(name)"
        var any = false
        for (k, (title, fromZero, value)) in ps.enumerated() {
            let ax = f.axes[k]
            ax.title = title
            ax.x.label = name
            ax.y.includesZero = fromZero
            let pts = items.compactMap { i -> (Double, (Double, Double, Double))? in
                guard let x = i.value, let v = value(i) else { return nil }
                return (x, v)
            }
            guard !pts.isEmpty else { continue }
            any = true
            let banded = pts.contains { $0.1.1 != $0.1.2 }
            try ax.plot(
                x: pts.map(\.0), y: pts.map(\.1.0), label: banded ? "mean over layers (band: min to max)" : nil,
                color: CategoricalPalette.color(0), marker: .circle,
                band: banded ? (lower: pts.map(\.1.1), upper: pts.map(\.1.2)) : nil)
            let xs = Set(pts.map(\.0)).sorted()
            if xs.count <= 8 { ax.x.ticks = xs }
            // ERC at alpha drives alpha* below alpha: the identity line shows how far below.
            if title == "α*" && name.lowercased().contains("alpha"), let lo = xs.first, let hi = xs.last, hi > lo {
                try ax.plot(x: [lo, hi], y: [lo, hi], label: "α* = \(name)", color: RGBColor(hex: 0x888888), style: .dashed)
                ax.legend = .best
                continue
            }
            ax.legend = .none
        }
        return any ? f : nil
    }

    /// "held-out loss: 1.82 at alpha 0.5, 1.80 at alpha 1, ...".
    public static func reading(_ items: [ComparisonItem], name: String, alphas: [Double]) -> String {
        panels(items, alphas: alphas).compactMap { (title, _, value) -> String? in
            let pts = items.compactMap { i -> String? in
                guard let x = i.value, let v = value(i) else { return nil }
                return "\(Readings.number(v.0)) at \(name) \(Readings.number(x))"
            }
            return pts.isEmpty ? nil : title + ": " + pts.joined(separator: ", ")
        }.joined(separator: "; ") + ". Bands span the layers."
    }

    /// One row per checkpoint: its value of `name` and the means.
    public static func table(_ items: [ComparisonItem], name: String, alphas: [Double]) -> Table {
        var t = Table(
            columns: [name, "label", "checkpoint", "step", "held_out_loss", "coupling_alpha_mean", "eps_mean"]
                + alphas.map { String(format: "erc_loss_alpha%g_mean", $0) })
        for i in items {
            func m(_ v: (LayerNumbers) -> Double?) -> Cell { i.numbers.mean(v).map { .number($0) } ?? .empty }
            t.rows.append(
                [
                    i.value.map { .number($0) } ?? .empty, .text(i.label), .text(i.coupling.checkpoint), i.numbers.step.map { .int($0) } ?? .empty,
                    i.heldOutLoss.map { .number($0) } ?? .empty, m { $0.couplingAlpha }, m { $0.epsMean },
                ]
                    + alphas.map { a in m { $0.erc(at: a)?.loss } })
        }
        return t
    }

    /// The value of `name` in `text`: `alpha0.5`, `alpha=0.5`, `erc-alpha_0.5`, `Alpha-2` (case
    /// ignored; the name must not continue a longer word on its left).
    public static func value(of name: String, in text: String) -> Double? {
        let t = Array(text.lowercased().unicodeScalars), n = Array(name.lowercased().unicodeScalars)
        guard !n.isEmpty, t.count > n.count else { return nil }
        var i = t.count - n.count
        while i >= 0 {
            defer { i -= 1 }
            guard Array(t[i..<(i + n.count)]) == n else { continue }
            if i > 0, CharacterSet.letters.contains(t[i - 1]) { continue }
            var j = i + n.count
            while j < t.count, "=_-: ".unicodeScalars.contains(t[j]) { j += 1 }
            var s = ""
            if j < t.count, t[j] == "-" || t[j] == "+" { s.unicodeScalars.append(t[j]); j += 1 }
            var digits = false
            while j < t.count, CharacterSet.decimalDigits.contains(t[j]) { s.unicodeScalars.append(t[j]); j += 1; digits = true }
            if j + 1 < t.count, t[j] == ".", CharacterSet.decimalDigits.contains(t[j + 1]) {
                s += "."; j += 1
                while j < t.count, CharacterSet.decimalDigits.contains(t[j]) { s.unicodeScalars.append(t[j]); j += 1; digits = true }
            }
            guard digits else { continue }
            if j + 1 < t.count, t[j] == "e" {
                var k = j + 1, e = "e"
                if k < t.count, t[k] == "-" || t[k] == "+" { e.unicodeScalars.append(t[k]); k += 1 }
                var ed = false
                while k < t.count, CharacterSet.decimalDigits.contains(t[k]) { e.unicodeScalars.append(t[k]); k += 1; ed = true }
                if ed { s += e }
            }
            if let v = Double(s), v.isFinite { return v }
        }
        return nil
    }
}
