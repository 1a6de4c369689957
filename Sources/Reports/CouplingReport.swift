import Analysis
import Checkpoints
import Foundation
import Plotting

/// One figure of a report: its file stem, title, and a one-line reading of what it shows.
public struct ReportFigure: Sendable {
    public var stem: String
    public var title: String
    public var reading: String
    public var files: [String]
    /// Wider than tall by far (side-by-side panels): the page gives it a whole row.
    public var wide: Bool = false
}

/// How a report writes its figures.
public struct FigureSettings {
    /// Output formats of every figure.
    public var formats: [OutputFormat]
    /// Pixels per inch of PNG figures.
    public var dpi: Double
    /// Provenance recorded in PNG text chunks (tool version, command line, checkpoint).
    public var provenance: [String: String]
    /// Called with each file written.
    public var progress: (String) -> Void

    public init(formats: [OutputFormat] = [.png], dpi: Double = 150, provenance: [String: String] = [:], progress: @escaping (String) -> Void = { _ in }) {
        self.formats = formats; self.dpi = dpi; self.provenance = provenance; self.progress = progress
    }
}

/// Writes the report folder of `moe-inspect report`: every figure that applies, the CSV tables,
/// `summary.json` and a static `index.html` that shows them with a one-line reading of each.
public struct CouplingReport {
    public var settings: FigureSettings

    public init(_ settings: FigureSettings = FigureSettings()) { self.settings = settings }

