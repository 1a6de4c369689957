import Analysis
import Checkpoints
import Foundation

/// Finding the checkpoints of a run that are complete: a `stepN` folder is analysed only when
/// every file it needs is present and none of its files has changed for a while.
public enum CheckpointScanner {
    /// A `stepN` folder of a run, seen at one instant.
    public struct Candidate: Sendable, Equatable {
        /// The step.
        public var step: Int
        /// The folder.
        public var path: String
        /// Every file under it (relative path) with its size and modification time (seconds).
        public var files: [String: FileState]
    }

    /// Size and modification time of a file.
    public struct FileState: Sendable, Equatable {
        public var size: Int
        public var modified: Double
    }

    /// Whether `name` is a checkpoint folder's whole name: `step100`, `global_step100`,
    /// `checkpoint-100`, `iter_0000100` (temporary names such as `.step100.tmp-1-2` are not).
    public static func step(ofFolderName name: String) -> Int? {
        for prefix in ["step", "global_step", "checkpoint-", "iter_"] where name.hasPrefix(prefix) {
            let digits = name.dropFirst(prefix.count)
            if !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let v = Int(digits) { return v }
        }
        return nil
    }

    /// The `stepN` folders of `run`, by increasing step, with the state of their files.
    public static func scan(_ run: String) -> [Candidate] {
        let fm = FileManager.default
        let entries = (try? fm.contentsOfDirectory(atPath: run)) ?? []
        var out: [Candidate] = []
        for e in entries {
            guard let step = step(ofFolderName: e) else { continue }
            let dir = run + "/" + e
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { continue }
            var files: [String: FileState] = [:]
            if let walk = fm.enumerator(atPath: dir) {
                while let rel = walk.nextObject() as? String {
                    var st = stat()
                    guard lstat(dir + "/" + rel, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                    files[rel] = FileState(size: Int(st.st_size), modified: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9)
                }
            }
            out.append(Candidate(step: step, path: dir, files: files))
        }
        return out.sorted { $0.step < $1.step }
    }

    /// Why `c` cannot be analysed yet, or nil when it is complete: a Hugging Face folder needs
    /// `config.json` and its weights (`model.safetensors`, or the index and every shard it names,
    /// each with its whole data buffer); an OLMo-core folder needs `model_and_optim/.metadata`
    /// (which OLMo-core writes last) and every `.distcp` file it names. No file may have changed
    /// in the last `settle` seconds (before `now`), nor since `previous` (the same folder at the
    /// last scan), and no temporary file of a writer may be present.
    public static func incomplete(_ c: Candidate, previous: Candidate?, settle: Double, now: Date = Date()) -> String? {
        if c.files.isEmpty { return "empty" }
        if let t = c.files.keys.first(where: { k in
            let n = (k as NSString).lastPathComponent
            return AtomicOutput.isTemporaryName(n) || n.hasSuffix(".tmp") || n.hasSuffix(".part") || n.hasSuffix(".incomplete")
        }) {
            return "a writer's temporary file is present (\(t))"
        }
        let newest = c.files.values.map(\.modified).max() ?? 0
        if now.timeIntervalSince1970 - newest < settle { return "files changed less than \(Readings.number(settle)) s ago" }
        if let p = previous, p.files != c.files { return "files changed since the last scan" }
        let olmoCore = c.files["model_and_optim/.metadata"] != nil || c.files.keys.contains { $0.hasSuffix(".distcp") }
        if olmoCore {
            guard c.files["model_and_optim/.metadata"] != nil else { return "model_and_optim/.metadata (written last) is missing" }
        } else {
            guard c.files["config.json"] != nil else { return "config.json is missing" }
            guard
                c.files["model.safetensors"] != nil || c.files["model.safetensors.index.json"] != nil
                    || c.files.keys.contains(where: { $0.hasSuffix(".safetensors") || $0.hasSuffix(".h5") })
            else { return "no weights yet" }
        }
        // The headers say whether every tensor's bytes are there (shards named by the index,
        // data buffers as long as the headers say, distcp files named by the metadata).
        do { _ = try Checkpoint.open(c.path) } catch { return "not readable yet: \(error)" }
        return nil
    }
}

/// The ledger of `moe-inspect watch`: which checkpoints of the run were analysed, with what
/// options, and where their table is. Rewritten atomically after each checkpoint, so that a
/// watch killed at any instant continues where it stopped and analyses each checkpoint once.
public struct WatchLedger: Sendable {
    /// One analysed checkpoint.
    public struct Entry: Sendable, Equatable {
        public var step: Int
        public var checkpoint: String
        /// The erc table (relative to the watch folder).
        public var table: String
        /// Total bytes of the checkpoint's files when analysed.
        public var bytes: Int
        /// When it was analysed (ISO 8601).
        public var analysedAt: String

        /// An entry for the checkpoint of `step`.
        public init(step: Int, checkpoint: String, table: String, bytes: Int, analysedAt: String) {
            self.step = step; self.checkpoint = checkpoint; self.table = table; self.bytes = bytes; self.analysedAt = analysedAt
        }
    }

    /// The ledger's file name in the watch folder.
    public static let fileName = "ledger.json"
    /// The marker of a watch folder.
    public static let marker = ".moe-inspect-watch"

    /// The run folder watched (absolute).
    public var run: String
    /// The analysis options in words (`--alpha 1 --samples 1 ...`): a restart must use the same.
    public var options: String
    /// The analysed checkpoints, in the order analysed.
    public var entries: [Entry]

    /// An empty ledger.
    public init(run: String, options: String, entries: [Entry] = []) { self.run = run; self.options = options; self.entries = entries }

    /// Whether `step` was analysed.
    public func has(step: Int) -> Bool { entries.contains { $0.step == step } }

    /// The JSON of the ledger.
    public var json: JSONValue {
        .object([
            ("run", .string(run)), ("options", .string(options)),
            (
                "checkpoints",
                .array(
                    entries.map { e in
                        .object([
                            ("step", .int(e.step)), ("checkpoint", .string(e.checkpoint)), ("table", .string(e.table)),
                            ("bytes", .int(e.bytes)), ("analysed_at", .string(e.analysedAt)),
                        ])
                    })
            ),
        ])
    }

    /// Reads the ledger of the watch folder `folder`.
    /// - Throws: `ReportError.badWatchFolder` when it is not a ledger.
    public static func read(_ folder: String) throws(ReportError) -> WatchLedger {
        let path = folder + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(file: path) }
        let v: JSONValue
        do { v = try JSONParser.parse(Array(data)) } catch { throw .badWatchFolder(file: path, reason: "not JSON: \(error)") }
        guard let run = v["run"]?.stringValue, let options = v["options"]?.stringValue, let items = v["checkpoints"]?.arrayValue else {
            throw .badWatchFolder(file: path, reason: "not a ledger of moe-inspect watch (run, options, checkpoints)")
        }
        var entries: [Entry] = []
        for i in items {
            guard let step = i["step"]?.intValue, let c = i["checkpoint"]?.stringValue, let t = i["table"]?.stringValue else {
                throw .badWatchFolder(file: path, reason: "a ledger entry lacks step, checkpoint or table")
            }
            entries.append(Entry(step: step, checkpoint: c, table: t, bytes: i["bytes"]?.intValue ?? 0, analysedAt: i["analysed_at"]?.stringValue ?? ""))
        }
        return WatchLedger(run: run, options: options, entries: entries)
    }

    /// Writes the ledger into `folder` atomically.
    public func write(_ folder: String) throws {
        try AtomicOutput.write(json.serialized(pretty: true) + "\n", to: folder + "/" + Self.fileName)
    }
}
