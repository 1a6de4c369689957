import Foundation
import Plotting

/// A quantity of a layer drawn over training: its name on the axis and in captions, how it is
/// read from a layer, and whether 0 belongs on the axis.
public struct SeriesMetric: Sendable {
    /// The figure file stem (`series_epsilon`).
    public var stem: String
    /// The figure title.
    public var title: String
    /// The y axis label and the name in captions.
    public var name: String
    /// Whether the y axis always reaches 0 (a loss: 0 is its floor and its goal).
    public var fromZero: Bool
    /// The value of a layer (nil or NaN: not measured).
    public var value: @Sendable (LayerNumbers) -> Double?

    /// A metric.
    public init(stem: String, title: String, name: String, fromZero: Bool = false, value: @escaping @Sendable (LayerNumbers) -> Double?) {
        self.stem = stem; self.title = title; self.name = name; self.fromZero = fromZero; self.value = value
    }

    /// The ERC loss at `alpha`.
    public static func ercLoss(_ alpha: Double) -> SeriesMetric {
        SeriesMetric(stem: "series_erc_loss", title: "ERC loss over training", name: String(format: "ERC loss (α = %g)", alpha), fromZero: true) {
            $0.erc(at: alpha)?.loss
        }
    }

    /// Mean eps over the experts.
    public static var epsilon: SeriesMetric {
        SeriesMetric(stem: "series_epsilon", title: "Noise bound ε over training", name: "ε (mean over experts)") { $0.epsMean }
    }
    /// alpha*.
    public static var couplingAlpha: SeriesMetric {
        SeriesMetric(stem: "series_coupling_alpha", title: "Coupling threshold α* over training", name: "α*") { $0.couplingAlpha }
    }
    /// Mean |cos| of router rows.
    public static var routerCosine: SeriesMetric {
        SeriesMetric(stem: "series_router_cosine", title: "Router similarity over training", name: "mean |cos(R[i], R[j])|") { $0.cosineMeanAbs }
    }
}

/// Figures of quantities over training, one line per run.
public enum SeriesFigures {
    /// Markers told apart without colour, one per run.
    static let markers: [MarkerShape] = [.circle, .square, .triangleUp, .diamond, .triangleDown, .star]

    /// Whether `runs` make a series: some run has two checkpoints or more.
    public static func isSeries(_ runs: [RunSeries]) -> Bool { runs.contains { $0.checkpoints.count >= 2 } }

    static func xLabel(_ runs: [RunSeries]) -> String {
        runs.allSatisfy { $0.checkpoints.allSatisfy { $0.step != nil } } ? "training step" : "checkpoint (step where the path names one)"
    }

    /// The points of one run: x, the mean over layers, and the smallest and largest layer.
    static func points(_ run: RunSeries, _ value: (LayerNumbers) -> Double?) -> (x: [Double], mean: [Double], lo: [Double], hi: [Double]) {
        var x: [Double] = [], mean: [Double] = [], lo: [Double] = [], hi: [Double] = []
        for (k, c) in run.checkpoints.enumerated() {
            guard let m = c.mean(value), let r = c.range(value) else { continue }
            x.append(run.x(k)); mean.append(m); lo.append(r.lowerBound); hi.append(r.upperBound)
        }
        return (x, mean, lo, hi)
    }

    /// `metrics` over training in panels side by side (one per metric, e.g. one per alpha), each
    /// run one line: the mean over its layers, with a band from the smallest to the largest layer.
    /// - Returns: nil when no run has two checkpoints or nothing was measured.
    public static func overRuns(_ runs: [RunSeries], title: String, panels metrics: [SeriesMetric], maxColumns: Int = 3) throws -> Figure? {
        guard isSeries(runs), !metrics.isEmpty else { return nil }
        let cols = min(maxColumns, metrics.count), rows = (metrics.count + cols - 1) / cols
        let f = Figure(width: cols == 1 ? 6.4 : 4.2 * Double(cols), height: 3.9 * Double(rows) + 0.3, rows: rows, columns: cols)
        f.title = title
        var any = false
        let manyLayers = runs.contains { r in r.checkpoints.contains { $0.okLayers.count > 1 } }
        for (p, metric) in metrics.enumerated() {
            let ax = f.axes[p]
            if metrics.count > 1 { ax.title = metric.name }
            ax.x.label = xLabel(runs)
            ax.y.label = metric.name
            ax.y.includesZero = metric.fromZero
            for (k, run) in runs.enumerated() {
                let pts = points(run, metric.value)
                guard !pts.x.isEmpty else { continue }
                any = true
                let label = runs.count > 1 ? run.label : (manyLayers ? "mean over layers (band: min to max)" : run.label)
                try ax.plot(
                    x: pts.x, y: pts.mean, label: label, color: CategoricalPalette.color(k), marker: markers[k % markers.count],
                    band: manyLayers ? (lower: pts.lo, upper: pts.hi) : nil)
            }
            ax.legend = p == 0 ? .best : .none
        }
        return any ? f : nil
    }

