import Analysis
import ArgumentParser
import Reports

extension MoEInspect {
    struct Epsilon: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-expert noise bound eps_i = min_j ||R[i]-R[j]|| / (2||R[i]||), router row norms and gate projection norms.")

        @Argument(help: "One or more checkpoints.")
        var checkpoints: [String]
        @OptionGroup var selection: LayerOptions
        @OptionGroup var layoutOptions: LayoutOptions
        @OptionGroup var output: TableOutputOptions
        @Flag(name: [.short, .long], help: "No progress on stderr.") var quiet = false

        func run() throws {
            try protectInputs([output.csv], from: checkpoints + [layoutOptions.layout].compactMap { $0 })
            let o = CouplingOptions(alphas: [1], noise: false, layers: selection.layers)
            let results = try runCoupling(checkpoints, layout: layoutOptions, options: o, quiet: quiet)
            try output.emit(CouplingTables.epsilon(results))
        }
    }
}