    /// Writes the report for `runs` (one checkpoint, or several of one run as a series) into `folder`.
    /// - Returns: the figures written, in page order.
    @discardableResult
    public func write(_ runs: [CheckpointCoupling], options: CouplingOptions, maps: [ReportMap] = [],
                      to folder: String) throws -> [ReportFigure] {
        guard let last = runs.last else { return [] }
        let sink = try FigureSink(folder: folder, settings: settings)
        func add(_ stem: String, _ figure: Figure?, reading: String) throws { try sink.add(stem, figure, reading: reading) }
        let layers = last.layers
        let ok = layers.filter(\.isOK)
        let label = (last.checkpoint as NSString).lastPathComponent

        // Series over training come first: they answer "is coupling improving?".
        if runs.count >= 2 {
            let a0 = options.alphas.first ?? 1
            try add("series_erc_loss", try CouplingFigures.series(runs, title: String(format: "ERC loss (α = %g) over training", a0), yLabel: "ERC loss") { $0.ercLosses.first?.loss.mean },
                    reading: seriesReading(runs, name: "ERC loss") { $0.ercLosses.first?.loss.mean })
            try add("series_epsilon", try CouplingFigures.series(runs, title: "Noise bound ε over training", yLabel: "mean ε") { $0.eps.isEmpty ? nil : $0.eps.reduce(0, +) / Double($0.eps.count) },
                    reading: seriesReading(runs, name: "mean ε") { $0.eps.isEmpty ? nil : $0.eps.reduce(0, +) / Double($0.eps.count) })
            try add("series_coupling_alpha", try CouplingFigures.series(runs, title: "Coupling threshold α* over training", yLabel: "α*") { $0.couplingAlpha },
                    reading: seriesReading(runs, name: "α*") { $0.couplingAlpha })
            try add("series_router_cosine", try CouplingFigures.series(runs, title: "Router similarity over training", yLabel: "mean |cos|") { $0.geometry?.meanAbsCosine },
                    reading: seriesReading(runs, name: "mean |cos|") { $0.geometry?.meanAbsCosine })
        }
        if let worst = ok.max(by: { $0.couplingAlpha < $1.couplingAlpha }), let best = ok.min(by: { $0.couplingAlpha < $1.couplingAlpha }) {
            try add("coupling_alpha", try CouplingFigures.couplingThreshold(layers),
                    reading: String(format: "layer %d: α* %.2f, the weakest coupling; layer %d: α* %.2f, the strongest (the paper's vanilla MoE needed α = 5; below 1 the α = 1 loss is zero).",
                                    worst.layer, worst.couplingAlpha, best.layer, best.couplingAlpha))
        }
        if let a = ok.first?.ercLosses.first {
            let k = 0
            let top = ok.max { $0.ercLosses[k].loss.mean < $1.ercLosses[k].loss.mean }!
            let spec = ok.reduce(0) { $0 + $1.ercLosses[k].specialization.mean }, prec = ok.reduce(0) { $0 + $1.ercLosses[k].precision.mean }
            try add("erc_by_layer", try CouplingFigures.ercByLayer(layers),
                    reading: String(format: "At α = %g the ERC loss is highest in layer %d (%.3g); summed over layers it is %.0f%% specialization (rows of M) and %.0f%% precision (columns).",
                                    a.alpha, top.layer, top.ercLosses[k].loss.mean, 100 * spec / max(spec + prec, 1e-300), 100 * prec / max(spec + prec, 1e-300)))
        }
        try add("coupling_profile", try CouplingFigures.couplingProfile(layers),
                reading: "Each line falls to zero at its layer's α*; a line that reaches zero early belongs to a tightly coupled layer.")
        try add("activation_all_layers", try CouplingFigures.activationGrid(layers),
                reading: diagonalReading(ok))
        if let e = ok.first?.eps, !e.isEmpty {
            let all = ok.flatMap(\.eps)
            let mean = all.reduce(0, +) / Double(all.count)
            try add("epsilon_by_layer", try CouplingFigures.epsilonByLayer(layers),
                    reading: String(format: "ε ranges from %.3f to %.3f (mean %.3f); a larger ε means router rows sit farther apart relative to their length, i.e. more distinct clusters.", all.min() ?? 0, all.max() ?? 0, mean))
            try add("epsilon_by_expert", try CouplingFigures.epsilonByExpert(layers),
                    reading: "Each cell is one expert's noise bound; dark cells are experts whose router row has a close neighbour.")
        }
        if let c = ok.compactMap({ $0.geometry?.meanAbsCosine }).max(), let lo = ok.compactMap({ $0.geometry?.meanAbsCosine }).min() {
            try add("router_cosine_by_layer", try CouplingFigures.cosineByLayer(layers),
                    reading: String(format: "Mean |cos| between router rows lies between %.3f and %.3f (the paper's vanilla routers: about 0.15, already near orthogonal).", lo, c))
        }
        for m in maps {
            var reading = String(format: "%@. KL %.3f", m.map.points.note.prefix(1).uppercased() + m.map.points.note.dropFirst(), m.map.klDivergence)
            if let s = m.map.silhouette2D {
                reading += String(format: "; silhouette by %@ %.3f in the map and %.3f in weight space (near 0: no clusters; near 1: tight clusters, as the paper finds with ERC).", m.map.labelKind.rawValue, s, m.map.silhouetteOriginal ?? .nan)
            } else { reading += "." }
            try add(m.name, try TSNEFigures.map(m.map, title: m.title), reading: reading)
        }
        try add("norms_by_expert", try CouplingFigures.norms(layers),
                reading: "Router-row and gate-projection norms per expert: ERC should change coupling, not merely these norms.")
        for l in ok {
            try add("activation_layer\(l.layer)", try CouplingFigures.activation(l, checkpoint: label),
                    reading: String(format: "Layer %d: mean diagonal of M %.3g against %.3g off the diagonal; α* %.2f.", l.layer, l.mDiagonalMean.mean, l.mOffDiagonalMean.mean, l.couplingAlpha))
            try add("router_cosine_layer\(l.layer)", try CouplingFigures.cosine(l),
                    reading: String(format: "Layer %d: mean |cos| %.3f.", l.layer, l.geometry?.meanAbsCosine ?? .nan))
        }
        // Tables and summary.
        try CouplingTables.erc(runs, options: options).writeCSV(to: folder + "/tables/erc.csv")
        try CouplingTables.epsilon(runs).writeCSV(to: folder + "/tables/epsilon.csv")
        try CouplingTables.similarity(runs).writeCSV(to: folder + "/tables/similarity.csv")
        for (i, r) in runs.enumerated() {
            try CouplingTables.writeMatrices(r, to: folder + "/tables/matrices" + (runs.count > 1 ? "/\(i)-" + (r.checkpoint as NSString).lastPathComponent : ""))
        }
        let figures = sink.figures
        try AtomicOutput.write(summary(runs, options: options, figures: figures).serialized(pretty: true) + "\n", to: folder + "/summary.json")
        try AtomicOutput.write(ReportPage.html(title: "moe-inspect report: " + runs.map { ($0.checkpoint as NSString).lastPathComponent }.joined(separator: ", "),
                                               runs: runs, options: options, figures: figures), to: folder + "/index.html")
        return figures
    }

