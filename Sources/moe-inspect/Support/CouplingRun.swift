import Analysis
import Foundation

/// Runs the coupling analysis over several checkpoints, one line of progress per layer.
func runCoupling(_ paths: [String], layout: LayoutOptions, options: CouplingOptions, quiet: Bool) throws -> [CheckpointCoupling] {
    let progress = Progress(quiet: quiet)
    return try paths.map { p in
        let model = try layout.open(p)
        let total = try model.moeLayers(in: options.layers).count
        var done = 0
        return try CouplingAnalysis.analyze(model, path: p, options: options) { l in
            done += 1
            progress.say(String(format: "%@: layer %d (%d/%d) %@read %.2f s, compute %.2f s", p, l.layer, done, total,
                                l.isOK ? "" : "[\(l.status)] ", l.readSeconds, l.computeSeconds))
        }
    }
}
