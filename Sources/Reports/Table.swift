import Checkpoints
import Foundation

/// A cell of a table: text, integer, number, or empty.
public enum Cell: Sendable, Equatable {
    case text(String)
    case int(Int)
    case number(Double)
    case empty

    /// The CSV / text rendering: numbers with up to 7 significant digits, `nan`/`inf` spelled out.
    public var rendered: String {
        switch self {
        case let .text(s): return s
        case let .int(i): return String(i)
        case let .number(d):
            if d.isNaN { return "nan" }
            if d.isInfinite { return d > 0 ? "inf" : "-inf" }
            return String(format: "%.7g", d)
        case .empty: return ""
        }
    }

    var json: JSONValue {
        switch self {
        case let .text(s): return .string(s)
        case let .int(i): return .int(i)
        case let .number(d): return d.isFinite ? .number(d) : .string(Cell.number(d).rendered)
        case .empty: return .null
        }
    }
}

/// A table with named columns, rendered as CSV, aligned text or JSON.
public struct Table: Sendable {
    public var columns: [String]
    public var rows: [[Cell]]

    public init(columns: [String], rows: [[Cell]] = []) { self.columns = columns; self.rows = rows }

    /// RFC 4180 CSV with a header line.
    public var csv: String {
        CSV.record(columns) + rows.map { CSV.record($0.map(\.rendered)) }.joined()
    }

    /// Columns padded to their widest cell; numbers right-aligned.
    public func aligned(numberFormat: (Double) -> String = { String(format: "%.4g", $0) }) -> String {
        let cells = rows.map { r in
            r.map { c -> String in
                if case let .number(d) = c, d.isFinite { return numberFormat(d) }; return c.rendered
            }
        }
        var widths = columns.map { $0.count }
        for r in cells { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ r: [String], numeric: [Bool]) -> String {
            r.enumerated().map { i, c in
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                return numeric[i] ? pad + c : c + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        let numeric = columns.indices.map { i in
            rows.contains {
                if case .number = $0[i] { return true }; if case .int = $0[i] { return true }; return false
            }
        }
        var out = [line(columns, numeric: numeric)]
        out += cells.map { line($0, numeric: numeric) }
        return out.joined(separator: "\n")
    }

    /// An array of objects, one per row.
    public var json: JSONValue {
        .array(rows.map { r in .object(zip(columns, r).map { ($0, $1.json) }) })
    }

    /// Writes the CSV to `path` atomically.
    public func writeCSV(to path: String) throws {
        try AtomicOutput.write(csv, to: path)
    }
}

/// A square matrix as CSV, with a header row and a first column of indices.
public func matrixCSV(_ values: [[Double]], label: String = "i") -> String {
    let n = values.first?.count ?? 0
    var out = label + "," + (0..<n).map(String.init).joined(separator: ",") + "\n"
    for (i, r) in values.enumerated() {
        out += String(i) + "," + r.map { Cell.number($0).rendered }.joined(separator: ",") + "\n"
    }
    return out
}