    func seriesReading(_ runs: [CheckpointCoupling], name: String, _ value: (LayerCoupling) -> Double?) -> String {
        func mean(_ c: CheckpointCoupling) -> Double? {
            let v = c.layers.filter(\.isOK).compactMap(value).filter(\.isFinite)
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        guard let a = runs.first.flatMap(mean), let b = runs.last.flatMap(mean) else { return "" }
        let from = runs.first?.step.map { "step \($0)" } ?? "the first checkpoint", to = runs.last?.step.map { "step \($0)" } ?? "the last"
        return String(format: "Averaged over layers, %@ goes from %.4g at %@ to %.4g at %@ (%@%.1f%%).", name, a, from, b, to, b >= a ? "+" : "", 100 * (b - a) / max(abs(a), 1e-300))
    }

    func diagonalReading(_ ok: [LayerCoupling]) -> String {
        let dominant = ok.filter { $0.mDiagonalMean.mean > $0.mOffDiagonalMean.mean }.count
        return "In \(dominant) of \(ok.count) layers the diagonal of M is brighter on average than the rest: proxies excite their own expert most. A uniform M means routers and experts are not coupled."
    }

    func summary(_ runs: [CheckpointCoupling], options: CouplingOptions, figures: [ReportFigure]) -> JSONValue {
        .object([
            ("tool", .string("moe-inspect")),
            ("alphas", .array(options.alphas.map { .number($0) })),
            ("feature", .string(options.feature.rawValue)),
            ("noise_samples", .int(options.noise ? max(1, options.samples) : 0)),
            ("seed", .int(Int(truncatingIfNeeded: options.seed))),
            ("checkpoints", .array(runs.map { r in
                .object([
                    ("checkpoint", .string(r.checkpoint)),
                    ("step", r.step.map { .int($0) } ?? .null),
                    ("layers", .array(r.layers.map { l in
                        .object([
                            ("layer", .int(l.layer)), ("experts", .int(l.experts)), ("status", .string(l.status.description)),
                            ("coupling_alpha", l.couplingAlpha.isFinite ? .number(l.couplingAlpha) : .null),
                            ("eps_mean", l.eps.isEmpty ? .null : .number(l.eps.reduce(0, +) / Double(l.eps.count))),
                            ("router_cos_mean_abs", l.geometry.map { .number($0.meanAbsCosine) } ?? .null),
                            ("erc", .array(l.ercLosses.map { a in .object([("alpha", .number(a.alpha)), ("loss", .number(a.loss.mean)), ("loss_std", .number(a.loss.std)),
                                                                         ("specialization", .number(a.specialization.mean)), ("precision", .number(a.precision.mean))]) })),
                        ])
                    })),
                ])
            })),
            ("figures", .array(figures.map { f in .object([("name", .string(f.stem)), ("title", .string(f.title)), ("reading", .string(f.reading)), ("files", .array(f.files.map { .string($0) }))]) })),
        ])
    }
}

/// Saves figures of a report folder in every requested format and keeps the list for the page.
final class FigureSink {
    let folder: String, settings: FigureSettings
    private(set) var figures: [ReportFigure] = []

    init(folder: String, settings: FigureSettings) throws {
        self.folder = folder; self.settings = settings
        try AtomicOutput.makeFolder(folder + "/figures")
        try AtomicOutput.makeFolder(folder + "/tables")
    }

    /// Writes `figure` as `figures/<stem>.<ext>` for each format (nothing when nil).
    func add(_ stem: String, _ figure: Figure?, reading: String) throws {
        guard let figure else { return }
        figure.dpi = settings.dpi
        var files: [String] = []
        // The page shows PNG or SVG; a PDF-only request still gets a PNG for it.
        let formats = settings.formats.contains(.png) || settings.formats.contains(.svg) ? settings.formats : [.png] + settings.formats
        for format in formats {
            let rel = "figures/\(stem).\(format.rawValue)"
            var prov = settings.provenance
            prov["moe-inspect:figure"] = stem
            _ = try figure.save(to: folder + "/" + rel, provenance: prov)
            files.append(rel)
            settings.progress(rel)
        }
        figures.append(ReportFigure(stem: stem, title: figure.title ?? stem, reading: reading, files: files,
                                    wide: figure.width > 1.7 * figure.height))
    }
}
