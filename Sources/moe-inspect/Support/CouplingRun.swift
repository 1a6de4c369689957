import Analysis
import Foundation
import MoELayout

/// Runs the coupling analysis over several checkpoints, one line of progress per layer.
func runCoupling(_ paths: [String], layout: LayoutOptions, options: CouplingOptions, quiet: Bool) throws -> [CheckpointCoupling] {
    let progress = Progress(quiet: quiet)
    return try paths.map { p in
        let model = try layout.open(p)
        warnAboutProblems(model)
        let total = try model.moeLayers(in: options.layers).count
        var done = 0
        return try CouplingAnalysis.analyze(model, path: p, options: options) { l in
            done += 1
            progress.say(String(format: "%@: layer %d (%d/%d) %@read %.2f s, compute %.2f s", p, l.layer, done, total,
                                l.isOK ? "" : "[\(l.status)] ", l.readSeconds, l.computeSeconds))
        }
    }
}

/// Says on stderr (even with --quiet) what the layout found wrong, so that a layer left out of
/// the results (a missing expert, a shape mismatch) never disappears without a word.
func warnAboutProblems(_ model: MoECheckpoint) {
    for p in model.problems {
        FileHandle.standardError.write(Data("moe-inspect: warning: \(model.checkpoint.path): \(p)\n".utf8))
    }
}
