import Analysis
import Checkpoints
import Foundation
import Tensors

/// The tables of `moe-inspect erc`, `epsilon` and `similarity`.
public enum CouplingTables {
    /// The `erc` columns, in order (the first fifteen are the documented interface; `run` came last).
    public static let ercColumns = [
        "checkpoint", "step", "layer", "n_experts", "alpha", "erc_loss", "erc_specialization", "erc_precision",
        "eps_mean", "eps_min", "eps_max", "router_cos_mean_abs", "m_diag_mean", "m_offdiag_mean", "coupling_alpha",
        "erc_loss_std", "feature", "noise_samples", "status", "run",
    ]

    /// One row per checkpoint, MoE layer and alpha (`run` empty: every checkpoint is its own run's).
    public static func erc(_ results: [CheckpointCoupling], options: CouplingOptions, runs: [String]? = nil) -> Table {
        erc(
            results.enumerated().map { k, c in CheckpointNumbers(c, run: runs.map { k < $0.count ? $0[k] : "" } ?? "", options: options) },
            alphas: options.alphas)
    }

    /// One row per checkpoint, MoE layer and alpha; a layer that could not be analysed gets one
    /// row per alpha of `alphas` with its status. `erc_loss_std` is empty with fewer than two noise samples.
    public static func erc(_ checkpoints: [CheckpointNumbers], alphas: [Double]) -> Table {
        var t = Table(columns: ercColumns)
        func num(_ v: Double) -> Cell { v.isNaN ? .empty : .number(v) }
        for c in checkpoints {
            for l in c.layers {
                let base: [Cell] = [.text(c.checkpoint), c.step.map { .int($0) } ?? .empty, .int(l.layer), .int(l.experts)]
                let tail: [Cell] = [.text(c.feature), .int(c.noiseSamples), .text(l.status.description), .text(c.run)]
                guard l.isOK else {
                    for a in alphas { t.rows.append(base + [.number(a)] + Array(repeating: Cell.empty, count: 11) + tail) }
                    continue
                }
                for a in l.erc {
                    t.rows.append(
                        base + [
                            .number(a.alpha), .number(a.loss), num(a.specialization), num(a.precision),
                            num(l.epsMean), num(l.epsMin), num(l.epsMax), num(l.cosineMeanAbs),
                            num(l.mDiagonalMean), num(l.mOffDiagonalMean), .number(l.couplingAlpha), num(a.lossStd),
                        ] + tail)
                }
            }
        }
        return t
    }

    /// The erc table narrowed to what fits a terminal, with short headings; `±std` only when a
    /// row has one (more than one noise sample), `run` only when the checkpoints came from several runs.
    public static func ercDisplay(_ full: Table) -> Table {
        func has(_ column: String, _ keep: (Cell) -> Bool) -> Bool {
            guard let i = full.columns.firstIndex(of: column) else { return false }
            return full.rows.contains { keep($0[i]) }
        }
        let runs = full.columns.firstIndex(of: "run").map { i in Set(full.rows.map { $0[i].rendered }) } ?? []
        var keep: [(String, String)] = []
        if runs.count > 1 { keep.append(("run", "run")) }
        keep += [
            ("checkpoint", "checkpoint"), ("step", "step"), ("layer", "layer"), ("n_experts", "n"),
            ("alpha", "alpha"), ("erc_loss", "erc_loss"),
        ]
        if has("erc_loss_std", { $0 != .empty }) { keep.append(("erc_loss_std", "±std")) }
        keep += [
            ("erc_specialization", "spec"), ("erc_precision", "prec"), ("eps_mean", "eps_mean"),
            ("eps_min", "eps_min"), ("router_cos_mean_abs", "|cos|"), ("coupling_alpha", "alpha*"),
            ("status", "status"),
        ]
        let index = keep.compactMap { k in full.columns.firstIndex(of: k.0) }
        return Table(columns: keep.filter { full.columns.contains($0.0) }.map(\.1), rows: full.rows.map { r in index.map { r[$0] } })
    }

