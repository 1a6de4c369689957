import Analysis
import Checkpoints
import Foundation
import Plotting

/// The marker file that says a folder is a report of moe-inspect (`report`, `compare`, `watch`):
/// only such a folder (or an empty one) is ever replaced.
public enum ReportMarker {
    /// The marker's file name.
    public static let name = ".moe-inspect-report"

    /// Writes the marker into `folder` (what wrote it in its text).
    public static func write(into folder: String, kind: String) throws {
        try AtomicOutput.write(
            "moe-inspect \(kind) report folder: `moe-inspect \(kind) --overwrite` may replace it whole\n",
            to: folder + "/" + name)
    }
}

/// A run's training logs, for the training curves of a report: `log.csv` and `eval.csv` of `moe-inspect train`.
public struct RunCurves: Sendable {
    /// The run's label.
    public var label: String
    /// Its `log.csv`, if present.
    public var log: TrainingLog?
    /// Its `eval.csv` (held-out loss), if present.
    public var eval: TrainingLog?

    /// The curves of run `label`.
    public init(label: String, log: TrainingLog?, eval: TrainingLog?) { self.label = label; self.log = log; self.eval = eval }

    /// Reads `folder/log.csv` and `folder/eval.csv` where present.
    /// - Throws: `ReportError` when a present file is not a log.
    public static func read(folder: String, label: String) throws -> RunCurves? {
        let fm = FileManager.default
        let log = fm.fileExists(atPath: folder + "/" + RunLog.File.log.rawValue) ? try TrainingLog(path: folder + "/" + RunLog.File.log.rawValue) : nil
        let eval = fm.fileExists(atPath: folder + "/" + RunLog.File.eval.rawValue) ? try TrainingLog(path: folder + "/" + RunLog.File.eval.rawValue) : nil
        return log == nil && eval == nil ? nil : RunCurves(label: label, log: log, eval: eval)
    }
}

/// Writes the report folder of `moe-inspect report`: every figure that applies, the CSV tables,
/// `summary.json` and a static `index.html` that shows them with a one-line reading of each.
///
/// Several checkpoints make series over training: each run a line. Per-layer figures show each
/// run's latest checkpoint (several runs: side by side, as `compare` draws them).
public struct CouplingReport {
    public var settings: FigureSettings
    public var info: PageInfo

    public init(_ settings: FigureSettings = FigureSettings(), info: PageInfo = PageInfo()) { self.settings = settings; self.info = info }

    /// Writes the report for `results`, grouped into runs by their paths.
    @discardableResult
    public func write(
        _ results: [CheckpointCoupling], options: CouplingOptions, maps: [ReportMap] = [],
        to folder: String
    ) throws -> [ReportFigure] {
        try write(results, runs: try RunGrouping.group(results.map(\.checkpoint)), options: options, maps: maps, to: folder)
    }

    /// Writes the report for `results` grouped as `groups` (whose members index `results`) into `folder`.
    /// - Returns: the figures written, in page order.
    @discardableResult
    public func write(
        _ results: [CheckpointCoupling], runs groups: [RunGroup], options: CouplingOptions, maps: [ReportMap] = [],
        curves: [RunCurves] = [], routing: DataRouting? = nil, to folder: String
    ) throws -> [ReportFigure] {
        var numbers = results.map { CheckpointNumbers($0, run: "", options: options) }
        var full: [String: CheckpointCoupling] = [:]
        for g in groups { for m in g.members where m < results.count { numbers[m].run = g.label } }
        for r in results { full[r.checkpoint] = r }
        let series = groups.map { g in RunSeries(label: g.label, checkpoints: g.members.filter { $0 < numbers.count }.map { numbers[$0] }) }
        // routing on data: per-layer figures of each run's latest checkpoint (results and
        // routing.runs are in the same order)
        let routed = routing.map { r in
            (r, groups.compactMap { g in g.members.last.map { (index: $0, label: groups.count > 1 ? Optional(g.label) : nil) } })
        }
        return try write(
            series, alphas: options.alphas, lede: ReportPage.lede(options), full: full, maps: maps, curves: curves, routing: routed, to: folder
        ) { tables in
            // What only the checkpoints themselves give: per-expert eps, cosine summaries, matrices.
            let ordered = series.flatMap { $0.checkpoints }.compactMap { full[$0.checkpoint] }
            let runOf = series.flatMap { s in s.checkpoints.map { _ in s.label } }
            try CouplingTables.epsilon(ordered, runs: runOf).writeCSV(to: folder + "/tables/epsilon.csv")
            try CouplingTables.similarity(ordered, runs: runOf).writeCSV(to: folder + "/tables/similarity.csv")
            for s in series {
                for c in s.checkpoints {
                    guard let r = full[c.checkpoint] else { continue }
                    var sub = "/tables/matrices"
                    if series.count > 1 { sub += "/" + Self.fileName(s.label) }
                    if ordered.count > 1 { sub += "/" + Self.fileName((c.checkpoint as NSString).lastPathComponent) }
                    try CouplingTables.writeMatrices(r, to: folder + sub)
                }
            }
            tables += ["tables/epsilon.csv", "tables/similarity.csv", "tables/matrices/"]
        }
    }

