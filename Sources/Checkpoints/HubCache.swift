import Foundation

/// The local Hugging Face hub cache, as `huggingface_hub` lays it out: a model `org/name` lives
/// in `<cache>/models--org--name/` with `refs/<revision>` (a file holding a commit hash),
/// `snapshots/<commit>/` (the files, symbolic links into `blobs/`) and `blobs/`. Nothing is
/// downloaded: a model that is not in the cache is an error saying where it was looked for.
public enum HubCache {
    /// The cache folder, chosen as `huggingface_hub` chooses it: `$HF_HUB_CACHE`, else
    /// `$HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
    /// else `~/.cache/huggingface/hub`.
    public static func folder(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        func expand(_ p: String) -> String { (p as NSString).expandingTildeInPath }
        if let c = environment["HF_HUB_CACHE"], !c.isEmpty { return expand(c) }
        if let c = environment["HUGGINGFACE_HUB_CACHE"], !c.isEmpty { return expand(c) }
        let home: String
        if let h = environment["HF_HOME"], !h.isEmpty {
            home = expand(h)
        } else {
            let cache =
                environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : expand($0) }
                ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
            home = (cache as NSString).appendingPathComponent("huggingface")
        }
        return (home as NSString).appendingPathComponent("hub")
    }

    /// A hub model name with an optional revision, parsed from `org/name` or `org/name@revision`.
    public struct Reference: Equatable, Sendable {
        public let organisation: String
        public let name: String
        /// A branch, tag or commit hash; nil means `main`.
        public let revision: String?
        /// `org/name`.
        public var repository: String { "\(organisation)/\(name)" }

        public init(organisation: String, name: String, revision: String?) {
            self.organisation = organisation; self.name = name; self.revision = revision
        }
    }

    /// Parses `argument` as a hub name, or nil if it cannot be one (one `/` between two names of
    /// letters, digits, `-`, `_`, `.`, each starting and ending with a letter or digit, without
    /// `--` or `..`; a revision without `..`, not absolute).
    public static func parse(_ argument: String) -> Reference? {
        var repo = Substring(argument)
        var revision: String? = nil
        if let at = argument.firstIndex(of: "@") {
            repo = argument[..<at]
            let r = String(argument[argument.index(after: at)...])
            guard isRevision(r) else { return nil }
            revision = r
        }
        let parts = repo.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, isName(parts[0]), isName(parts[1]) else { return nil }
        return Reference(organisation: String(parts[0]), name: String(parts[1]), revision: revision)
    }

    private static func isName(_ s: Substring) -> Bool {
        guard (1...96).contains(s.count), !s.contains("--"), !s.contains(".."), !s.hasSuffix(".git") else { return false }
        let ok = s.unicodeScalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "-" || c == "_" || c == "."
        }
        guard ok, let f = s.unicodeScalars.first, let l = s.unicodeScalars.last else { return false }
        func alnum(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) || ("a"..."z").contains(c) || ("A"..."Z").contains(c) }
        return alnum(f) && alnum(l)
    }

    private static func isRevision(_ r: String) -> Bool {
        guard (1...255).contains(r.count), !r.hasPrefix("/"), !r.hasSuffix("/"), !r.contains(".."), !r.contains("//") else { return false }
        return r.unicodeScalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || "-_./".unicodeScalars.contains(c)
        }
    }

    private static func isCommit(_ s: String) -> Bool {
        s.count == 40 && s.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) }
    }

    /// The snapshot folder of the hub name `argument` in the cache, or nil if `argument` cannot be
    /// a hub name (then it was meant as a local path). Call it only for arguments that are not
    /// existing local paths.
    /// - Throws: `CheckpointError.io` naming the argument, the folder looked in, and how to download.
    public static func resolve(_ argument: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(CheckpointError) -> String? {
        guard let ref = parse(argument) else { return nil }
        let cache = folder(environment: environment)
        let repoFolder = (cache as NSString).appendingPathComponent("models--\(ref.organisation)--\(ref.name)")
        let download =
            "download it with `huggingface-cli download \(ref.repository)\(ref.revision.map { " --revision \($0)" } ?? "")` (or `hf download ...`), or set HF_HUB_CACHE to the cache that holds it"
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: repoFolder, isDirectory: &isDir), isDir.boolValue else {
            throw .io(
                file: argument,
                reason: "no such file or folder, and no model \(ref.repository) in the Hugging Face cache (looked for \(repoFolder)); \(download)")
        }
        let revision = ref.revision ?? "main"
        let refFile = ((repoFolder as NSString).appendingPathComponent("refs") as NSString).appendingPathComponent(revision)
        var commit: String
        if let d = fm.contents(atPath: refFile), d.count <= 1024, let s = String(data: d, encoding: .utf8) {
            commit = s.trimmingCharacters(in: .whitespacesAndNewlines)
            guard isCommit(commit) else {
                throw .malformed(file: refFile, reason: "does not hold a 40-digit commit hash")
            }
        } else if isCommit(revision) {
            commit = revision
        } else {
            let refs = (try? fm.subpathsOfDirectory(atPath: (repoFolder as NSString).appendingPathComponent("refs")))?.sorted() ?? []
            throw .io(
                file: argument,
                reason:
                    "the Hugging Face cache has \(ref.repository) but not revision '\(revision)' (no \(refFile); cached refs: \(refs.isEmpty ? "none" : refs.joined(separator: ", "))); \(download)"
            )
        }
        let snapshot = ((repoFolder as NSString).appendingPathComponent("snapshots") as NSString).appendingPathComponent(commit)
        guard fm.fileExists(atPath: snapshot, isDirectory: &isDir), isDir.boolValue else {
            throw .io(
                file: argument,
                reason: "the Hugging Face cache names commit \(commit) for \(ref.repository)@\(revision), but \(snapshot) is missing; \(download)")
        }
        return snapshot
    }
}
