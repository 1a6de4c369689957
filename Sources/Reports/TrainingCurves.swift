import Checkpoints
import Foundation
import Plotting

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
              header.contains("step") else { throw ReportError.badLog(file: path, reason: "the first line must name the columns, including 'step'") }
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
public enum ReportError: Error, CustomStringConvertible {
    case unreadable(file: String)
    case badLog(file: String, reason: String)
    public var description: String {
        switch self {
        case let .unreadable(f): return "\(f): cannot read"
        case let .badLog(f, r): return "\(f): not a training log: \(r)"
        }
    }
}

/// Training curves: LM, load-balancing and ERC loss, eps, learning rate and tokens/s against step,
/// one line per log (runs overlaid).
public enum TrainingCurves {
    static let panels: [(String, String, String)] = [
        ("lm_loss", "LM loss", "cross-entropy (nats)"), ("erc_loss", "ERC loss", "sum over layers"),
        ("eps_mean", "noise bound ε", "mean over experts and layers"), ("lb_loss", "load-balancing loss", "n Σ f_e P_e"),
        ("lr", "learning rate", "lr"), ("tokens_per_s", "throughput", "tokens / s"),
    ]

    /// "MoE: LM loss 1.81 at step 400; MoE+ERC: 1.80 ..." from the last row of each log.
    public static func reading(_ logs: [TrainingLog], labels: [String]) -> String {
        let parts = zip(labels, logs).compactMap { (label, log) -> String? in
            guard let step = log.columns["step"]?.last, let lm = log.columns["lm_loss"]?.last(where: { $0.isFinite }) else { return nil }
            var s = String(format: "%@: LM loss %.4f at step %.0f", label, lm, step)
            if let e = log.columns["erc_loss"]?.last(where: { $0.isFinite }) { s += String(format: ", ERC loss %.4g", e) }
            return s
        }
        return parts.isEmpty ? "" : parts.joined(separator: "; ") + " (training batches; held-out losses are in each run's eval.csv)."
    }

    public static func figure(_ logs: [TrainingLog], labels: [String]) throws -> Figure {
        let shown = panels.filter { p in logs.contains { ($0.columns[p.0] ?? []).contains { $0.isFinite } } }
        let cols = min(3, max(1, shown.count)), rows = max(1, (shown.count + cols - 1) / cols)
        let f = Figure(width: 4.0 * Double(cols), height: 3.2 * Double(rows) + 0.6, rows: rows, columns: cols)
        f.title = "Training curves"
        f.legend = logs.count > 1 ? .bottom : nil
        for (k, (key, title, yLabel)) in shown.enumerated() {
            let ax = f.axes[k]
            ax.title = title
            ax.x.label = "step"
            ax.y.label = yLabel
            for (i, log) in logs.enumerated() {
                let x = log.columns["step"] ?? [], y = log.columns[key] ?? []
                let pts = zip(x, y).filter { $0.0.isFinite && $0.1.isFinite }
                guard !pts.isEmpty else { continue }
                try ax.plot(x: pts.map(\.0), y: pts.map(\.1), label: labels[i], color: CategoricalPalette.color(i))
            }
            if logs.count == 1 { ax.legend = .none }
        }
        return f
    }
}