    /// Writes the report built from `erc` tables alone (`report --tables`): the series, the
    /// per-layer line figures of each run's latest checkpoint, the table and the page.
    @discardableResult
    public func write(
        tables checkpoints: [CheckpointNumbers], alphas: [Double], curves: [RunCurves] = [],
        to folder: String
    ) throws -> [ReportFigure] {
        let series = RunSeries.gather(checkpoints)
        let samples = Set(checkpoints.map(\.noiseSamples)).sorted().map(String.init).joined(separator: "/")
        let lede =
            "Expert-router coupling (Lv et al., ICLR 2026), from the tables of <code>moe-inspect erc</code> alone (\(checkpoints.count) checkpoint(s)): "
            + "ERC loss at α = \(alphas.map { String(format: "%g", $0) }.joined(separator: ", ")), noise samples \(samples). "
            + "Heatmaps, coupling profiles and t-SNE maps need the checkpoints: run <code>moe-inspect report CHECKPOINT</code> for them."
        return try write(series, alphas: alphas, lede: lede, full: [:], maps: [], curves: curves, to: folder) { _ in }
    }

    /// A name safe as a file or folder name.
    public static func fileName(_ s: String) -> String {
        let safe = s.map { c -> Character in c.isLetter || c.isNumber || c == "-" || c == "_" || c == "." ? c : "_" }
        let name = String(safe).trimmingCharacters(in: CharacterSet(charactersIn: "."))
        return name.isEmpty ? "_" : name
    }

