import Analysis
import Checkpoints
import Foundation

/// Reads the tables `moe-inspect erc --csv FILE` and `erc --json` write back into numbers, so that
/// a report can be built from them alone (one `erc` job per checkpoint on a cluster, one report
/// at the end).
public enum ERCTableReader {
    /// The columns a table must have to be read as an `erc` table.
    public static let requiredColumns = ["checkpoint", "layer", "n_experts", "alpha", "erc_loss", "coupling_alpha", "status"]

    /// What was read from a folder of tables.
    public struct Result: Sendable {
        /// Every checkpoint, in the order met (files in name order), runs assigned.
        public var checkpoints: [CheckpointNumbers]
        /// The alphas found, in the order met.
        public var alphas: [Double]
        /// Files read.
        public var files: [String]
        /// CSV/JSON files that are not `erc` tables (another table of a report, a log), with the reason.
        public var skipped: [(file: String, reason: String)]
    }

    /// The `.csv` and `.json` files under `folder` (hidden ones excepted), in name order.
    static func tableFiles(_ folder: String) throws(ReportError) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) else { throw .unreadable(file: folder) }
        guard isDir.boolValue else { return [folder] }
        guard let e = FileManager.default.enumerator(atPath: folder) else { throw .unreadable(file: folder) }
        var files: [String] = []
        while let rel = e.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            if name.hasPrefix(".") {
                if (try? FileManager.default.attributesOfItem(atPath: folder + "/" + rel)[.type] as? FileAttributeType) == .typeDirectory {
                    e.skipDescendants()
                }; continue
            }
            let ext = (name as NSString).pathExtension.lowercased()
            if ext == "csv" || ext == "json" { files.append(folder + "/" + rel) }
        }
        return files.sorted()
    }

    /// Reads every `erc` table under `folder` (or the one file `folder`).
    /// - Throws: `ReportError` naming the file: unreadable, empty, malformed, a checkpoint found in
    ///   two files, or no `erc` table at all.
    public static func read(_ folder: String) throws(ReportError) -> Result {
        var rows: [(file: String, row: [String: String])] = []
        var files: [String] = [], skipped: [(file: String, reason: String)] = []
        for f in try tableFiles(folder) {
            guard let data = FileManager.default.contents(atPath: f) else { throw .unreadable(file: f) }
            if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
                throw .badTable(file: f, reason: "empty (did the job that writes it fail?)")
            }
            let text = String(decoding: data, as: UTF8.self)
            let records: [[String: String]]
            if f.lowercased().hasSuffix(".json") {
                guard let r = try jsonRecords(text, file: f) else { skipped.append((f, "not an array of erc rows")); continue }
                records = r
            } else {
                let parsed: (records: [[String]], partial: [String]?)
                do { parsed = try CSV.parse(text, source: f) } catch { throw .badTable(file: f, reason: "\(error)") }
                if parsed.partial != nil { throw .badTable(file: f, reason: "the last line is cut short (was the job stopped while writing?)") }
                guard let header = parsed.records.first else { throw .badTable(file: f, reason: "no header") }
                let missing = requiredColumns.filter { !header.contains($0) }
                if !missing.isEmpty { skipped.append((f, "no column " + missing.joined(separator: ", "))); continue }
                var r: [[String: String]] = []
                for (i, cells) in parsed.records.dropFirst().enumerated() {
                    guard cells.count == header.count else {
                        throw .badTable(file: f, reason: "line \(i + 2) has \(cells.count) fields, the header \(header.count)")
                    }
                    r.append(Dictionary(zip(header, cells), uniquingKeysWith: { a, _ in a }))
                }
                records = r
            }
            files.append(f)
            rows += records.map { (f, $0) }
        }
        guard !files.isEmpty else {
            throw .badTable(
                file: folder,
                reason: "holds no ERC table (the CSV or JSON that moe-inspect erc writes)"
                    + (skipped.isEmpty ? "" : "; skipped: " + skipped.map { ($0.file as NSString).lastPathComponent }.joined(separator: ", ")))
        }
        return try assemble(rows, files: files, skipped: skipped)
    }

    /// The rows of an `erc --json` table, nil when the JSON is not one (another JSON file).
    static func jsonRecords(_ text: String, file: String) throws(ReportError) -> [[String: String]]? {
        let v: JSONValue
        do { v = try JSONParser.parse(text) } catch { throw .badTable(file: file, reason: "not JSON: \(error)") }
        guard let array = v.arrayValue else { return nil }
        var out: [[String: String]] = []
        for (i, item) in array.enumerated() {
            guard let pairs = item.objectPairs else { throw .badTable(file: file, reason: "item \(i) is not an object") }
            var r: [String: String] = [:]
            for (k, value) in pairs {
                switch value {
                case let .string(s): r[k] = s
                case .null: r[k] = ""
                default:
                    if let i = value.intValue, value.doubleValue.map({ Double(i) == $0 }) ?? true {
                        r[k] = String(i)
                    } else if let d = value.doubleValue {
                        r[k] = String(d)
                    } else {
                        throw .badTable(file: file, reason: "item \(i): '\(k)' is not a number or text")
                    }
                }
            }
            let missing = requiredColumns.filter { r[$0] == nil }
            if !missing.isEmpty {
                if i == 0 { return nil }
                throw .badTable(file: file, reason: "item \(i) has no " + missing.joined(separator: ", "))
            }
            out.append(r)
        }
        return out
    }

    static func number(_ s: String?) -> Double {
        guard let s = s?.trimmingCharacters(in: .whitespaces), !s.isEmpty else { return .nan }
        switch s.lowercased() {
        case "nan": return .nan
        case "inf", "+inf", "infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: return Double(s) ?? .nan
        }
    }

    /// Rows to checkpoints: one per `checkpoint` value, its layers in the order met, each row one alpha.
    static func assemble(
        _ rows: [(file: String, row: [String: String])], files: [String],
        skipped: [(file: String, reason: String)]
    ) throws(ReportError) -> Result {
        var order: [String] = []
        var fileOf: [String: String] = [:]
        var byCheckpoint: [String: [[String: String]]] = [:]
        var alphas: [Double] = []
        for (f, r) in rows {
            let c = r["checkpoint"] ?? ""
            guard !c.isEmpty else { throw .badTable(file: f, reason: "a row has no checkpoint") }
            if let other = fileOf[c], other != f {
                throw .badTable(file: f, reason: "checkpoint \(c) is also in \(other); keep one table per checkpoint")
            }
            if fileOf[c] == nil { order.append(c); fileOf[c] = f }
            byCheckpoint[c, default: []].append(r)
        }
        var checkpoints: [CheckpointNumbers] = []
        for c in order {
            let f = fileOf[c] ?? ""
            let rs = byCheckpoint[c] ?? []
            var layers: [LayerNumbers] = []
            var index: [Int: Int] = [:]
            for r in rs {
                guard let layer = Int(r["layer"] ?? ""), let experts = Int(r["n_experts"] ?? "") else {
                    throw .badTable(file: f, reason: "checkpoint \(c): a row's layer or n_experts is not an integer")
                }
                let alpha = number(r["alpha"])
                guard alpha.isFinite else { throw .badTable(file: f, reason: "checkpoint \(c), layer \(layer): alpha is not a number") }
                if !alphas.contains(alpha) { alphas.append(alpha) }
                let status = r["status"] ?? "ok"
                if index[layer] == nil {
                    var l = LayerNumbers(layer: layer, experts: experts, status: .init(cell: status))
                    l.epsMean = number(r["eps_mean"]); l.epsMin = number(r["eps_min"]); l.epsMax = number(r["eps_max"])
                    l.cosineMeanAbs = number(r["router_cos_mean_abs"])
                    l.mDiagonalMean = number(r["m_diag_mean"]); l.mOffDiagonalMean = number(r["m_offdiag_mean"])
                    l.couplingAlpha = number(r["coupling_alpha"])
                    index[layer] = layers.count
                    layers.append(l)
                }
                guard let k = index[layer], layers[k].isOK else { continue }
                if layers[k].erc.contains(where: { $0.alpha == alpha }) {
                    throw .badTable(file: f, reason: "checkpoint \(c), layer \(layer): alpha \(alpha) appears twice")
                }
                layers[k].erc.append(
                    ERCNumbers(
                        alpha: alpha, loss: number(r["erc_loss"]), lossStd: number(r["erc_loss_std"]),
                        specialization: number(r["erc_specialization"]), precision: number(r["erc_precision"])))
            }
            let first = rs.first ?? [:]
            let step = Int(first["step"] ?? "") ?? CouplingAnalysis.step(fromPath: c)
            checkpoints.append(
                CheckpointNumbers(
                    checkpoint: c, step: step, run: first["run"] ?? "", feature: first["feature"] ?? "gate",
                    noiseSamples: Int(first["noise_samples"] ?? "") ?? 0, layers: layers))
        }
        // Runs the tables do not name come from the checkpoints' folders, as for checkpoints given directly.
        let unnamed = checkpoints.indices.filter { checkpoints[$0].run.isEmpty }
        if !unnamed.isEmpty {
            let groups = try RunGrouping.group(unnamed.map { checkpoints[$0].checkpoint })
            let named = Set(checkpoints.map(\.run)).subtracting([""])
            for g in groups {
                var label = g.label
                while named.contains(label) { label += "'" }
                for m in g.members { checkpoints[unnamed[m]].run = label }
            }
        }
        // Repeated steps within a run: two tables of the same checkpoint under different paths.
        for run in RunSeries.gather(checkpoints) {
            let stepped = run.checkpoints.filter { $0.step != nil }
            for (a, b) in zip(stepped, stepped.dropFirst()) where a.step == b.step {
                throw .repeatedStep(run: run.label, step: a.step ?? 0, first: a.checkpoint, second: b.checkpoint)
            }
        }
        return Result(checkpoints: checkpoints, alphas: alphas, files: files, skipped: skipped)
    }
}
