import Analysis
import Foundation
import MoELayout
import Reports

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
            progress.say(
                String(
                    format: "%@: layer %d (%d/%d) %@read %.2f s, compute %.2f s", p, l.layer, done, total,
                    l.isOK ? "" : "[\(l.status)] ", l.readSeconds, l.computeSeconds))
        }
    }
}

/// Checkpoints grouped into runs and analysed in run and step order.
struct AnalysedSeries {
    /// The analyses, run after run, each run in step order.
    var results: [CheckpointCoupling]
    /// The runs; their members index `results`.
    var groups: [RunGroup]

    /// The run label of each result.
    var runLabels: [String] {
        var labels = Array(repeating: "", count: results.count)
        for g in groups { for m in g.members where m < labels.count { labels[m] = g.label } }
        return labels
    }
}

/// Parses `--runs` (comma-separated labels), or nil.
func parseList(_ text: String?) -> [String]? {
    text.map { $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) } }
}

/// Groups `paths` into runs (by the folder above `stepN`, or `runs` labels) and analyses them
/// in run and step order: a repeated step is refused before anything is read.
func analyseSeries(_ paths: [String], runs: String?, layout: LayoutOptions, options: CouplingOptions, quiet: Bool) throws -> AnalysedSeries {
    let groups = try RunGrouping.group(paths, labels: parseList(runs))
    let ordered = groups.flatMap { $0.members }
    let results = try runCoupling(ordered.map { paths[$0] }, layout: layout, options: options, quiet: quiet)
    var next = 0
    let renumbered = groups.map { g -> RunGroup in
        var r = g
        r.members = g.members.indices.map { _ in
            defer { next += 1 }; return next
        }
        return r
    }
    return AnalysedSeries(results: results, groups: renumbered)
}
/// Says on stderr (even with --quiet) what the layout found wrong, so that a layer left out of
/// the results (a missing expert, a shape mismatch) never disappears without a word.
func warnAboutProblems(_ model: MoECheckpoint) {
    for p in model.problems {
        FileHandle.standardError.write(Data("moe-inspect: warning: \(model.checkpoint.path): \(p)\n".utf8))
    }
}
