import Analysis
import Checkpoints
import Foundation
import Routing

/// The tables and JSON of `moe-inspect routing`.
public enum RoutingTables {
    /// The CSV / text columns, one row per checkpoint and MoE layer.
    public static let columns = [
        "checkpoint", "step", "layer", "tokens", "n_experts", "top_k", "load_max_over_mean", "load_cv", "load_entropy",
        "lb_loss_transformers", "lb_loss_olmo_core", "router_entropy", "top1_probability",
        "agreement", "chance", "coupling_tokens", "coupling_alpha", "proxy_correlation", "saturation", "notes",
    ]

    /// One row per checkpoint and MoE layer (the ERC loss of m_data per alpha is in the JSON).
    public static func summary(_ results: [CheckpointRouting]) -> Table {
        var t = Table(columns: columns)
        for c in results {
            for l in c.layers {
                let cp = l.coupling
                t.rows.append([
                    .text(c.checkpoint), c.step.map { .int($0) } ?? .empty, .int(l.layer), .int(l.tokens), .int(l.experts), .int(l.topK),
                    .number(l.load.maxOverMean), .number(l.load.coefficientOfVariation), .number(l.load.normalizedEntropy),
                    .number(l.load.loadBalancingLossTransformers), .number(l.load.loadBalancingLossOLMoCore),
                    .number(l.load.meanRouterEntropy), .number(l.load.meanTopProbability),
                    cp.map { .number($0.agreement) } ?? .empty, .number(Double(l.topK) / Double(l.experts)),
                    cp.map { .int($0.tokens) } ?? .empty, cp.map { .number($0.couplingThreshold) } ?? .empty,
                    cp.map { .number($0.proxyCorrelation) } ?? .empty, l.saturation.map { .number($0) } ?? .empty,
                    .text(l.notes.joined(separator: "; ")),
                ])
            }
        }
        return t
    }

    /// The summary narrowed to what fits a terminal.
    public static func display(_ full: Table) -> Table {
        let keep: [(String, String)] = [
            ("checkpoint", "checkpoint"), ("layer", "layer"), ("tokens", "T"), ("n_experts", "n"), ("top_k", "k"),
            ("load_max_over_mean", "max/mean"), ("load_cv", "cv"), ("lb_loss_transformers", "lb_hf"),
            ("lb_loss_olmo_core", "lb_olmo"), ("router_entropy", "H_router"), ("top1_probability", "p_top1"),
            ("agreement", "agreement"), ("chance", "chance"), ("coupling_alpha", "alpha*_data"),
            ("proxy_correlation", "r(M)"), ("saturation", "saturation"),
        ]
        let index = keep.compactMap { k in full.columns.firstIndex(of: k.0) }
        return Table(columns: keep.map(\.1), rows: full.rows.map { r in index.map { r[$0] } })
    }

    static func number(_ d: Double) -> JSONValue { d.isFinite ? .number(d) : .null }
    static func numbers(_ a: [Double]) -> JSONValue { .array(a.map(number)) }
    static func ints(_ a: [Int]) -> JSONValue { .array(a.map { .int($0) }) }

    /// One object per checkpoint: `{"checkpoint", "step", "family", "tokens", "windows", "seq_len",
    /// "domains", "forward_seconds", "coupling_seconds", "layers": [{"layer", "tokens", "top_k",
    /// "counts", "coactivation", "agreement", "m_data", ...}]}`.
    /// - Parameter decode: renders a token id as text (nil: ids only).
    public static func json(
        _ results: [CheckpointRouting], windowLength: Int, domainNames: [String],
        decode: ((Int32) -> String?)? = nil
    ) -> JSONValue {
        .array(
            results.map { c in
                let tokens = c.layers.first?.tokens ?? 0
                return .object([
                    ("checkpoint", .string(c.checkpoint)), ("step", c.step.map { .int($0) } ?? .null), ("family", .string(c.family)),
                    ("tokens", .int(tokens)), ("windows", .int(windowLength > 0 ? tokens / windowLength : 0)), ("seq_len", .int(windowLength)),
                    ("domains", .array(domainNames.map { .string($0) })),
                    ("forward_seconds", number(c.forwardSeconds)), ("coupling_seconds", number(c.couplingSeconds)),
                    ("layers", .array(c.layers.map { layer($0, decode: decode) })),
                ])
            })
    }