    /// The common body: series, latest checkpoints, tables, summary, page; `extraTables` adds what needs the checkpoints.
    func write(
        _ series: [RunSeries], alphas: [Double], lede: String, full: [String: CheckpointCoupling], maps: [ReportMap],
        curves: [RunCurves], routing: (DataRouting, [(index: Int, label: String?)])? = nil, to folder: String,
        extraTables: (inout [String]) throws -> Void
    ) throws -> [ReportFigure] {
        let sink = try FigureSink(folder: folder, settings: settings)
        let a0 = alphas.first
        let latest = series.compactMap { s in s.checkpoints.last.map { (label: s.label, numbers: $0) } }

        // Series over training come first: they answer "is coupling improving?".
        if SeriesFigures.isSeries(series) {
            let erc = alphas.map { SeriesMetric.ercLoss($0) }
            try sink.add(
                "series_erc_loss", try SeriesFigures.overRuns(series, title: "ERC loss over training", panels: erc, maxColumns: settings.maxColumns(3)),
                reading: erc.map { Readings.series(series, $0) }.joined(separator: " "), hover: seriesHover(series, erc))
            try sink.add(
                "series_erc_loss_by_layer",
                try SeriesFigures.byLayer(series, title: "ERC loss over training, each layer", panels: erc, maxColumns: settings.maxColumns(3)),
                reading: "Each panel is one run" + (alphas.count > 1 ? " and α" : "") + ", one line per layer, on one y scale.")
            for m in [SeriesMetric.epsilon, .couplingAlpha, .routerCosine] {
                try sink.add(
                    m.stem, try SeriesFigures.overRuns(series, title: m.title, panels: [m], maxColumns: settings.maxColumns(3)),
                    reading: Readings.series(series, m),
                    hover: seriesHover(series, [m]))
                try sink.add(
                    m.stem + "_by_layer", try SeriesFigures.byLayer(series, title: m.title + ", each layer", panels: [m], maxColumns: settings.maxColumns(3)),
                    reading: "Each panel is one run, one line per layer, on one y scale.")
            }
        }
        if !curves.isEmpty {
            try sink.add("training_curves", try TrainingCurves.figure(curves, maxColumns: settings.maxColumns(3)), reading: TrainingCurves.reading(curves))
        }

        // The latest checkpoint of each run.
        if latest.count == 1, let last = latest.first {
            try addSingle(sink, last.numbers, full: full[last.numbers.checkpoint])
        } else if latest.count > 1 {
            try ComparisonFigures.add(
                to: sink, items: latest.map { ($0.label, $0.numbers, full[$0.numbers.checkpoint]) }, alphas: alphas, maxColumns: settings.maxColumns(4))
        }
        for m in maps {
            try sink.add(m.name, try TSNEFigures.map(m.map, title: m.title), reading: TSNEFigures.reading(m.map), hover: [TSNEFigures.hover(m.map)])
        }

        // Tables and summary.
        let all = series.flatMap(\.checkpoints)
        let erc = CouplingTables.erc(all, alphas: alphas)
        try erc.writeCSV(to: folder + "/tables/erc.csv")
        var tables = ["tables/erc.csv"]
        try extraTables(&tables)
        let routingSection = try routing.map { r, detailed in
            try RoutingReport.add(r, names: nil, detailed: detailed, to: sink, folder: folder, tables: &tables)
        }
        tables.append("summary.json")
        let figures = sink.figures
        try AtomicOutput.write(Self.summary(series, alphas: alphas, figures: figures, info: info).serialized(pretty: true) + "\n", to: folder + "/summary.json")

        var sections: [PageSection] = []
        if all.count > 1 {
            sections.append(
                PageSection(
                    id: "checkpoints", title: series.count > 1 ? "Runs and checkpoints" : "Checkpoints",
                    html: ReportPage.table(
                        Self.seriesTable(series, alphas: alphas), caption: "Means over the analysed layers; each run's checkpoints in step order.")))
        }
        sections.append(
            PageSection(
                id: "layers", title: latest.count > 1 ? "Layers of each run's latest checkpoint" : "Layers of \(latest.first?.numbers.checkpoint ?? "")",
                html: layerTable(latest)))
        if let routingSection { sections.append(routingSection) }
        sections.append(
            PageSection(
                id: "tables", title: "Tables",
                html: "<p>" + tables.map { "<a href=\"\(ReportPage.escape($0))\">\(ReportPage.escape($0))</a>" }.joined(separator: " · ") + "</p>\n"))
        let verdict = Self.verdict(series, alpha: a0)
        let title =
            "moe-inspect report: "
            + (series.count > 1
                ? series.map(\.label).joined(separator: ", ")
                : all.count > 1
                    ? "\(series.first?.label ?? "") (\(all.count) checkpoints)" : (all.first.map { ($0.checkpoint as NSString).lastPathComponent } ?? ""))
        try AtomicOutput.write(
            ReportPage.page(title: title, lede: lede, verdict: verdict, sections: sections, figures: figures, info: info),
            to: folder + "/index.html")
        try ReportMarker.write(into: folder, kind: "report")
        return figures
    }

    /// Hover points of a series figure: each run's mean at each checkpoint.
    func seriesHover(_ series: [RunSeries], _ metrics: [SeriesMetric]) -> [Hover] {
        metrics.enumerated().map { p, m in
            var x: [Double] = [], y: [Double] = [], t: [String] = []
            for s in series {
                for k in s.checkpoints.indices {
                    guard let v = s.checkpoints[k].mean(m.value) else { continue }
                    x.append(s.x(k)); y.append(v)
                    t.append((series.count > 1 ? s.label + ", " : "") + s.place(k) + ": " + m.name + " " + Readings.number(v) + " (mean over layers)")
                }
            }
            return .points(axes: p, x: x, y: y, text: t)
        }
    }

