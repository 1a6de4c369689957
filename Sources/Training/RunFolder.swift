import Checkpoints
import Foundation
import Tensors

/// A training run's folder: its marker, its CSV logs and its `step{N}` checkpoints.
///
/// Only a folder that carries the marker written by `moe-inspect train` is ever written into
/// again; a new run needs an absent or empty folder. Rows of every log are written before the
/// step folder they belong to is renamed into place, and rows past the step a run resumes from
/// are dropped on resume, so that a run killed at any instant of a save resumes exactly.
public final class RunFolder {
    /// The folder.
    public let path: String

    private init(path: String) { self.path = path }

    /// Starts a new run in `path`, which must be absent or empty (or a run folder of a run
    /// stopped before its first save, whose logs are then dropped); writes the marker.
    /// - Throws: `TrainingError.io` when `path` holds anything (a run: continue it with resume).
    public static func create(_ path: String) throws(TrainingError) -> RunFolder {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw .io(file: path, reason: "exists and is not a folder") }
            // Temporary files of our own atomic writes (a kill mid-write) do not make a folder the user's.
            let all = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            let ours = all.filter(AtomicOutput.isTemporaryName)
            for e in ours { try? fm.removeItem(atPath: path + "/" + e) }
            let entries = all.filter { !AtomicOutput.isTemporaryName($0) }
            if entries.contains(RunLog.marker) {
                let run = RunFolder(path: path)
                guard run.savedSteps.isEmpty else {
                    throw .io(file: path, reason: "already holds a run; continue it with \(Setting.resume) \(path) or choose another \(Setting.output)")
                }
                // A run stopped before its first save left only logs: it starts over.
                for file in RunLog.File.allCases { try? fm.removeItem(atPath: path + "/" + file.rawValue) }
                run.removeStaleTemporaryFolders()
                return run
            }
            if !entries.isEmpty {
                throw .io(file: path, reason: "is not empty and holds no run of moe-inspect train; choose an empty or new folder")
            }
        }
        try fm.createDirectoryOrThrow(path)
        let run = RunFolder(path: path)
        do { try AtomicOutput.write("moe-inspect train run folder\n", to: path + "/" + RunLog.marker) } catch {
            throw .files(error)
        }
        return run
    }

    /// Opens the existing run folder `path` for resuming.
    /// - Throws: `TrainingError.state` when it carries no marker.
    public static func open(_ path: String) throws(TrainingError) -> RunFolder {
        guard FileManager.default.fileExists(atPath: path + "/" + RunLog.marker) else {
            throw .state(file: path, reason: "is not a run folder of moe-inspect train (no \(RunLog.marker)); refusing to write into it")
        }
        return RunFolder(path: path)
    }

    /// The folder of the checkpoint at `step`.
    public func stepFolder(_ step: Int) -> String { path + "/step\(step)" }

    /// The steps of the `step{N}` folders present, in increasing order.
    public var savedSteps: [Int] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return entries.compactMap { e -> Int? in
            guard e.hasPrefix("step"), let n = Int(e.dropFirst(4)), n >= 0, "step\(n)" == e else { return nil }
            return n
        }.sorted()
    }

    /// Appends `rows` to `file`, writing the header first when the file is new.
    func append(_ file: RunLog.File, _ rows: [[String]]) throws(TrainingError) {
        guard !rows.isEmpty else { return }
        let p = path + "/" + file.rawValue
        let fm = FileManager.default
        if !fm.fileExists(atPath: p) {
            FaultInjection.point()
            guard fm.createFile(atPath: p, contents: Data(CSV.record(file.columns).utf8)) else { throw .io(file: p, reason: "cannot create") }
        }
        FaultInjection.point()
        guard let h = FileHandle(forWritingAtPath: p) else { throw .io(file: p, reason: "cannot open for appending") }
        defer { try? h.close() }
        do {
            try h.seekToEnd()
            try h.write(contentsOf: Data(rows.map(CSV.record).joined().utf8))
            try h.synchronize()
        } catch { throw .io(file: p, reason: "cannot append: \(error.localizedDescription)") }
    }

    /// Drops, atomically, the rows of every log past `step` (written by a run killed before the
    /// checkpoint of their step was complete) and a last row cut short.
    /// - Throws: `TrainingError.state` when a log is not the trainer's (other columns, rows
    ///   that do not parse).
    func truncate(after step: Int) throws(TrainingError) {
        for file in RunLog.File.allCases {
            let p = path + "/" + file.rawValue
            guard let d = FileManager.default.contents(atPath: p) else { continue }
            let parsed: [[String]]
            do { parsed = try CSV.parse(String(decoding: d, as: UTF8.self), source: p).records } catch { throw .files(error) }
            guard let header = parsed.first, header == file.columns else {
                throw .state(file: p, reason: "its columns are not those the trainer writes (\(file.columns.joined(separator: ",")))")
            }
            var kept: [[String]] = []
            for (i, r) in parsed.dropFirst().enumerated() {
                guard r.count == header.count, let s = Int(r[0]), s >= 0 else {
                    throw .state(file: p, reason: "row \(i + 2) is not a row the trainer wrote")
                }
                if s <= step { kept.append(r) }
            }
            let text = ([header] + kept).map(CSV.record).joined()
            do { try AtomicOutput.write(text, to: p) } catch { throw .files(error) }
        }
    }

    /// Removes what a kill during a write left: half-written step folders and temporary files
    /// of atomic writes (`.NAME.tmp-PID-RANDOM`).
    func removeStaleTemporaryFolders() {
        let fm = FileManager.default
        for e in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where AtomicOutput.isTemporaryName(e) {
            try? fm.removeItem(atPath: path + "/" + e)
        }
    }
}
