import Foundation

/// Comma-separated values as RFC 4180 defines them: fields holding a comma, a quote, a carriage
/// return or a line feed are quoted, quotes inside doubled; records end with a line feed (a
/// carriage return before it is accepted on reading).
public enum CSV {
    /// One record, with its line feed.
    public static func record(_ fields: [String]) -> String {
        fields.map(quote).joined(separator: ",") + "\n"
    }

    /// `field`, quoted when it must be.
    public static func quote(_ field: String) -> String {
        // Scalars, not Characters: a quote followed by a combining mark is one Character.
        guard field.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        var out = String.UnicodeScalarView()
        out.append("\"")
        for c in field.unicodeScalars {
            out.append(c)
            if c == "\"" { out.append("\"") }
        }
        out.append("\"")
        return String(out)
    }

    /// The records of `text`. A last record without its line feed is returned in `partial`
    /// (a writer was stopped mid-record), not among `records`.
    /// - Throws: `CheckpointError.malformed` naming `source` when a quoted field is not closed
    ///   or a quote stands inside an unquoted field.
    public static func parse(_ text: String, source: String) throws(CheckpointError) -> (records: [[String]], partial: [String]?) {
        var records: [[String]] = []
        var fields: [String] = []
        var field = ""
        var quoted = false, wasQuoted = false, atFieldStart = true
        var line = 1
        var chars = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func next() -> Unicode.Scalar? {
            if let p = pending { pending = nil; return p }
            return chars.next()
        }
        while let c = next() {
            if quoted {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" { field.unicodeScalars.append("\"") } else { quoted = false; pending = n }
                    } else {
                        quoted = false
                    }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"":
                guard atFieldStart else { throw .malformed(file: source, reason: "line \(line): a quote inside an unquoted field") }
                quoted = true; wasQuoted = true; atFieldStart = false
            case ",":
                fields.append(field); field = ""; wasQuoted = false; atFieldStart = true
            case "\r":
                // part of a CRLF line end; a lone CR is kept as data
                if let n = next() { if n == "\n" { pending = n } else { field.unicodeScalars.append(c); pending = n } }
            case "\n":
                fields.append(field)
                records.append(fields)
                fields = []; field = ""; wasQuoted = false; atFieldStart = true
                line += 1
            default:
                guard !wasQuoted else { throw .malformed(file: source, reason: "line \(line): text after a closing quote") }
                field.unicodeScalars.append(c); atFieldStart = false
            }
        }
        if quoted { throw .malformed(file: source, reason: "line \(line): a quoted field is not closed") }
        if !atFieldStart || !fields.isEmpty || !field.isEmpty {
            fields.append(field)
            return (records, fields)
        }
        return (records, nil)
    }
}

/// The files of a training run folder (`moe-inspect train --out DIR`) and their columns: the
/// trainer writes them, reports read them.
public enum RunLog {
    /// The marker file that says a folder is a run folder written by `moe-inspect train`.
    public static let marker = ".moe-inspect-run"

    /// A CSV log of a run.
    public enum File: String, Sendable, CaseIterable {
        /// One row per optimizer step.
        case log = "log.csv"
        /// One row per layer at every save: the noise-free ERC loss and eps.
        case analysis = "analysis.csv"
        /// One row per save: the held-out loss.
        case eval = "eval.csv"

        /// The columns, in order; the first is always `step`.
        public var columns: [String] {
            switch self {
            case .log: return ["step", "tokens", "lr", "loss", "lm_loss", "lb_loss", "z_loss", "erc_loss", "eps_mean", "grad_norm", "tokens_per_s"]
            case .analysis: return ["step", "layer", "erc_loss", "eps_mean", "eps_min"]
            case .eval: return ["step", "tokens", "eval_loss", "eval_tokens"]
            }
        }
    }
}
