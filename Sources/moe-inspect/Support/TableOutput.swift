import ArgumentParser
import Reports

/// Where a command's table goes: CSV to a file (or stdout), JSON, or aligned text.
struct TableOutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Write the table as CSV to FILE (- for stdout).", valueName: "FILE"))
    var csv: String?

    @Flag(help: "Print the table as JSON.")
    var json = false

    /// Prints `table` as CSV to a file, JSON or aligned text (`display`, if given) on stdout.
    func emit(_ table: Table, display: Table? = nil) throws {
        if let csv {
            if csv == "-" { print(table.csv, terminator: "") } else { try table.writeCSV(to: csv) }
        }
        if json { print(table.json.serialized(pretty: true)) }
        if csv == nil && !json { print((display ?? table).aligned()) }
    }
}
