import Checkpoints
import Foundation

/// Writes a report folder atomically: `body` fills a temporary sibling folder, which then
/// replaces `dir`. An existing `dir` is replaced only when it is empty, an earlier report of this
/// tool (it holds `summary.json`), or `overwrite` is given; nothing of the old folder is kept.
func writeReportFolder(_ dir: String, overwrite: Bool, _ body: (String) throws -> Void) throws {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    var replace = false
    if fm.fileExists(atPath: dir, isDirectory: &isDir) {
        guard isDir.boolValue else { throw CommandError("\(dir): exists and is not a folder") }
        let entries = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        if !entries.isEmpty && !fm.fileExists(atPath: dir + "/summary.json") && !overwrite {
            throw CommandError("\(dir): folder is not empty and holds no earlier report; choose another --out or pass --overwrite")
        }
        replace = true
    }
    try AtomicOutput.buildFolder(at: dir, replace: replace, body)
}
