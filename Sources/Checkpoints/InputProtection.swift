import Foundation

/// Keeps outputs from replacing inputs: no file a command reads may be overwritten by one it
/// writes, and no folder that holds one may be replaced.
public enum InputProtection {
    /// File endings of what a checkpoint folder holds besides the weights, and is read or
    /// carried over (configs, indexes, tokenizers).
    static let checkpointFileEndings = [".safetensors", ".json", ".h5", ".hdf5", ".distcp", ".metadata", ".model", ".txt", ".pt"]

    /// The real path of `path`: symbolic links resolved, relative parts removed; for a path
    /// that does not exist yet, its folder's real path joined with its name.
    public static func realPath(_ path: String) -> String {
        let url = URL(fileURLWithPath: path)
        if FileManager.default.fileExists(atPath: path) { return url.resolvingSymlinksInPath().standardizedFileURL.path }
        let parent = url.deletingLastPathComponent()
        return parent.resolvingSymlinksInPath().standardizedFileURL.appendingPathComponent(url.lastPathComponent).path
    }

    /// The files an input stands for: a file itself (and the `config.json` beside it); a
    /// folder's checkpoint, config, index and tokenizer files, at any depth up to 3.
    static func protectedFiles(of input: String) -> [String] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: input, isDirectory: &isDir) else { return [] }
        if !isDir.boolValue {
            let config = ((input as NSString).deletingLastPathComponent as NSString).appendingPathComponent("config.json")
            return [realPath(input)] + (fm.fileExists(atPath: config) ? [realPath(config)] : [])
        }
        var out: [String] = []
        let root = URL(fileURLWithPath: input)
        guard let e = fm.enumerator(at: root, includingPropertiesForKeys: nil) else { return [] }
        for case let url as URL in e {
            if e.level > 3 { e.skipDescendants(); continue }
            let name = url.lastPathComponent
            if checkpointFileEndings.contains(where: { name.hasSuffix($0) }) || name == ".metadata" {
                out.append(url.resolvingSymlinksInPath().standardizedFileURL.path)
            }
        }
        return out
    }

    /// Checks that writing `output` (a file, or a folder replaced whole) touches none of
    /// `inputs`' files.
    /// - Throws: `CheckpointError.io` naming the output and the input it would replace.
    public static func check(output: String, inputs: [String]) throws(CheckpointError) {
        let out = realPath(output)
        for input in inputs {
            let inReal = realPath(input)
            if out == inReal {
                throw .io(file: output, reason: "is the input \(input); an output never replaces an input, choose another name")
            }
            for f in protectedFiles(of: input) where f == out || f.hasPrefix(out + "/") {
                throw .io(file: output, reason: "would replace \(f), which is read from the input \(input); choose another output")
            }
            if inReal.hasPrefix(out + "/") {
                throw .io(file: output, reason: "holds the input \(input); an output folder never replaces its inputs")
            }
        }
    }
}
