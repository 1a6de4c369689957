import Analysis
import ArgumentParser
import Checkpoints
import Foundation
import MoELayout
import Reports

/// Options shared by the commands that run the coupling analysis.
struct AnalysisOptions: ParsableArguments {
    @Option(name: .customLong("alpha"), help: ArgumentHelp("ERC alpha; repeat for several (default 1; the paper: 1 at 64 experts, 0.5 at 256).", valueName: "A"))
    var alphas: [Double] = []

    @Option(help: ArgumentHelp("Probe feature: gate (R~ W_g, the paper's choice), up, silu-gate, swiglu or output.", valueName: "F"))
    var feature: String = "gate"

    @Option(help: "Noise samples to average (mean and std reported).")
    var samples: Int = 1

    @Flag(help: "No proxy noise (delta = 1): deterministic values.")
    var noNoise = false

    @Option(help: "Seed of the proxy noise (same seed, same numbers, any thread count).")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Decoder layers to analyse, e.g. 0,3-5 (default: every MoE layer).", valueName: "list"))
    var layers: String?

    func validate() throws {
        guard ProbeFeature(rawValue: feature) != nil else {
            throw ValidationError("--feature must be one of \(ProbeFeature.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard samples >= 1, samples <= 10_000 else { throw ValidationError("--samples must be between 1 and 10000") }
        if noNoise && samples != 1 { throw ValidationError("--samples averages noise draws; it cannot be combined with --no-noise") }
        for a in alphas where !(a >= 0 && a.isFinite) { throw ValidationError("--alpha must be a non-negative number") }
        if let l = layers, parseLayers(l) == nil { throw ValidationError("--layers '\(l)' is not a list such as 0,3-5") }
    }

    var options: CouplingOptions {
        CouplingOptions(alphas: alphas.isEmpty ? [1] : alphas, feature: ProbeFeature(rawValue: feature) ?? .gate,
                        noise: !noNoise, samples: samples, seed: seed, layers: layers.flatMap(parseLayers))
    }
}

/// Parses `0,3-5` into {0, 3, 4, 5}.
func parseLayers(_ s: String) -> Set<Int>? {
    var out = Set<Int>()
    for part in s.split(separator: ",") {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        if bounds.count == 1, let a = bounds[0], a >= 0 { out.insert(a) }
        else if bounds.count == 2, let a = bounds[0], let b = bounds[1], a >= 0, b >= a, b - a <= 100_000 { out.formUnion(a...b) }
        else { return nil }
    }
    return out.isEmpty ? nil : out
}

/// Runs the analysis over several checkpoints, printing per-layer progress.
func runCoupling(_ paths: [String], layout: LayoutOptions, options: CouplingOptions, quiet: Bool) throws -> [CheckpointCoupling] {
    let progress = Progress(quiet: quiet)
    var out: [CheckpointCoupling] = []
    for p in paths {
        let model = try layout.open(p)
        if let sel = options.layers {
            let missing = sel.subtracting(model.moeLayers.map(\.index))
            if !missing.isEmpty {
                throw CommandError("\(p): layer(s) \(missing.sorted().map(String.init).joined(separator: ", ")) are not MoE layers (MoE layers: \(model.moeLayers.map { String($0.index) }.joined(separator: ", ")))")
            }
        }
        if model.moeLayers.isEmpty { throw CommandError("\(p): no MoE layer found" + (model.problems.isEmpty ? "" : " (\(model.problems.joined(separator: "; ")))")) }
        let total = options.layers?.count ?? model.moeLayers.count
        var done = 0
        let layers = CouplingAnalysis.analyze(model, options: options) { l in
            done += 1
            progress.say(String(format: "%@: layer %d (%d/%d) %@ read %.2f s, compute %.2f s", p, l.layer, done, total,
                                l.isOK ? "" : "[\(l.status)] ", l.readSeconds, l.computeSeconds))
        }
        out.append(CheckpointCoupling(checkpoint: p, step: CouplingAnalysis.step(fromPath: p), layers: layers))
    }
    return out
}

/// Prints `table` as CSV to a file, JSON or aligned text (`display`, if given) on stdout.
func emit(_ table: Table, csv: String?, json: Bool, display: Table? = nil) throws {
    if let csv {
        if csv == "-" { print(table.csv, terminator: "") } else { try table.writeCSV(to: csv) }
    }
    if json { print(table.json.serialized(pretty: true)) }
    if csv == nil && !json { print((display ?? table).aligned()) }
}

extension MoEInspect {
    struct ERC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "erc",
            abstract: "Measure expert-router coupling: ERC loss (specialization + precision), noise bound eps, alpha*, M statistics.",
            discussion: "One row per checkpoint, MoE layer and alpha. Several checkpoints (e.g. run/step*) make a series over training; the step is parsed from names like step1000. coupling_alpha is alpha*, the smallest alpha at which the noise-free ERC loss is zero. Layers whose weights hold NaN/Inf get a status instead of numbers.")

        @Argument(help: "One or more checkpoints (files, indexes or folders).")
        var checkpoints: [String]

        @OptionGroup var analysis: AnalysisOptions
        @OptionGroup var layoutOptions: LayoutOptions

        @Option(help: ArgumentHelp("Write the table as CSV to FILE (- for stdout).", valueName: "FILE"))
        var csv: String?

        @Flag(help: "Print the table as JSON.")
        var json = false

        @Option(help: ArgumentHelp("Write each layer's activation matrix M (noise-free) and router cosine matrix as CSV into DIR.", valueName: "DIR"))
        var matrices: String?

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func run() throws {
            let options = analysis.options
            let results = try runCoupling(checkpoints, layout: layoutOptions, options: options, quiet: quiet)
            if let dir = matrices {
                for (i, r) in results.enumerated() {
                    try CouplingTables.writeMatrices(r, to: results.count == 1 ? dir : dir + "/\(i)-" + ((r.checkpoint as NSString).lastPathComponent))
                }
            }
            let table = CouplingTables.erc(results, options: options)
            try emit(table, csv: csv, json: json, display: CouplingTables.ercDisplay(table))
        }
    }

