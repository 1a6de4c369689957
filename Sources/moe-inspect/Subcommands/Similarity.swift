import Analysis
import ArgumentParser
import Reports

extension MoEInspect {
    struct Similarity: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Router cosine similarity per layer: mean |cos| off the diagonal, extremes, row norms.")

        @Argument(help: "A checkpoint.")
        var checkpoint: String
        @OptionGroup var selection: LayerOptions
        @OptionGroup var layoutOptions: LayoutOptions
        @OptionGroup var output: TableOutputOptions
        @Option(help: ArgumentHelp("Write each layer's cosine matrix as CSV into DIR.", valueName: "DIR")) var matrices: String?
        @Flag(name: [.short, .long], help: "No progress on stderr.") var quiet = false

        func run() throws {
            try protectInputs([output.csv, matrices], from: [checkpoint] + [layoutOptions.layout].compactMap { $0 })
            let model = try layoutOptions.open(checkpoint)
            let layers = try CouplingAnalysis.routerGeometry(model, layers: selection.layers)
            let c = CheckpointCoupling(checkpoint: checkpoint, step: CouplingAnalysis.step(fromPath: checkpoint), layers: layers)
            if let dir = matrices { try CouplingTables.writeMatrices(c, to: dir) }
            try output.emit(CouplingTables.similarity([c]))
        }
    }
}
