import Analysis
import Checkpoints
import Foundation
import Tensors

/// Checkpoints of one training run, in step order: the unit a series figure draws as one line.
public struct RunGroup: Sendable, Equatable {
    /// The run's label: its folder's distinct path part, or the label given with `--runs`.
    public var label: String
    /// The run folder (the folder above the `stepN` parts), or nil for checkpoints without a step.
    public var folder: String?
    /// Indices into the paths that were grouped, in increasing step (checkpoints without a step:
    /// in the order given).
    public var members: [Int]
}

/// Turns the checkpoints given on a command line into runs: ordered by the step parsed from their
/// paths (`step1000`, `global_step1000`, `checkpoint-1000`, `iter_1000`), grouped by the folder above
/// the step part, each run labelled by the path parts that tell it apart from the others.
public enum RunGrouping {
    /// Where the step is in `path`: the index of the path component it was parsed from and the
    /// step, as `CouplingAnalysis.step(fromPath:)` reads it (the last component that names one).
    static func stepComponent(_ components: [String]) -> (index: Int, step: Int)? {
        for i in components.indices.reversed() {
            if let s = CouplingAnalysis.step(fromPath: components[i]) { return (i, s) }
        }
        return nil
    }

    /// The components of `path` made absolute and standardized (`.`, `..` and repeated `/` removed).
    public static func components(_ path: String) -> [String] {
        URL(fileURLWithPath: path).standardizedFileURL.path.split(separator: "/").map(String.init)
    }

    /// Groups `paths` into runs.
    /// - Parameters:
    ///   - paths: checkpoints as the user gave them.
    ///   - labels: `--runs`: one label per checkpoint (checkpoints sharing a label form one run), or
    ///     one per run found from the folders (in order of first appearance); nil: from the folders.
    /// - Returns: the runs in order of first appearance, each in increasing step.
    /// - Throws: `ReportError.repeatedStep` naming both paths when a run holds a step twice;
    ///   `ReportError.badLabels` when `labels` fits neither count or a label is empty.
    public static func group(_ paths: [String], labels: [String]? = nil) throws(ReportError) -> [RunGroup] {
        let parts = paths.map(components)
        let located = parts.map(stepComponent)
        // Runs by folder: the components above the step part; checkpoints without a step form one group.
        var keys: [String] = []
        var folderOf: [String: String?] = [:]
        var byKey: [String: [Int]] = [:]
        for (i, p) in parts.enumerated() {
            let key: String, folder: String?
            if let s = located[i] {
                folder = "/" + p[..<s.index].joined(separator: "/")
                key = "run:" + (folder ?? "")
            } else {
                folder = nil
                key = "no-step"
            }
            if byKey[key] == nil { keys.append(key); folderOf[key] = folder }
            byKey[key, default: []].append(i)
        }
        var groups: [(key: String, members: [Int])] = keys.map { ($0, byKey[$0] ?? []) }
        var names: [String]
        if let labels {
            if let empty = labels.firstIndex(where: { $0.isEmpty }) {
                throw .badLabels(reason: "\(Setting.runLabels) label \(empty + 1) is empty")
            }
            if labels.count == paths.count {
                // One label per checkpoint: the labels make the runs.
                var order: [String] = []
                var members: [String: [Int]] = [:]
                for (i, l) in labels.enumerated() {
                    if members[l] == nil { order.append(l) }
                    members[l, default: []].append(i)
                }
                groups = order.map { ("label:" + $0, members[$0] ?? []) }
                names = order
            } else if labels.count == groups.count {
                guard Set(labels).count == labels.count else { throw .badLabels(reason: "\(Setting.runLabels) names a run twice (\(labels.joined(separator: ",")))") }
                names = labels
            } else {
                throw .badLabels(reason: "\(Setting.runLabels) names \(labels.count) runs, but \(paths.count) checkpoints in \(groups.count) run folder(s) were given")
            }
        } else {
            let folders = groups.map { g -> String in
                if let f = folderOf[g.key], let f { return f }
                return "checkpoints"
            }
            names = distinctLabels(folders)
        }
        var result: [RunGroup] = []
        for (k, g) in groups.enumerated() {
            // Checkpoints with a step in step order; those without keep the order given, after them.
            let stepped = g.members.filter { located[$0] != nil }.sorted { (located[$0]?.step ?? 0, $0) < (located[$1]?.step ?? 0, $1) }
            let plain = g.members.filter { located[$0] == nil }
            for (a, b) in zip(stepped, stepped.dropFirst()) where located[a]?.step == located[b]?.step {
                throw .repeatedStep(run: names[k], step: located[a]?.step ?? 0, first: paths[a], second: paths[b])
            }
            let folder = g.key.hasPrefix("run:") ? String(g.key.dropFirst(4)) : nil
            result.append(RunGroup(label: names[k], folder: folder, members: stepped + plain))
        }
        return result
    }