    struct Epsilon: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-expert noise bound eps_i = min_j ||R[i]-R[j]|| / (2||R[i]||), router row norms and gate projection norms.")

        @Argument(help: "One or more checkpoints.")
        var checkpoints: [String]
        @Option(help: ArgumentHelp("Decoder layers, e.g. 0,3-5 (default: every MoE layer).", valueName: "list"))
        var layers: String?
        @OptionGroup var layoutOptions: LayoutOptions
        @Option(help: ArgumentHelp("Write CSV to FILE (- for stdout).", valueName: "FILE")) var csv: String?
        @Flag(help: "Print JSON.") var json = false
        @Flag(name: [.short, .long], help: "No progress on stderr.") var quiet = false

        func validate() throws { if let l = layers, parseLayers(l) == nil { throw ValidationError("--layers '\(l)' is not a list such as 0,3-5") } }

        func run() throws {
            let o = CouplingOptions(alphas: [1], noise: false, layers: layers.flatMap(parseLayers))
            let results = try runCoupling(checkpoints, layout: layoutOptions, options: o, quiet: quiet)
            try emit(CouplingTables.epsilon(results), csv: csv, json: json)
        }
    }

    struct Similarity: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Router cosine similarity per layer: mean |cos| off the diagonal, extremes, row norms.")

        @Argument(help: "A checkpoint.")
        var checkpoint: String
        @Option(help: ArgumentHelp("Decoder layers, e.g. 0,3-5.", valueName: "list")) var layers: String?
        @OptionGroup var layoutOptions: LayoutOptions
        @Option(help: ArgumentHelp("Write CSV to FILE (- for stdout).", valueName: "FILE")) var csv: String?
        @Flag(help: "Print JSON.") var json = false
        @Option(help: ArgumentHelp("Write each layer's cosine matrix as CSV into DIR.", valueName: "DIR")) var matrices: String?
        @Flag(name: [.short, .long], help: "No progress on stderr.") var quiet = false

        func validate() throws { if let l = layers, parseLayers(l) == nil { throw ValidationError("--layers '\(l)' is not a list such as 0,3-5") } }

        func run() throws {
            let model = try layoutOptions.open(checkpoint)
            let sel = layers.flatMap(parseLayers)
            if let sel {
                let missing = sel.subtracting(model.moeLayers.map(\.index))
                if !missing.isEmpty {
                    throw CommandError("\(checkpoint): layer(s) \(missing.sorted().map(String.init).joined(separator: ", ")) are not MoE layers (MoE layers: \(model.moeLayers.map { String($0.index) }.joined(separator: ", ")))")
                }
            }
            var layerResults: [LayerCoupling] = []
            for l in model.moeLayers where sel?.contains(l.index) ?? true {
                let r = try model.routerWeight(l)
                var lc = LayerCoupling(layer: l.index, experts: l.expertCount, status: r.hasNonFinite ? "router contains NaN or Inf" : "ok")
                if lc.isOK {
                    let g = RouterGeometry(router: r)
                    if let zero = g.routerNorms.firstIndex(of: 0) { lc.status = "router row \(zero) has zero norm" } else { lc.geometry = g }
                }
                layerResults.append(lc)
            }
            let c = CheckpointCoupling(checkpoint: checkpoint, step: CouplingAnalysis.step(fromPath: checkpoint), layers: layerResults)
            if let dir = matrices { try CouplingTables.writeMatrices(c, to: dir) }
            try emit(CouplingTables.similarity([c]), csv: csv, json: json)
        }
    }
}