    /// The per-layer figures of one checkpoint: line figures from its numbers, heatmaps and
    /// profiles when the full analysis is at hand.
    func addSingle(_ sink: FigureSink, _ c: CheckpointNumbers, full: CheckpointCoupling?) throws {
        let ok = c.okLayers
        let withAlpha = ok.filter { $0.couplingAlpha.isFinite }
        if let worst = withAlpha.max(by: { $0.couplingAlpha < $1.couplingAlpha }), let best = withAlpha.min(by: { $0.couplingAlpha < $1.couplingAlpha }) {
            let reading: String
            if withAlpha.count == 1 || Readings.number(worst.couplingAlpha) == Readings.number(best.couplingAlpha) {
                reading =
                    "α* is \(Readings.number(worst.couplingAlpha)) in \(Readings.of(withAlpha.count, withAlpha.count)) layer\(withAlpha.count == 1 ? "" : "s") (the paper's vanilla MoE needed α = 5; at α* ≤ 1 the α = 1 loss is zero)."
            } else {
                reading = String(
                    format:
                        "layer %d: α* %.2f, the weakest coupling; layer %d: α* %.2f, the strongest (the paper's vanilla MoE needed α = 5; at α* ≤ 1 the α = 1 loss is zero).",
                    worst.layer, worst.couplingAlpha, best.layer, best.couplingAlpha)
            }
            try sink.add("coupling_alpha", try CouplingFigures.couplingThreshold(c.layers), reading: reading)
        }
        if let a = ok.first?.erc.first {
            try sink.add("erc_by_layer", try CouplingFigures.ercByLayer(c.layers), reading: Self.ercReading(ok, alpha: a.alpha))
        }
        if let full {
            let layers = full.layers
            try sink.add(
                "coupling_profile", try CouplingFigures.couplingProfile(layers),
                reading:
                    "Each line falls to zero at its layer's α* (the diamond on the axis); a line that reaches zero early belongs to a tightly coupled layer.")
            let grid = layers.filter { $0.isOK && $0.activation != nil }
            try sink.add(
                "activation_all_layers", try CouplingFigures.activationGrid(layers), reading: Self.diagonalReading(ok),
                hover: grid.enumerated().compactMap { k, l in
                    l.activation.map {
                        .heatmap(axes: k, values: CouplingFigures.matrix($0), rowName: "proxy", columnName: "expert", valueName: "M", title: "layer \(l.layer)")
                    }
                })
        }
        let eps = ok.filter { $0.epsMean.isFinite }
        if !eps.isEmpty {
            let lo = eps.map(\.epsMin).filter(\.isFinite).min() ?? .nan, hi = eps.map(\.epsMax).filter(\.isFinite).max() ?? .nan
            let mean = eps.map(\.epsMean).reduce(0, +) / Double(eps.count)
            let span =
                Readings.number(lo) == Readings.number(hi)
                ? "ε is \(Readings.number(lo)) for every expert"
                : "ε ranges from \(Readings.number(lo)) to \(Readings.number(hi)) (mean \(Readings.number(mean)))"
            try sink.add(
                "epsilon_by_layer", try CouplingFigures.epsilonByLayer(c.layers),
                reading: span + "; a larger ε means router rows sit farther apart relative to their length, i.e. more distinct clusters.")
            if let full {
                let okFull = full.layers.filter(\.isOK)
                try sink.add(
                    "epsilon_by_expert", try CouplingFigures.epsilonByExpert(full.layers),
                    reading: "Each cell is one expert's noise bound; dark cells are experts whose router row has a close neighbour.",
                    hover: [
                        .heatmap(
                            axes: 0, values: okFull.map(\.eps), rowName: "layer", columnName: "expert", valueName: "ε",
                            rowLabels: okFull.map { String($0.layer) })
                    ])
            }
        }
        let cos = ok.map(\.cosineMeanAbs).filter(\.isFinite)
        if let lo = cos.min(), let hi = cos.max() {
            let span =
                Readings.number(lo) == Readings.number(hi)
                ? "Mean |cos| between router rows is \(Readings.number(lo))"
                : "Mean |cos| between router rows lies between \(Readings.number(lo)) and \(Readings.number(hi))"
            try sink.add(
                "router_cosine_by_layer", try CouplingFigures.cosineByLayer(c.layers),
                reading: span + " (the paper's vanilla routers: about 0.15, already near orthogonal).")
        }
        guard let full else { return }
        try sink.add(
            "norms_by_expert", try CouplingFigures.norms(full.layers),
            reading: "Router-row and gate-projection norms per expert: ERC should change coupling, not merely these norms.")
        let label = (full.checkpoint as NSString).lastPathComponent
        for l in full.layers where l.isOK {
            let reading = String(
                format: "Layer %d: mean diagonal of M %@ against %@ off the diagonal; α* %.2f.", l.layer,
                Readings.number(l.mDiagonalMean.mean), Readings.number(l.mOffDiagonalMean.mean), l.couplingAlpha)
            try sink.add(
                "activation_layer\(l.layer)", try CouplingFigures.activation(l, checkpoint: label), reading: reading,
                hover: l.activation.map { [.heatmap(axes: 0, values: CouplingFigures.matrix($0), rowName: "proxy", columnName: "expert", valueName: "M")] }
                    ?? [])
            try sink.add(
                "router_cosine_layer\(l.layer)", try CouplingFigures.cosine(l),
                reading: String(format: "Layer %d: mean |cos| %@.", l.layer, Readings.number(l.geometry?.meanAbsCosine ?? .nan)),
                hover: l.geometry.map {
                    [.heatmap(axes: 0, values: CouplingFigures.matrix($0.cosine), rowName: "expert", columnName: "expert", valueName: "cos")]
                } ?? [])
        }
    }

