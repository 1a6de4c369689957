import Checkpoints
import Foundation
import Reports

/// The output folder of `report`, `compare` and `watch`, checked before any work is done.
///
/// A report folder carries `ReportMarker.name`. An existing OUT is replaced only with
/// `--overwrite`, and only when it is empty or carries the marker; anything else is refused, so
/// that a user's files are never deleted. OUT may not hold (or be) an input. OUT may be the current
/// folder (`.`): it is then refilled in place rather than renamed.
struct ReportDestination {
    /// OUT as given.
    let given: String
    /// OUT made absolute.
    let path: String
    /// Whether OUT exists (empty or a report).
    let exists: Bool
    /// Whether OUT is the current folder (refilled in place).
    let inPlace: Bool

    /// Checks `dir` for a report of `inputs` (paths of checkpoints, logs, tables).
    /// - Throws: `CommandError` saying why OUT cannot be written.
    static func check(_ dir: String, overwrite: Bool, inputs: [String]) throws -> ReportDestination {
        guard !dir.isEmpty else { throw CommandError("--out is empty") }
        let path = AtomicOutput.absolute(dir)
        guard path != "/" else { throw CommandError("\(dir): refusing to write a report into the root folder") }
        let real = resolved(path)
        for input in inputs {
            let i = resolved(AtomicOutput.absolute(input))
            if i == real || i.hasPrefix(real + "/") {
                throw CommandError("\(dir): holds the input \(input); a report never replaces its inputs: choose another --out")
            }
        }
        let cwd = resolved(FileManager.default.currentDirectoryPath)
        if cwd.hasPrefix(real + "/") {
            throw CommandError("\(dir): holds the current folder, which replacing it would remove; run from elsewhere or choose another --out")
        }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            return ReportDestination(given: dir, path: path, exists: false, inPlace: false)
        }
        guard isDir.boolValue else { throw CommandError("\(dir): exists and is not a folder") }
        let entries = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).filter { !AtomicOutput.isTemporaryName($0) }
        if !entries.isEmpty {
            guard entries.contains(ReportMarker.name) else {
                throw CommandError(
                    "\(dir): is not empty and is not a report folder of moe-inspect (it has no \(ReportMarker.name)); choose an empty or new folder (--overwrite replaces only earlier reports)"
                )
            }
            guard overwrite else {
                throw CommandError("\(dir): holds an earlier report; pass --overwrite to replace it whole, or choose another --out")
            }
        }
        return ReportDestination(given: dir, path: path, exists: true, inPlace: real == cwd)
    }

    /// `path` with symbolic links resolved as far as it exists.
    static func resolved(_ path: String) -> String {
        var head = path, tail: [String] = []
        while !head.isEmpty && head != "/" {
            if let r = realpath(head, nil) {
                defer { free(r) }
                return ([String(cString: r)] + tail.reversed()).joined(separator: "/").replacingOccurrences(of: "//", with: "/")
            }
            tail.append((head as NSString).lastPathComponent)
            head = (head as NSString).deletingLastPathComponent
        }
        return path
    }

    /// Builds the report: `body` fills a temporary folder that then takes OUT's place whole (or,
    /// for the current folder, whose contents are replaced).
    func write(_ body: (String) throws -> Void) throws {
        if inPlace {
            try AtomicOutput.buildInPlace(at: path, body)
        } else {
            try AtomicOutput.buildFolder(at: path, replace: exists, body)
        }
    }
}

/// Writes a report folder (see `ReportDestination`): `body` fills a temporary folder, which then
/// replaces `dir` whole; the folder gets the report marker. For commands that check nothing earlier.
func writeReportFolder(_ dir: String, overwrite: Bool, kind: String = "report", _ body: (String) throws -> Void) throws {
    let dest = try ReportDestination.check(dir, overwrite: overwrite, inputs: [])
    try dest.write { tmp in
        try body(tmp)
        try ReportMarker.write(into: tmp, kind: kind)
    }
}
