import Analysis
import Checkpoints
import Foundation
import Tensors

/// The tables of `moe-inspect erc`, `epsilon` and `similarity`.
public enum CouplingTables {
    /// The `erc` columns, in order (the first fifteen are the documented interface).
    public static let ercColumns = [
        "checkpoint", "step", "layer", "n_experts", "alpha", "erc_loss", "erc_specialization", "erc_precision",
        "eps_mean", "eps_min", "eps_max", "router_cos_mean_abs", "m_diag_mean", "m_offdiag_mean", "coupling_alpha",
        "erc_loss_std", "feature", "noise_samples", "status",
    ]

    /// One row per checkpoint, MoE layer and alpha.
    public static func erc(_ results: [CheckpointCoupling], options: CouplingOptions) -> Table {
        var t = Table(columns: ercColumns)
        let samples = options.noise ? max(1, options.samples) : 0
        for c in results {
            for l in c.layers {
                let eps = l.eps
                let base: [Cell] = [.text(c.checkpoint), c.step.map { .int($0) } ?? .empty, .int(l.layer), .int(l.experts)]
                guard l.isOK, let g = l.geometry else {
                    for a in options.alphas {
                        t.rows.append(base + [.number(a)] + Array(repeating: Cell.empty, count: 10) + [.empty, .text(options.feature.rawValue), .int(samples), .text(l.status.description)])
                    }
                    continue
                }
                for a in l.ercLosses {
                    t.rows.append(base + [
                        .number(a.alpha), .number(a.loss.mean), .number(a.specialization.mean), .number(a.precision.mean),
                        .number(eps.reduce(0, +) / Double(max(eps.count, 1))), .number(eps.min() ?? .nan), .number(eps.max() ?? .nan),
                        .number(g.meanAbsCosine), .number(l.mDiagonalMean.mean), .number(l.mOffDiagonalMean.mean), .number(l.couplingAlpha),
                        .number(a.loss.std), .text(options.feature.rawValue), .int(samples), .text("ok"),
                    ])
                }
            }
        }
        return t
    }

    /// The erc table narrowed to what fits a terminal, with short headings.
    public static func ercDisplay(_ full: Table) -> Table {
        let keep: [(String, String)] = [("checkpoint", "checkpoint"), ("step", "step"), ("layer", "layer"), ("n_experts", "n"),
                                        ("alpha", "alpha"), ("erc_loss", "erc_loss"), ("erc_loss_std", "±std"),
                                        ("erc_specialization", "spec"), ("erc_precision", "prec"), ("eps_mean", "eps_mean"),
                                        ("eps_min", "eps_min"), ("router_cos_mean_abs", "|cos|"), ("coupling_alpha", "alpha*"),
                                        ("status", "status")]
        let index = keep.compactMap { k in full.columns.firstIndex(of: k.0) }
        return Table(columns: keep.map(\.1), rows: full.rows.map { r in index.map { r[$0] } })
    }

    /// One row per checkpoint, layer and expert: eps_i, ||R[i]||, ||W_g^i||_F.
    public static func epsilon(_ results: [CheckpointCoupling]) -> Table {
        var t = Table(columns: ["checkpoint", "step", "layer", "expert", "eps", "router_norm", "gate_proj_norm", "status"])
        for c in results {
            for l in c.layers {
                let base: [Cell] = [.text(c.checkpoint), c.step.map { .int($0) } ?? .empty, .int(l.layer)]
                guard l.isOK, let g = l.geometry else { t.rows.append(base + [.empty, .empty, .empty, .empty, .text(l.status.description)]); continue }
                for e in 0..<l.experts {
                    t.rows.append(base + [.int(e), .number(l.eps[e]), .number(g.routerNorms[e]),
                                          e < g.gateNorms.count ? .number(g.gateNorms[e]) : .empty, .text("ok")])
                }
            }
        }
        return t
    }

    /// One row per checkpoint and layer: router cosine similarity summary.
    public static func similarity(_ results: [CheckpointCoupling]) -> Table {
        var t = Table(columns: ["checkpoint", "step", "layer", "n_experts", "router_cos_mean_abs", "router_cos_max", "router_cos_min", "router_norm_mean", "status"])
        for c in results {
            for l in c.layers {
                let base: [Cell] = [.text(c.checkpoint), c.step.map { .int($0) } ?? .empty, .int(l.layer), .int(l.experts)]
                guard let g = l.geometry else { t.rows.append(base + [.empty, .empty, .empty, .empty, .text(l.status.description)]); continue }
                var hi = -1.0, lo = 1.0
                for i in 0..<l.experts { for j in 0..<l.experts where i != j { let v = Double(g.cosine[i, j]); hi = max(hi, v); lo = min(lo, v) } }
                t.rows.append(base + [.number(g.meanAbsCosine), .number(hi), .number(lo),
                                      .number(g.routerNorms.reduce(0, +) / Double(max(1, l.experts))), .text(l.status.description)])
            }
        }
        return t
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
