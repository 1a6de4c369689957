import Foundation
import Testing

/// docs/guide.md is run, not trusted: every ```console block is executed in order in one
/// scratch folder (where `fixtures` points at the repository's fixtures and `moe-inspect` is the
/// built binary), and what each command prints must match the lines shown under it.
///
/// The convention, stated at the top of the guide:
/// - In a ```console block, a line starting with `$ ` is a command (a trailing `\` continues it
///   on the next line); the lines after it, up to the next command, are what it prints on stdout.
///   The command must exit 0.
/// - Printed lines are compared after collapsing runs of blanks; numbers are compared to 0.2 %
///   (or 1e-9 absolute), so that the last printed digit may differ between CPUs; a line `...`
///   stands for any number of lines.
/// - ```sh blocks are shown, never run (examples that need a real checkpoint or hours).
@Suite struct GuideTests {
    let cli = CLITests()

    struct Example { var line: Int; var command: String; var expected: [String] }

    /// The console blocks of `markdown`, as commands with their expected output.
    static func examples(_ markdown: String) -> [Example] {
        var out: [Example] = []
        var inConsole = false, inOther = false
        var current: Example?
        var continuing = false
        for (i, raw) in markdown.components(separatedBy: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
            if line.hasPrefix("```") {
                if inConsole {
                    if let c = current { out.append(c) }
                    current = nil; inConsole = false
                } else if inOther {
                    inOther = false
                } else if line == "```console" {
                    inConsole = true
                } else {
                    inOther = true
                }
                continue
            }
            guard inConsole else { continue }
            if continuing, var c = current {
                continuing = line.hasSuffix("\\")
                c.command += " " + (continuing ? String(line.dropLast()) : line).trimmingCharacters(in: .whitespaces)
                current = c
                continue
            }
            if line.hasPrefix("$ ") {
                if let c = current { out.append(c) }
                var cmd = String(line.dropFirst(2))
                continuing = cmd.hasSuffix("\\")
                if continuing { cmd = String(cmd.dropLast()) }
                current = Example(line: i + 1, command: cmd.trimmingCharacters(in: .whitespaces), expected: [])
            } else if var c = current {
                c.expected.append(line)
                current = c
            }
        }
        return out
    }

    static func tokens(_ line: String) -> [String] { line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }

    static func sameToken(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        guard let x = Double(a), let y = Double(b) else { return false }
        return abs(x - y) <= max(1e-9, 2e-3 * max(abs(x), abs(y)))
    }

    static func sameLine(_ a: String, _ b: String) -> Bool {
        let p = tokens(a), q = tokens(b)
        return p.count == q.count && zip(p, q).allSatisfy { sameToken($0, $1) }
    }

    /// Whether `actual` lines match `expected` (with `...` matching any lines).
    static func matches(_ actual: [String], _ expected: [String]) -> Bool {
        let a = actual.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        let e = expected.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        func go(_ i: Int, _ j: Int) -> Bool {
            if j == e.count { return i == a.count }
            if e[j].trimmingCharacters(in: .whitespaces) == "..." {
                for k in i...a.count where go(k, j + 1) { return true }
                return false
            }
            return i < a.count && sameLine(a[i], e[j]) && go(i + 1, j + 1)
        }
        return go(0, 0)
    }

    @Test func theConventionReadsCommandsAndOutputs() {
        let md = "text\n```console\n$ a \\\n   --b\nout 1\n\n$ c\n```\n```sh\n$ never\n```\n"
        let ex = Self.examples(md)
        #expect(ex.map(\.command) == ["a --b", "c"])
        #expect(ex.first?.expected.filter { !$0.isEmpty } == ["out 1"])
        #expect(Self.matches(["x  1.0001", "y"], ["x 1", "..."]))
        #expect(!Self.matches(["x 1.1"], ["x 1"]))
    }

    @Test func everyExampleOfTheGuideRunsAndPrintsWhatItShows() throws {
        let bin = try #require(CLITests.binary, "build moe-inspect first (make test does)")
        let guide = try String(contentsOfFile: CLITests.root + "/docs/guide.md", encoding: .utf8)
        let examples = Self.examples(guide)
        #expect(examples.count >= 15)
        let sandbox = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: sandbox) }
        try FileManager.default.createSymbolicLink(atPath: sandbox + "/fixtures", withDestinationPath: CLITests.fixtures)
        let binDir = sandbox + "/.bin"
        try FileManager.default.createDirectory(atPath: binDir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: binDir + "/moe-inspect", withDestinationPath: bin)
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = binDir + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        for ex in examples {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", ex.command]
            p.currentDirectoryURL = URL(fileURLWithPath: sandbox)
            p.environment = env
            let out = Pipe(), err = Pipe()
            p.standardOutput = out; p.standardError = err
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            let stdout = String(decoding: o, as: UTF8.self)
            #expect(p.terminationStatus == 0, "docs/guide.md:\(ex.line): `\(ex.command)` exited \(p.terminationStatus): \(String(decoding: e, as: UTF8.self))")
            let actual = stdout.components(separatedBy: "\n")
            #expect(
                Self.matches(actual, ex.expected),
                "docs/guide.md:\(ex.line): `\(ex.command)` printed\n\(stdout)\nbut the guide shows\n\(ex.expected.joined(separator: "\n"))")
        }
    }
}