    /// One row per checkpoint, layer and expert: eps_i, ||R[i]||, ||W_g^i||_F.
    public static func epsilon(_ results: [CheckpointCoupling], runs: [String]? = nil) -> Table {
        var t = Table(columns: ["checkpoint", "step", "layer", "expert", "eps", "router_norm", "gate_proj_norm", "status"] + (runs == nil ? [] : ["run"]))
        for (k, c) in results.enumerated() {
            let first = t.rows.count
            defer { appendRun(&t, runs, k, from: first) }
            for l in c.layers {
                let base: [Cell] = [.text(c.checkpoint), c.step.map { .int($0) } ?? .empty, .int(l.layer)]
                guard l.isOK, let g = l.geometry else { t.rows.append(base + [.empty, .empty, .empty, .empty, .text(l.status.description)]); continue }
                for e in 0..<l.experts {
                    t.rows.append(
                        base + [
                            .int(e), .number(l.eps[e]), .number(g.routerNorms[e]),
                            e < g.gateNorms.count ? .number(g.gateNorms[e]) : .empty, .text("ok"),
                        ])
                }
            }
        }
        return t
    }

    /// One row per checkpoint and layer: router cosine similarity summary.
    public static func similarity(_ results: [CheckpointCoupling], runs: [String]? = nil) -> Table {
        var t = Table(
            columns: ["checkpoint", "step", "layer", "n_experts", "router_cos_mean_abs", "router_cos_max", "router_cos_min", "router_norm_mean", "status"]
                + (runs == nil ? [] : ["run"]))
        for (k, c) in results.enumerated() {
            let first = t.rows.count
            defer { appendRun(&t, runs, k, from: first) }
            for l in c.layers {
                let base: [Cell] = [.text(c.checkpoint), c.step.map { .int($0) } ?? .empty, .int(l.layer), .int(l.experts)]
                guard let g = l.geometry else { t.rows.append(base + [.empty, .empty, .empty, .empty, .text(l.status.description)]); continue }
                var hi = -1.0, lo = 1.0
                for i in 0..<l.experts { for j in 0..<l.experts where i != j { let v = Double(g.cosine[i, j]); hi = max(hi, v); lo = min(lo, v) } }
                t.rows.append(
                    base + [
                        .number(g.meanAbsCosine), .number(hi), .number(lo),
                        .number(g.routerNorms.reduce(0, +) / Double(max(1, l.experts))), .text(l.status.description),
                    ])
            }
        }
        return t
    }

    /// With `runs`, a last column `run` holding `runs[k]` in the rows from `first` on.
    static func appendRun(_ t: inout Table, _ runs: [String]?, _ k: Int, from first: Int) {
        guard let runs else { return }
        if t.columns.last != "run" { t.columns.append("run") }
        for i in first..<t.rows.count { t.rows[i].append(.text(k < runs.count ? runs[k] : "")) }
    }

    /// Writes each layer's M and cosine matrix as CSV into `folder` (`layer{L}_activation.csv`,
    /// `layer{L}_router_cosine.csv`).
    public static func writeMatrices(_ c: CheckpointCoupling, to folder: String) throws {
        try AtomicOutput.makeFolder(folder)
        for l in c.layers {
            if let m = l.activation {
                let rows = (0..<m.rows).map { i in (0..<m.columns).map { Double(m[i, $0]) } }
                try Table.write(matrixCSV(rows), to: folder + "/layer\(l.layer)_activation.csv")
            }
            if let g = l.geometry {
                let rows = (0..<g.cosine.rows).map { i in (0..<g.cosine.columns).map { Double(g.cosine[i, $0]) } }
                try Table.write(matrixCSV(rows), to: folder + "/layer\(l.layer)_router_cosine.csv")
            }
        }
    }
}

extension Table {
    static func write(_ text: String, to path: String) throws {
        try AtomicOutput.write(text, to: path)
    }
}