    /// One panel per run (and per metric), one line per layer, all on the same y scale.
    /// - Returns: nil when no run has two checkpoints, or every checkpoint has one layer.
    public static func byLayer(_ runs: [RunSeries], title: String, panels metrics: [SeriesMetric], maxColumns: Int = 3) throws -> Figure? {
        guard isSeries(runs), !metrics.isEmpty else { return nil }
        let layers = Array(Set(runs.flatMap { $0.checkpoints.flatMap { $0.okLayers.map(\.layer) } })).sorted()
        guard layers.count > 1 else { return nil }
        let shown = runs.filter { $0.checkpoints.count >= 1 }
        let count = shown.count * metrics.count
        let cols = metrics.count > 1 && metrics.count <= maxColumns ? metrics.count : min(maxColumns, count), rows = (count + cols - 1) / cols
        let f = Figure(width: cols == 1 ? 6.4 : 4.0 * Double(cols) + 1.2, height: 3.4 * Double(rows) + 0.5, rows: rows, columns: cols)
        f.title = title
        f.sharesY = metrics.count == 1
        f.legend = layers.count <= 16 ? .right : nil
        var any = false
        for (r, run) in shown.enumerated() {
            for (m, metric) in metrics.enumerated() {
                let ax = f.axes[r * metrics.count + m]
                let index = r * metrics.count + m
                ax.title = metrics.count > 1 ? "\(run.label), \(metric.name)" : run.label
                ax.x.label = xLabel(runs)
                // The title names the metric; the y axis says it once per row.
                ax.y.label = index % cols == 0 ? metric.name : nil
                ax.y.includesZero = metric.fromZero
                for (i, l) in layers.enumerated() {
                    var xs: [Double] = [], ys: [Double] = []
                    for (k, c) in run.checkpoints.enumerated() {
                        if let n = c.layers.first(where: { $0.layer == l && $0.isOK }), let v = metric.value(n), v.isFinite {
                            xs.append(run.x(k)); ys.append(v)
                        }
                    }
                    guard !xs.isEmpty else { continue }
                    any = true
                    try ax.plot(x: xs, y: ys, label: "layer \(l)", color: CouplingFigures.lineColor(i, of: layers.count), marker: .circle)
                }
                ax.legend = .none
            }
        }
        return any ? f : nil
    }
}

/// Captions and verdicts: sentences computed from the numbers that stay true when values are
/// zero, equal, or missing.
public enum Readings {
    /// `v` with four significant digits (`0` for zero).
    public static func number(_ v: Double) -> String {
        if v == 0 { return "0" }
        return String(format: "%.4g", v)
    }

    /// A relative change in percent with a sign and as many digits as it needs.
    public static func percent(_ p: Double) -> String {
        let a = abs(p)
        if a >= 10 { return String(format: "%+.0f%%", p) }
        if a >= 1 { return String(format: "%+.1f%%", p) }
        return String(format: "%+.2g%%", p)
    }

    /// "from 0.0123 at step 100 to 0.0049 at step 400 (−60%)"; "stays at 0.0123 from step 100 to step 400";
    /// "from 0 at step 100 to 0.002 at step 400".
    public static func change(from a: Double, at p: String, to b: Double, at q: String) -> String {
        if number(a) == number(b) { return "\(number(a)) at both \(p) and \(q)" }
        if a == 0 { return "from 0 at \(p) to \(number(b)) at \(q)" }
        return "from \(number(a)) at \(p) to \(number(b)) at \(q) (\(percent(100 * (b - a) / abs(a))))"
    }

    /// One sentence per run on how the mean over layers of `metric` moved from its first to its last checkpoint.
    public static func series(_ runs: [RunSeries], _ metric: SeriesMetric) -> String {
        var parts: [String] = []
        for run in runs {
            let pts = run.checkpoints.indices.compactMap { k -> (String, Double)? in
                run.checkpoints[k].mean(metric.value).map { (run.place(k), $0) }
            }
            guard let first = pts.first, let last = pts.last else { continue }
            let who = runs.count > 1 ? "\(run.label): " : ""
            if pts.count == 1 { parts.append(who + "\(number(first.1)) at \(first.0) (one checkpoint)"); continue }
            parts.append(who + change(from: first.1, at: first.0, to: last.1, at: last.0))
        }
        guard !parts.isEmpty else { return "" }
        return "Mean over layers of \(metric.name): " + parts.joined(separator: "; ") + "."
    }

