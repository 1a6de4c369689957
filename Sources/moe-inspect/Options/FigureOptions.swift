import ArgumentParser
import Checkpoints
import Foundation
import Plotting
import Reports

extension OutputFormat: ExpressibleByArgument {}

/// Options of the commands that write figures.
struct FigureOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("Figure formats, comma-separated: png, pdf, svg (default png).", valueName: "list"),
        transform: FigureOptions.parseFormats)
    var format: [OutputFormat] = [.png]

    @Option(help: "Pixels per inch of PNG figures, 36 to 1200 (default 150).")
    var dpi: Double = 150

    @OptionGroup var size: FigureSizeOptions

    static func parseFormats(_ text: String) throws -> [OutputFormat] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard !names.isEmpty else { throw ValidationError("--format needs at least one of png, pdf, svg") }
        return try names.map { n in
            guard let f = OutputFormat(rawValue: n) else { throw ValidationError("--format takes png, pdf and svg, not '\(n)'") }
            return f
        }
    }

    func validate() throws {
        try FigureOptions.validate(dpi: dpi)
    }

    static func validate(dpi: Double) throws {
        guard dpi >= 36, dpi <= 1200 else { throw ValidationError("--dpi must be between 36 and 1200") }
    }

    /// The settings of a report on `checkpoints`, saying each file written unless `quiet`.
    func settings(checkpoints: [String], quiet: Bool) -> FigureSettings {
        let progress = Progress(quiet: quiet)
        return FigureSettings(
            formats: format, dpi: dpi, width: size.width, fontScale: size.fontScale,
            provenance: provenance(checkpoints: checkpoints), progress: { progress.say("wrote \($0)") })
    }
}

/// `--width` and `--font-scale`, for every command that draws.
struct FigureSizeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Figure width in inches, or paper (3.3, one journal column) or wide (6.9, a page); the height follows (default: each figure's own).", valueName: "W"
        ),
        transform: FigureSizeOptions.parseWidth)
    var width: Double?

    @Option(help: ArgumentHelp("Factor on every font size, 0.5 to 3 (default 1).", valueName: "F"))
    var fontScale: Double = 1

    static func parseWidth(_ text: String) throws -> Double {
        if let w = FigureSettings.presetWidths[text.lowercased()] { return w }
        guard let w = Double(text), w >= 1, w <= 40 else {
            throw ValidationError("--width takes inches from 1 to 40, paper (3.3) or wide (6.9), not '\(text)'")
        }
        return w
    }

    func validate() throws {
        guard fontScale >= 0.5, fontScale <= 3 else { throw ValidationError("--font-scale must be between 0.5 and 3") }
    }
}

/// Provenance recorded in PNG text chunks and PDF/SVG metadata.
func provenance(checkpoints: [String]) -> [String: String] {
    var p = ["Software": "moe-inspect \(MoEInspect.version)", "moe-inspect:command": CommandLine.arguments.joined(separator: " ")]
    if let c = BuildInfo.commit { p["moe-inspect:commit"] = c }
    if !checkpoints.isEmpty { p["moe-inspect:checkpoint"] = checkpoints.joined(separator: ", ") }
    return p
}

/// A figure path given on the command line: its extension names the format.
func figureFormat(_ path: String, option: String) throws -> OutputFormat {
    guard let f = OutputFormat(path: path) else { throw ValidationError("\(option) must end in .png, .pdf or .svg") }
    return f
}

/// The version and commit of this binary.
enum BuildInfo {
    /// `git describe --always --dirty --tags` of the git checkout that holds the binary, read
    /// when the binary runs (nil when it does not sit in a checkout or git is missing). A build
    /// copied elsewhere has none; a checkout changed after the build shows its current commit.
    static let commit: String? = describe()

    /// How `commit` was found, in words.
    static let commitSource = "git describe of the checkout holding the binary, read at run time"

    static func describe() -> String? {
        guard let exe = realpath("/proc/self/exe", nil) else { return nil }
        var dir = (String(cString: exe) as NSString).deletingLastPathComponent
        free(exe)
        while dir.count > 1 {
            if FileManager.default.fileExists(atPath: dir + "/.git") { break }
            dir = (dir as NSString).deletingLastPathComponent
        }
        guard dir.count > 1 else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git", "-C", dir, "describe", "--always", "--dirty", "--tags"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        let s = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return s.isEmpty ? nil : s
    }

    /// The provenance of a page: version, commit, command line, now, and `inputs` with their sizes
    /// and fingerprints (checkpoints: every file; other inputs: the file).
    static func pageInfo(checkpoints: [String], others: [(kind: String, path: String)] = [], refreshSeconds: Int? = nil) -> PageInfo {
        var inputs: [InputRecord] = []
        for c in checkpoints {
            var files: [String] = []
            if let ckpt = try? Checkpoint.open(c) {
                files = ckpt.files
                if let cfg = ckpt.configSource, FileManager.default.fileExists(atPath: cfg), !files.contains(cfg) { files.append(cfg) }
            }
            if let f = try? Fingerprint.of(files), !files.isEmpty {
                inputs.append(InputRecord(kind: "checkpoint", path: c, bytes: f.bytes, sha256: f.sha256, hashIsComplete: f.isComplete))
            } else {
                inputs.append(InputRecord(kind: "checkpoint", path: c))
            }
        }
        for o in others {
            if let f = try? Fingerprint.of([o.path]) {
                inputs.append(InputRecord(kind: o.kind, path: o.path, bytes: f.bytes, sha256: f.sha256, hashIsComplete: f.isComplete))
            } else {
                inputs.append(InputRecord(kind: o.kind, path: o.path))
            }
        }
        return PageInfo(
            version: "moe-inspect \(MoEInspect.version)", commit: commit.map { "\($0) (\(commitSource))" },
            command: CommandLine.arguments.map(shellQuoted).joined(separator: " "), date: Date(), inputs: inputs,
            hashNote: Fingerprint.describe, refreshSeconds: refreshSeconds)
    }

    /// `s` as a shell would need it typed.
    static func shellQuoted(_ s: String) -> String {
        if !s.isEmpty && s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
