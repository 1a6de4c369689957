import Checkpoints
import Foundation
import Plotting
import Tensors

/// A training log (`DIR/log.csv` of `moe-inspect train`): named numeric columns.
public struct TrainingLog: Sendable {
    public var path: String
    public var columns: [String: [Double]]

    /// Reads a CSV whose first line names the columns (RFC 4180); empty or non-numeric cells
    /// become NaN.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ReportError.unreadable(file: path) }
        let records = try CSV.parse(String(decoding: data, as: UTF8.self), source: path).records
        guard let header = records.first?.map({ $0.trimmingCharacters(in: .whitespaces) }),
            header.contains("step")
        else { throw ReportError.badLog(file: path, reason: "the first line must name the columns, including 'step'") }
        if let empty = header.firstIndex(of: "") { throw ReportError.badLog(file: path, reason: "column \(empty + 1) has no name") }
        if let dup = header.first(where: { h in header.filter { $0 == h }.count > 1 }) {
            throw ReportError.badLog(file: path, reason: "column '\(dup)' appears twice")
        }
        var cols = Dictionary(uniqueKeysWithValues: header.map { ($0, [Double]()) })
        for (i, cells) in records.dropFirst().enumerated() {
            guard cells.count == header.count else {
                throw ReportError.badLog(file: path, reason: "row \(i + 2) has \(cells.count) fields, the header \(header.count)")
            }
            for (name, cell) in zip(header, cells) { cols[name, default: []].append(Double(cell.trimmingCharacters(in: .whitespaces)) ?? .nan) }
        }
        guard let steps = cols["step"], !steps.isEmpty else { throw ReportError.badLog(file: path, reason: "no rows") }
        self.path = path
        columns = cols
    }
}

/// Errors of the reports layer.
public enum ReportError: SettingNamingError {
    /// A file that cannot be read.
    case unreadable(file: String)
    /// A file given as a training log that is not one.
    case badLog(file: String, reason: String)
    /// A table given to `report --tables` that cannot be read as one.
    case badTable(file: String, reason: String)
    /// A run that holds the same step twice.
    case repeatedStep(run: String, step: Int, first: String, second: String)
    /// Labels (of checkpoints or of runs) that do not fit the inputs.
    case badLabels(reason: SettingMessage)
    /// A comparison that cannot be ordered or drawn as asked.
    case badComparison(reason: String)
    /// A file of `watch`'s folder that is not what it should be.
    case badWatchFolder(file: String, reason: String)

    public func description(naming name: (Setting) -> String) -> String {
        switch self {
        case let .unreadable(f): return "\(f): cannot read"
        case let .badLog(f, r): return "\(f): not a training log: \(r)"
        case let .badTable(f, r): return "\(f): not a table of moe-inspect erc: \(r)"
        case let .repeatedStep(run, step, a, b):
            return "run \(run) holds step \(step) twice: \(a) and \(b) (give each run's checkpoints once, or name the runs with \(name(.runLabels)))"
        case let .badLabels(r): return r.rendered(naming: name)
        case let .badComparison(r): return r
        case let .badWatchFolder(f, r): return "\(f): \(r)"
        }
    }
}

extension TrainingLog {
    /// What a CSV with a `step` column is.
    public enum Kind: Sendable, Equatable {
        /// `log.csv` of `moe-inspect train` (or any log with one of the plotted columns).
        case training
        /// `eval.csv`: the held-out loss at each save.
        case heldOut
        /// Something else, said in words.
        case other(SettingMessage)
    }

    /// What this log is, from its columns.
    public var kind: Kind {
        let c = Set(columns.keys)
        if c.contains("checkpoint") && c.contains("alpha") && c.contains("erc_loss") {
            return .other(
                "a table of moe-inspect erc (one row per checkpoint, layer and alpha), not a training log; a report draws such tables (\(Setting.tables))")
        }
        if c.contains("layer") {
            return .other(
                "a per-layer table (analysis.csv of moe-inspect train has one row per layer at each save), not a training log; its coupling over training is in moe-inspect report RUN/step*"
            )
        }
        if c.contains("eval_loss") && !TrainingCurves.panels.contains(where: { c.contains($0.0) }) { return .heldOut }
        if TrainingCurves.panels.contains(where: { c.contains($0.0) }) { return .training }
        return .other("not a training log: it has none of the columns \(TrainingCurves.panels.map(\.0).joined(separator: ", ")) or eval_loss")
    }
}

/// Training curves: LM loss (with the held-out loss), load-balancing and ERC loss, eps, learning
/// rate and tokens/s against step, one line per run (runs overlaid).
public enum TrainingCurves {
    static let panels: [(String, String, String)] = [
        ("lm_loss", "LM loss", "cross-entropy (nats)"), ("erc_loss", "ERC loss", "sum over layers"),
        ("eps_mean", "noise bound ε", "mean over experts and layers"), ("lb_loss", "load-balancing loss", "n Σ f_e P_e"),
        ("lr", "learning rate", "lr"), ("tokens_per_s", "throughput", "tokens / s"),
    ]
    /// Panels that `--log-y` puts on a logarithmic axis (losses spanning a factor of 3 or more).
    static let lossPanels: Set<String> = ["lm_loss", "erc_loss", "lb_loss", "eval_loss"]