    /// How many of `count`: "all 4", "3 of 4", "none of 4", "the one".
    static func of(_ k: Int, _ count: Int) -> String {
        if count == 1 { return k == 1 ? "the one" : "not the one" }
        if k == count { return count == 2 ? "both" : "all \(count)" }
        if k == 0 { return "none of \(count)" }
        return "\(k) of \(count)"
    }

    /// "B has a lower α* than A in all 4 layers (mean 2.15 → 0.86)" for each checkpoint after the first,
    /// layers matched by index; plus the ERC loss at the first alpha and the mean eps.
    public static func verdict(_ items: [(label: String, numbers: CheckpointNumbers)], alpha: Double?) -> [String] {
        guard let base = items.first else { return [] }
        if items.count == 1 { return single(base.numbers, alpha: alpha) }
        var out: [String] = []
        for other in items.dropFirst() {
            let pairs = base.numbers.okLayers.compactMap { a -> (LayerNumbers, LayerNumbers)? in
                other.numbers.okLayers.first { $0.layer == a.layer }.map { (a, $0) }
            }
            guard !pairs.isEmpty else { out.append("\(other.label) and \(base.label) share no analysed layer."); continue }
            var clauses: [String] = []
            func compare(_ name: String, _ value: (LayerNumbers) -> Double?) {
                let v = pairs.compactMap { p -> (Double, Double)? in
                    guard let a = value(p.0), let b = value(p.1), a.isFinite, b.isFinite else { return nil }
                    return (a, b)
                }
                guard !v.isEmpty else { return }
                let lower = v.filter { number($0.1) != number($0.0) && $0.1 < $0.0 }.count
                let higher = v.filter { number($0.1) != number($0.0) && $0.1 > $0.0 }.count
                let ma = v.map(\.0).reduce(0, +) / Double(v.count), mb = v.map(\.1).reduce(0, +) / Double(v.count)
                let layers = v.count == 1 ? "layer \(pairs[0].0.layer)" : "layers"
                let means = v.count == 1 ? "\(number(ma)) → \(number(mb))" : "mean \(number(ma)) → \(number(mb))"
                if lower == 0 && higher == 0 {
                    clauses.append("the same \(name) in \(of(v.count, v.count)) \(layers) (\(number(mb)))")
                } else if lower >= higher {
                    clauses.append("a lower \(name) in \(of(lower, v.count)) \(layers) (\(means))")
                } else {
                    clauses.append("a higher \(name) in \(of(higher, v.count)) \(layers) (\(means))")
                }
            }
            compare("α*") { $0.couplingAlpha }
            if let alpha { compare(String(format: "ERC loss at α = %g", alpha)) { $0.erc(at: alpha)?.loss } }
            compare("mean ε") { $0.epsMean }
            out.append("\(other.label) has, against \(base.label), " + clauses.joined(separator: "; ") + ".")
        }
        return out
    }

    /// The verdict on one checkpoint: where alpha* lies, and whether the ERC loss at `alpha` is zero.
    static func single(_ c: CheckpointNumbers, alpha: Double?) -> [String] {
        let ok = c.okLayers.filter { $0.couplingAlpha.isFinite }
        guard let lo = ok.min(by: { $0.couplingAlpha < $1.couplingAlpha }), let hi = ok.max(by: { $0.couplingAlpha < $1.couplingAlpha }) else {
            return ["No layer could be analysed."]
        }
        var s: String
        if ok.count == 1 || number(lo.couplingAlpha) == number(hi.couplingAlpha) {
            s = "α* is \(number(hi.couplingAlpha)) in \(of(ok.count, ok.count)) analysed layer\(ok.count == 1 ? "" : "s")"
        } else {
            s = "α* ranges from \(number(lo.couplingAlpha)) (layer \(lo.layer)) to \(number(hi.couplingAlpha)) (layer \(hi.layer)) over \(ok.count) layers"
        }
        let below = ok.filter { $0.couplingAlpha <= 1 }.count
        s += "; \(of(below, ok.count)) \(ok.count == 1 ? "is" : "are") coupled at α = 1 (α* ≤ 1)."
        var out = [s]
        if let alpha {
            let losses = c.okLayers.compactMap { $0.erc(at: alpha)?.loss }.filter(\.isFinite)
            if let top = losses.max() {
                out.append(
                    top == 0
                        ? String(format: "The ERC loss at α = %g is zero in every layer.", alpha)
                        : String(format: "The ERC loss at α = %g is %@ to %@ over the layers.", alpha, number(losses.min() ?? 0), number(top)))
            }
        }
        return out
    }
}