    /// The reading of the ERC loss per layer, true when losses are zero.
    static func ercReading(_ ok: [LayerNumbers], alpha: Double) -> String {
        let at = ok.compactMap { l in l.erc(at: alpha).map { (l, $0) } }
        guard let top = at.max(by: { $0.1.loss < $1.1.loss }) else { return "" }
        if top.1.loss == 0 { return String(format: "At α = %g the ERC loss is zero in every layer: each layer's α* is at most %g.", alpha, alpha) }
        let spec = at.reduce(0) { $0 + ($1.1.specialization.isFinite ? $1.1.specialization : 0) }
        let prec = at.reduce(0) { $0 + ($1.1.precision.isFinite ? $1.1.precision : 0) }
        let zero = at.filter { $0.1.loss == 0 }.count
        var s = String(format: "At α = %g the ERC loss is highest in layer %d (%@)", alpha, top.0.layer, Readings.number(top.1.loss))
        if zero > 0 { s += ", zero in \(Readings.of(zero, at.count)) layers" }
        if spec + prec > 0 {
            s += String(
                format: "; summed over layers it is %.0f%% specialization (rows of M) and %.0f%% precision (columns).", 100 * spec / (spec + prec),
                100 * prec / (spec + prec))
        } else {
            s += "."
        }
        return s
    }

    static func diagonalReading(_ ok: [LayerNumbers]) -> String {
        let dominant = ok.filter { $0.mDiagonalMean > $0.mOffDiagonalMean }.count
        return
            "In \(Readings.of(dominant, ok.count)) layer\(ok.count == 1 ? "" : "s") the diagonal of M is brighter on average than the rest: proxies excite their own expert most. A uniform M means routers and experts are not coupled."
    }

    /// The verdict at the top of the page.
    static func verdict(_ series: [RunSeries], alpha: Double?) -> [String] {
        var out: [String] = []
        let latest = series.compactMap { s in s.checkpoints.last.map { (label: s.label, numbers: $0) } }
        if latest.count > 1 {
            out += Readings.verdict(latest.map { ($0.label + " (" + ($0.numbers.step.map { "step \($0)" } ?? "latest") + ")", $0.numbers) }, alpha: alpha)
        }
        for s in series where s.checkpoints.count >= 2 {
            guard let first = s.checkpoints.first, let last = s.checkpoints.last else { continue }
            let v = Readings.verdict([(s.place(0), first), (s.place(s.checkpoints.count - 1), last)], alpha: alpha)
            out += v.map { (series.count > 1 ? "\(s.label): " : "Over training: ") + $0 }
        }
        if latest.count == 1, let only = latest.first {
            out += Readings.verdict([(only.label, only.numbers)], alpha: alpha).map {
                (series.first?.checkpoints.count ?? 0) > 1 ? "At \(series.first?.place((series.first?.checkpoints.count ?? 1) - 1) ?? "the end"): " + $0 : $0
            }
        }
        return out
    }

    /// One row per checkpoint: the means over its layers.
    static func seriesTable(_ series: [RunSeries], alphas: [Double]) -> Table {
        var t = Table(
            columns: ["run", "step", "checkpoint"] + alphas.map { String(format: "ERC loss α=%g", $0) } + ["α*", "mean ε", "mean |cos|", "layers ok"])
        for s in series {
            for c in s.checkpoints {
                func m(_ v: (LayerNumbers) -> Double?) -> Cell { c.mean(v).map { .number($0) } ?? .empty }
                t.rows.append(
                    [.text(s.label), c.step.map { .int($0) } ?? .empty, .text(c.checkpoint)]
                        + alphas.map { a in m { $0.erc(at: a)?.loss } }
                        + [m { $0.couplingAlpha }, m { $0.epsMean }, m { $0.cosineMeanAbs }, .text("\(c.okLayers.count)/\(c.layers.count)")])
            }
        }
        return t
    }