    /// Short labels that tell `paths` apart: the path parts left when the parts every path shares
    /// at its start and at its end are dropped (`runs/vanilla/step400`, `runs/erc/step400` ->
    /// `vanilla`, `erc`). Always unique: identical paths get ` (2)`, ` (3)`, ... A single path
    /// gets its last part.
    public static func distinctLabels(_ paths: [String]) -> [String] {
        let parts = paths.map { p -> [String] in
            let c = components(p)
            return c.isEmpty ? ["/"] : c
        }
        var labels: [String]
        if parts.count <= 1 {
            labels = parts.map { $0.last ?? "" }
        } else {
            let shortest = parts.map(\.count).min() ?? 0
            var prefix = 0
            while prefix < shortest, parts.allSatisfy({ $0[prefix] == parts[0][prefix] }) { prefix += 1 }
            var suffix = 0
            while suffix < shortest - prefix, parts.allSatisfy({ $0[$0.count - 1 - suffix] == parts[0][parts[0].count - 1 - suffix] }) { suffix += 1 }
            labels = parts.map { p in
                let middle = p[prefix..<(p.count - suffix)]
                if middle.isEmpty { return p.last ?? "/" }
                // Long differences keep their last two parts (the run and the step, usually).
                return middle.suffix(2).joined(separator: "/")
            }
        }
        return uniqued(labels)
    }

    /// `labels` with repeats numbered: the second `a` becomes `a (2)` (and so on, skipping names taken).
    public static func uniqued(_ labels: [String]) -> [String] {
        var taken = Set(labels)
        var seen: Set<String> = []
        return labels.map { l in
            guard seen.contains(l) else { seen.insert(l); return l }
            var k = 2
            while taken.contains("\(l) (\(k))") { k += 1 }
            let name = "\(l) (\(k))"
            taken.insert(name)
            seen.insert(name)
            return name
        }
    }
}

/// What a path on the command line of `compare` stands for: a checkpoint, or a run folder
/// (`moe-inspect train --out DIR`, or any folder of `stepN` checkpoints) standing for its latest one.
public struct ResolvedInput: Sendable, Equatable {
    /// The path as given.
    public var given: String
    /// The checkpoint to analyse.
    public var checkpoint: String
    /// The run folder (with `log.csv`, `eval.csv`), if the checkpoint sits in one.
    public var runFolder: String?

    /// Whether `dir` itself holds a checkpoint (weights or a config), as opposed to `stepN` folders.
    static func holdsCheckpoint(_ dir: String) -> Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return entries.contains {
            $0 == "config.json" || $0.hasSuffix(".safetensors") || $0.hasSuffix(".h5") || $0.hasSuffix(".hdf5")
                || $0.hasSuffix(".index.json") || $0 == "model_and_optim" || $0 == ".metadata"
        }
    }

    /// The `stepN` folders in `dir`, by increasing step.
    public static func stepFolders(_ dir: String) -> [(step: Int, path: String)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return entries.compactMap { e -> (Int, String)? in
            guard !e.hasPrefix("."), let s = CouplingAnalysis.step(fromPath: e) else { return nil }
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir + "/" + e, isDirectory: &isDir), isDir.boolValue else { return nil }
            return (s, dir + "/" + e)
        }.sorted { $0.0 < $1.0 }
    }

    /// Resolves `path`: a folder of `stepN` folders that holds no checkpoint itself is a run,
    /// standing for its latest step; a checkpoint inside `RUN/stepN` has RUN as its run folder
    /// when RUN holds `log.csv` or `eval.csv`.
    public static func resolve(_ path: String) -> ResolvedInput {
        var isDir: ObjCBool = false
        let fm = FileManager.default
        if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue, !holdsCheckpoint(path), let last = stepFolders(path).last {
            return ResolvedInput(given: path, checkpoint: last.path, runFolder: path)
        }
        let parts = RunGrouping.components(path)
        if let s = RunGrouping.stepComponent(parts), s.index > 0 {
            let folder = "/" + parts[..<s.index].joined(separator: "/")
            if RunLog.File.allCases.contains(where: { fm.fileExists(atPath: folder + "/" + $0.rawValue) })
                || fm.fileExists(atPath: folder + "/" + RunLog.marker)
            {
                return ResolvedInput(given: path, checkpoint: path, runFolder: folder)
            }
        }
        return ResolvedInput(given: path, checkpoint: path, runFolder: nil)
    }
}