    static func layer(_ l: LayerRouting, decode: ((Int32) -> String?)?) -> JSONValue {
        var o: [(String, JSONValue)] = [
            ("layer", .int(l.layer)), ("tokens", .int(l.tokens)), ("top_k", .int(l.topK)), ("experts", .int(l.experts)),
            ("counts", ints(l.load.counts)), ("coactivation", .array(l.load.coactivation.map(ints))),
            ("agreement", l.coupling.map { number($0.agreement) } ?? .null), ("chance", number(Double(l.topK) / Double(l.experts))),
            ("m_data", l.coupling.map { c in .array(c.mData.map { $0.map(numbers) ?? .null }) } ?? .null),
            (
                "load",
                .object([
                    ("max_over_mean", number(l.load.maxOverMean)), ("cv", number(l.load.coefficientOfVariation)),
                    ("normalized_entropy", number(l.load.normalizedEntropy)),
                ])
            ),
            ("lb_loss_transformers", number(l.load.loadBalancingLossTransformers)),
            ("lb_loss_olmo_core", number(l.load.loadBalancingLossOLMoCore)),
            ("router_entropy", number(l.load.meanRouterEntropy)), ("top1_probability", number(l.load.meanTopProbability)),
        ]
        if let c = l.coupling {
            o += [
                ("coupling_tokens", .int(c.tokens)), ("feature", .string(c.feature.rawValue)),
                ("m", .array(c.proxy.map(numbers))),
                (
                    "erc",
                    .array(
                        c.losses.map { a in
                            .object([
                                ("alpha", number(a.alpha)), ("loss", number(a.loss.total)),
                                ("specialization", number(a.loss.specialization)), ("precision", number(a.loss.precision)),
                            ])
                        })
                ),
                ("coupling_alpha", number(c.couplingThreshold)), ("proxy_correlation", number(c.proxyCorrelation)),
            ]
        }
        o.append(("saturation", l.saturation.map(number) ?? .null))
        o.append(
            (
                "domains",
                .array(
                    l.domains.map { d in
                        .object([
                            ("name", .string(d.name)), ("tokens", .int(d.tokens)), ("shares", numbers(d.shares)),
                            ("specialization", numbers(d.specialization)), ("score", number(d.score)),
                        ])
                    })
            ))
        o.append(
            (
                "top_tokens",
                .array(
                    l.topTokens.map { list in
                        .array(
                            list.map { t in
                                var e: [(String, JSONValue)] = [
                                    ("id", .int(Int(t.id))), ("count", .int(t.count)), ("share", number(t.share)),
                                    ("specialization", number(t.specialization)),
                                ]
                                if let decode, let s = decode(t.id) { e.append(("text", .string(s))) }
                                return .object(e)
                            })
                    })
            ))
        o.append(("notes", .array(l.notes.map { .string($0) })))
        return .object(o)
    }

    /// Writes `layer{L}.npy` (int32 [T, k]: the router's top-k expert ids per token, window order)
    /// for every layer of `c` into `folder`, each file written under a temporary name and renamed.
    public static func writeAssignments(_ c: CheckpointRouting, to folder: String) throws {
        try AtomicOutput.makeFolder(folder)
        for l in c.layers {
            try AtomicOutput.write(npyInt32(l.assignments, shape: [l.tokens, l.topK]), to: folder + "/layer\(l.layer).npy")
        }
    }

    /// A NumPy `.npy` (version 1.0) of little-endian int32 values.
    public static func npyInt32(_ values: [Int32], shape: [Int]) -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (\(dims)), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let n = UInt16(header.utf8.count)
        d.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
        d.append(contentsOf: Array(header.utf8))
        values.withUnsafeBufferPointer { b in
            for v in b { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        }
        return d
    }
}