    /// The layers of each run's latest checkpoint.
    func layerTable(_ latest: [(label: String, numbers: CheckpointNumbers)]) -> String {
        let alphas = latest.first?.numbers.layers.first(where: \.isOK)?.erc.map(\.alpha) ?? []
        let std = latest.contains { $0.numbers.noiseSamples > 1 }
        var cols = latest.count > 1 ? ["run"] : []
        cols += ["layer", "experts"]
        for a in alphas { cols.append(String(format: "ERC loss α=%g", a)); if std { cols.append("±std") } }
        cols += ["α*", "mean ε", "min ε", "mean |cos|", "status"]
        var t = Table(columns: cols)
        var bad: Set<Int> = []
        for (label, c) in latest {
            for l in c.layers {
                var row: [Cell] = latest.count > 1 ? [.text(label)] : []
                row += [.int(l.layer), .int(l.experts)]
                for a in alphas {
                    let e = l.erc(at: a)
                    row.append(e.map { .number($0.loss) } ?? .empty)
                    if std { row.append(e.flatMap { $0.lossStd.isFinite ? .number($0.lossStd) : nil } ?? .empty) }
                }
                func n(_ v: Double) -> Cell { v.isFinite ? .number(v) : .empty }
                row += [n(l.couplingAlpha), n(l.epsMean), n(l.epsMin), n(l.cosineMeanAbs), .text(l.status.description)]
                if !l.isOK { bad.insert(t.rows.count) }
                t.rows.append(row)
            }
        }
        return ReportPage.table(t, bad: { bad.contains($0) })
    }

    static func summary(_ series: [RunSeries], alphas: [Double], figures: [ReportFigure], info: PageInfo) -> JSONValue {
        func num(_ v: Double) -> JSONValue { v.isFinite ? .number(v) : .null }
        let all = series.flatMap(\.checkpoints)
        return .object([
            ("tool", .string(info.version)),
            ("commit", info.commit.map { .string($0) } ?? .null),
            ("command", .string(info.command)),
            ("alphas", .array(alphas.map { .number($0) })),
            ("feature", .string(all.first?.feature ?? "gate")),
            ("noise_samples", .int(all.first?.noiseSamples ?? 0)),
            (
                "runs",
                .array(series.map { s in .object([("label", .string(s.label)), ("checkpoints", .array(s.checkpoints.map { .string($0.checkpoint) }))]) })
            ),
            (
                "checkpoints",
                .array(
                    all.map { c in
                        .object([
                            ("checkpoint", .string(c.checkpoint)),
                            ("run", .string(c.run)),
                            ("step", c.step.map { .int($0) } ?? .null),
                            (
                                "layers",
                                .array(
                                    c.layers.map { l in
                                        .object([
                                            ("layer", .int(l.layer)), ("experts", .int(l.experts)), ("status", .string(l.status.description)),
                                            ("coupling_alpha", num(l.couplingAlpha)), ("eps_mean", num(l.epsMean)),
                                            ("router_cos_mean_abs", num(l.cosineMeanAbs)),
                                            (
                                                "erc",
                                                .array(
                                                    l.erc.map { a in
                                                        .object([
                                                            ("alpha", .number(a.alpha)), ("loss", num(a.loss)), ("loss_std", num(a.lossStd)),
                                                            ("specialization", num(a.specialization)), ("precision", num(a.precision)),
                                                        ])
                                                    })
                                            ),
                                        ])
                                    })
                            ),
                        ])
                    })
            ),
            (
                "inputs",
                .array(
                    info.inputs.map { i in
                        .object([
                            ("kind", .string(i.kind)), ("path", .string(i.path)), ("bytes", i.bytes.map { .int($0) } ?? .null),
                            ("sha256", i.sha256.map { .string($0) } ?? .null), ("sha256_complete", .bool(i.hashIsComplete)),
                        ])
                    })
            ),
            (
                "figures",
                .array(
                    figures.map { f in
                        .object([
                            ("name", .string(f.stem)), ("title", .string(f.title)), ("reading", .string(f.reading)),
                            ("files", .array(f.files.map { .string($0) })),
                        ])
                    })
            ),
        ])
    }
}
