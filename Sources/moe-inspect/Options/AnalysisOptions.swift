import Analysis
import ArgumentParser
import MoELayout

extension ProbeFeature: ExpressibleByArgument {}

extension LayerSelection: ExpressibleByArgument {
    /// Parses `--layers 0,3-5`.
    public init?(argument: String) { self.init(parsing: argument) }
}

/// Options shared by the commands that run the coupling analysis.
struct AnalysisOptions: ParsableArguments {
    @Option(
        name: .customLong("alpha"), help: ArgumentHelp("ERC alpha; repeat for several (default 1; the paper: 1 at 64 experts, 0.5 at 256).", valueName: "A"))
    var alphas: [Double] = []

    @Option(help: ArgumentHelp("Probe feature: gate (R~ W_g, the paper's choice), up, silu-gate, swiglu or output.", valueName: "F"))
    var feature: ProbeFeature = .gate

    @Option(help: "Noise samples to average (mean and std reported).")
    var samples: Int = 1

    @Flag(help: "No proxy noise (delta = 1): deterministic values.")
    var noNoise = false

    @Option(help: "Seed of the proxy noise (same seed, same numbers, any thread count).")
    var seed: UInt64 = 0

    @OptionGroup var selection: LayerOptions

    func validate() throws {
        guard samples >= 1, samples <= 10_000 else { throw ValidationError("--samples must be between 1 and 10000") }
        if noNoise && samples != 1 { throw ValidationError("--samples averages noise draws; it cannot be combined with --no-noise") }
        for a in alphas where !(a >= 0 && a.isFinite) { throw ValidationError("--alpha must be a non-negative number") }
    }

    var options: CouplingOptions {
        CouplingOptions(
            alphas: alphas.isEmpty ? [1] : alphas, feature: feature, noise: !noNoise, samples: samples,
            seed: seed, layers: selection.layers)
    }
}

/// The `--layers` option.
struct LayerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Decoder layers to analyse, e.g. 0,3-5 (default: every MoE layer).", valueName: "list"))
    var layers: LayerSelection?
}