    /// The exponential moving average of `y` with weight `w` on the past (TensorBoard's smoothing,
    /// debiased so the first points are not pulled to 0); NaN points are skipped.
    public static func smoothed(_ y: [Double], weight w: Double) -> [Double] {
        guard w > 0 else { return y }
        var avg = 0.0, norm = 0.0
        return y.map { v in
            guard v.isFinite else { return v }
            avg = w * avg + (1 - w) * v
            norm = w * norm + (1 - w)
            return avg / norm
        }
    }

    /// "MoE: LM loss 1.81 at step 400 (held-out 1.83) ..." from the last row of each log.
    public static func reading(_ runs: [RunCurves]) -> String {
        let parts = runs.compactMap { r -> String? in
            var s: String
            if let log = r.log, let step = log.columns["step"]?.last, let lm = log.columns["lm_loss"]?.last(where: { $0.isFinite }) {
                s = String(format: "%@: LM loss %.4f at step %.0f", r.label, lm, step)
                if let e = log.columns["erc_loss"]?.last(where: { $0.isFinite }) { s += ", ERC loss " + Readings.number(e) }
            } else {
                s = r.label + ":"
            }
            if let ev = r.eval, let step = ev.columns["step"]?.last, let loss = ev.columns["eval_loss"]?.last(where: { $0.isFinite }) {
                s += String(format: "%@ held-out loss %.4f at step %.0f", r.log == nil ? "" : ";", loss, step)
            }
            return s
        }
        return parts.isEmpty ? "" : parts.joined(separator: "; ") + ". Training-batch losses are noisy; the held-out loss (dashed) is the one to compare."
    }

    /// The curves of `runs`; `smooth` (0..<1) draws an exponential moving average over the faint
    /// raw training curves, `logY` puts the losses on a logarithmic axis.
    public static func figure(_ runs: [RunCurves], smooth: Double = 0, logY: Bool = false, maxColumns: Int = 3) throws -> Figure {
        let logs = runs.compactMap(\.log)
        var shown = panels.filter { p in logs.contains { ($0.columns[p.0] ?? []).contains { $0.isFinite } } }
        let heldOut = runs.contains { ($0.eval?.columns["eval_loss"] ?? []).contains { $0.isFinite } }
        if heldOut && !shown.contains(where: { $0.0 == "lm_loss" }) { shown.insert(("eval_loss", "held-out loss", "cross-entropy (nats)"), at: 0) }
        let cols = min(maxColumns, max(1, shown.count)), rows = max(1, (shown.count + cols - 1) / cols)
        let f = Figure(
            width: shown.count == 1 ? 6.4 : 4.0 * Double(cols), height: (shown.count == 1 ? 4.0 : 3.2 * Double(rows)) + 0.6, rows: rows, columns: cols)
        f.title = "Training curves"
        f.legend = runs.count > 1 || heldOut ? .bottom : nil
        for (k, (key, title, yLabel)) in shown.enumerated() {
            let ax = f.axes[k]
            ax.title = key == "lm_loss" && heldOut ? "LM loss (dashed: held-out)" : title
            ax.x.label = "step"
            ax.y.label = yLabel
            if logY && lossPanels.contains(key) {
                // Only where the values span a factor of 3 or more: a log axis over 2.0 to 2.2 has no
                // tick to label (the load-balancing loss sits near k).
                let values = runs.flatMap { r -> [Double] in
                    (key == "eval_loss" ? [] : (r.log?.columns[key] ?? []))
                        + (key == "lm_loss" || key == "eval_loss" ? (r.eval?.columns["eval_loss"] ?? []) : [])
                }.filter { $0.isFinite && $0 > 0 }
                if let lo = values.min(), let hi = values.max(), hi >= 3 * lo { ax.y.scale = .logarithmic }
            }
            for (i, r) in runs.enumerated() {
                let color = CategoricalPalette.color(i)
                if key != "eval_loss", let log = r.log {
                    let x = log.columns["step"] ?? [], y = log.columns[key] ?? []
                    let pts = zip(x, y).filter { $0.0.isFinite && $0.1.isFinite }
                    if !pts.isEmpty {
                        let smoothable = smooth > 0 && key != "lr"
                        if smoothable {
                            var raw = LineSeries(x: pts.map(\.0), y: pts.map(\.1), label: nil, color: color.withAlpha(0.25))
                            raw.width = 0.8
                            try ax.plot(raw)
                        }
                        let y = smoothable ? smoothed(pts.map(\.1), weight: smooth) : pts.map(\.1)
                        try ax.plot(x: pts.map(\.0), y: y, label: r.label, color: color)
                    }
                }
                if key == "lm_loss" || key == "eval_loss", let ev = r.eval {
                    let x = ev.columns["step"] ?? [], y = ev.columns["eval_loss"] ?? []
                    let pts = zip(x, y).filter { $0.0.isFinite && $0.1.isFinite }
                    if !pts.isEmpty {
                        try ax.plot(
                            x: pts.map(\.0), y: pts.map(\.1), label: runs.count > 1 ? r.label + " held-out" : "held-out", color: color,
                            marker: .circle, style: .dashed)
                    }
                }
            }
            ax.legend = .none
        }
        if smooth > 0 { f.title = String(format: "Training curves (EMA smoothing %g; raw values faint)", smooth) }
        return f
    }
}

/// The settings of the reports that messages name.
extension Setting {
    /// The names of the runs that the checkpoints belong to.
    package static let runLabels: Setting = "runLabels"
    /// The names of the compared checkpoints.
    package static let labels: Setting = "labels"
    /// Tables of ERC values drawn as a report.
    package static let tables: Setting = "tables"
}
