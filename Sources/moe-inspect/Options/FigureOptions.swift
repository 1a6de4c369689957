import ArgumentParser
import Plotting
import Reports

extension OutputFormat: ExpressibleByArgument {}

/// Options of the commands that write figures.
struct FigureOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Figure formats, comma-separated: png, pdf, svg (default png).", valueName: "list"),
            transform: FigureOptions.parseFormats)
    var format: [OutputFormat] = [.png]

    @Option(help: "Pixels per inch of PNG figures, 36 to 1200 (default 150).")
    var dpi: Double = 150

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
        return FigureSettings(formats: format, dpi: dpi, provenance: provenance(checkpoints: checkpoints), progress: { progress.say("wrote \($0)") })
    }
}

/// Provenance recorded in PNG text chunks and PDF/SVG metadata.
func provenance(checkpoints: [String]) -> [String: String] {
    var p = ["Software": "moe-inspect \(MoEInspect.version)", "moe-inspect:command": CommandLine.arguments.joined(separator: " ")]
    if !checkpoints.isEmpty { p["moe-inspect:checkpoint"] = checkpoints.joined(separator: ", ") }
    return p
}

/// A figure path given on the command line: its extension names the format.
func figureFormat(_ path: String, option: String) throws -> OutputFormat {
    guard let f = OutputFormat(path: path) else { throw ValidationError("\(option) must end in .png, .pdf or .svg") }
    return f
}
