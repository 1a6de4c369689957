import Foundation
import Tensors

/// A checkpoint on disk, whatever its format: one safetensors file, a folder with one file or
/// with shards and `model.safetensors.index.json`, an HDF5 file, or an OLMo-core training
/// checkpoint (`stepN/model_and_optim/`). Tensor data is read lazily.
public final class Checkpoint: @unchecked Sendable {
    /// The path the user gave.
    public let path: String
    /// The data files, in order.
    public let files: [String]
    /// Every tensor, in file order.
    public let tensors: [TensorInfo]
    /// The model config (`config.json`, or the HDF5 `config` attribute), if any.
    public let config: ModelConfig?
    /// Where the config came from.
    public let configSource: String?
    /// `__metadata__` of the (first) safetensors file.
    public let metadata: [String: String]
    /// The storage format.
    public let format: Format

    /// Storage formats.
    public enum Format: String, Sendable { case safetensors, hdf5, olmoCore = "olmo-core distributed" }

    private enum Backing { case safetensors([SafetensorsFile]), hdf5(HDF5File), reader(any CheckpointTensorReader) }
    private let backing: Backing
    private let location: [ExactName: Int]

    /// Opens `path`: a `.safetensors` or HDF5 file, a `model.safetensors.index.json`, a folder
    /// holding either, or an OLMo-core step folder (or its `model_and_optim` folder). Only
    /// headers (or the distributed checkpoint's `.metadata`) are read.
    /// - Parameter includeOptimizerState: for OLMo-core checkpoints, also list `optim.*` tensors.
    /// - Throws: `CheckpointError` naming the file at fault.
    public static func open(_ path: String, includeOptimizerState: Bool = false) throws(CheckpointError) -> Checkpoint {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            if let snapshot = try HubCache.resolve(path) { return try open(snapshot, includeOptimizerState: includeOptimizerState) }  // org/name[@revision]
            throw .io(file: path, reason: "no such file or folder")
        }
        if OLMoCoreCheckpoint.locate(path) != nil {
            let r = try OLMoCoreCheckpoint(path: path, includeOptimizerState: includeOptimizerState)
            return try Checkpoint(path: path, reader: r, format: .olmoCore, configPath: r.configPath)
        }
        if isDir.boolValue { return try openFolder(path) }
        if path.hasSuffix(".index.json") { return try openIndex(path, folder: (path as NSString).deletingLastPathComponent) }
        if isHDF5(path) { return try openHDF5(path) }
        let f = try SafetensorsFile(path: path)
        return try Checkpoint(path: path, files: [f], configPath: siblingConfig(path))
    }

    static func isHDF5(_ path: String) -> Bool {
        if path.hasSuffix(".h5") || path.hasSuffix(".hdf5") { return true }
        guard let f = try? ReadOnlyFile(path: path), f.size >= 8, let magic = try? f.read(at: 0, count: 8) else { return false }
        return magic == [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
    }

    static func siblingConfig(_ file: String) -> String? {
        let c = ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent("config.json")
        return FileManager.default.fileExists(atPath: c) ? c : nil
    }

    private static func openFolder(_ dir: String) throws(CheckpointError) -> Checkpoint {
        let fm = FileManager.default
        let index = (dir as NSString).appendingPathComponent("model.safetensors.index.json")
        if fm.fileExists(atPath: index) { return try openIndex(index, folder: dir) }
        let single = (dir as NSString).appendingPathComponent("model.safetensors")
        let config = (dir as NSString).appendingPathComponent("config.json")
        let configPath = fm.fileExists(atPath: config) ? config : nil
        if fm.fileExists(atPath: single) {
            return try Checkpoint(path: dir, files: [try SafetensorsFile(path: single)], configPath: configPath)
        }
        let entries = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        let st = entries.filter { $0.hasSuffix(".safetensors") }
        if !st.isEmpty {
            var files: [SafetensorsFile] = []
            for n in st { files.append(try SafetensorsFile(path: (dir as NSString).appendingPathComponent(n))) }
            return try Checkpoint(path: dir, files: files, configPath: configPath)
        }
        if let h = entries.first(where: { $0.hasSuffix(".h5") || $0.hasSuffix(".hdf5") }) {
            return try openHDF5((dir as NSString).appendingPathComponent(h))
        }
        throw .io(file: dir, reason: "no model.safetensors, safetensors shards, index or HDF5 file in this folder")
    }

    private static func openIndex(_ index: String, folder: String) throws(CheckpointError) -> Checkpoint {
        let expected = try parseIndex(try ReadOnlyFile.contents(of: index, limit: 256 << 20), file: index)
        var shardNames: [String] = []
        var seenShards = Set<String>()
        for (_, s) in expected where seenShards.insert(s).inserted { shardNames.append(s) }
        var files: [SafetensorsFile] = []
        var byName: [String: SafetensorsFile] = [:]
        for s in shardNames.sorted() {
            let p = try shardPath(s, folder: folder, index: index)
            let f = try SafetensorsFile(path: p)
            files.append(f)
            byName[s] = f
        }
        for (tensor, s) in expected {
            guard let f = byName[s], f.info(tensor) != nil else {
                throw .malformed(file: index, reason: "names tensor '\(tensor)' in shard '\(s)', which does not hold it")
            }
        }
        let config = (folder as NSString).appendingPathComponent("config.json")
        return try Checkpoint(
            path: folder, files: files,
            configPath: FileManager.default.fileExists(atPath: config) ? config : nil)
    }

    /// The (tensor, shard file) pairs of a `model.safetensors.index.json`'s `weight_map`.
    /// - Throws: `CheckpointError.malformed` naming `file`.
    public static func parseIndex(_ bytes: [UInt8], file: String) throws(CheckpointError) -> [(tensor: String, shard: String)] {
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw .malformed(file: file, reason: "not valid JSON: \(error)") }
        guard let map = json["weight_map"]?.objectPairs else { throw .malformed(file: file, reason: "no weight_map object") }
        var out: [(tensor: String, shard: String)] = []
        for (tensor, v) in map {
            guard let s = v.stringValue else { throw .malformed(file: file, reason: "weight_map entry '\(tensor)' is not a file name") }
            out.append((tensor, s))
        }
        guard !out.isEmpty else { throw .malformed(file: file, reason: "weight_map is empty") }
        return out
    }

    /// The file of shard `name` named by an index in `folder`: a relative path that stays inside
    /// the folder once links are resolved (a checkpoint never reads files outside itself).
    static func shardPath(_ name: String, folder: String, index: String) throws(CheckpointError) -> String {
        guard !name.isEmpty, !name.hasPrefix("/") else {
            throw .malformed(file: index, reason: "shard '\(name)' is an absolute path; an index names its shards relative to its folder")
        }
        let p = (folder as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: p) else { throw .malformed(file: index, reason: "names shard '\(name)', which is missing") }
        let root = URL(fileURLWithPath: folder).resolvingSymlinksInPath().standardizedFileURL.path
        let real = URL(fileURLWithPath: p).resolvingSymlinksInPath().standardizedFileURL.path
        guard real.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw .malformed(file: index, reason: "shard '\(name)' resolves to \(real), outside the checkpoint folder")
        }
        return p
    }

    private static func openHDF5(_ path: String) throws(CheckpointError) -> Checkpoint {
        let h = try HDF5File(path: path)
        return try Checkpoint(path: path, hdf5: h)
    }

    private init(path: String, files: [SafetensorsFile], configPath: String?) throws(CheckpointError) {
        self.path = path
        self.files = files.map { $0.path }
        var all: [TensorInfo] = []
        var loc: [ExactName: Int] = [:]
        for (i, f) in files.enumerated() {
            for t in f.tensors {
                if let j = loc[ExactName(t.name)] {
                    throw .malformed(file: f.path, reason: "tensor '\(t.name)' is also in \(files[j].path)")
                }
                loc[ExactName(t.name)] = i
                all.append(t)
            }
        }
        tensors = all
        location = loc
        metadata = files.first?.metadata ?? [:]
        backing = .safetensors(files)
        format = .safetensors
        if let c = configPath { config = try ModelConfig(contentsOf: c); configSource = c } else { config = nil; configSource = nil }
    }

    private init(path: String, hdf5: HDF5File) throws(CheckpointError) {
        self.path = path
        files = [hdf5.path]
        tensors = hdf5.tensors
        location = Dictionary(hdf5.tensors.map { (ExactName($0.name), 0) }, uniquingKeysWith: { a, _ in a })
        metadata = [:]
        backing = .hdf5(hdf5)
        format = .hdf5
        if let text = hdf5.configText {
            config = try ModelConfig(text: text, source: hdf5.path + " (config attribute)")
            configSource = hdf5.path + " (config attribute)"
        } else if let c = Checkpoint.siblingConfig(hdf5.path) {
            config = try ModelConfig(contentsOf: c); configSource = c
        } else {
            config = nil; configSource = nil
        }
    }

    private init(path: String, reader: any CheckpointTensorReader, format: Format, configPath: String?) throws(CheckpointError) {
        self.path = path
        files = reader.files
        tensors = reader.tensors
        location = Dictionary(reader.tensors.map { (ExactName($0.name), 0) }, uniquingKeysWith: { a, _ in a })
        metadata = [:]
        backing = .reader(reader)
        self.format = format
        if let c = configPath { config = try ModelConfig(contentsOf: c); configSource = c } else { config = nil; configSource = nil }
    }

    /// Information on tensor `name`, or nil.
    public func info(_ name: String) -> TensorInfo? {
        guard let i = location[ExactName(name)] else { return nil }
        switch backing {
        case let .safetensors(f): return f[i].info(name)
        case let .hdf5(h): return h.info(name)
        case let .reader(r): return r.info(name)
        }
    }

    /// True when the checkpoint holds tensor `name`.
    public func contains(_ name: String) -> Bool { location[ExactName(name)] != nil }

    /// Total bytes of tensor data.
    public var totalBytes: Int { tensors.reduce(0) { $0 + $1.byteCount } }

    /// Decodes tensor `name` to Float32 into `destination` (its element count long), applying
    /// DeepSeek-V3 block dequantisation when `dequantize` and a `<name>_scale_inv` exists.
    public func read(
        _ name: String, into destination: UnsafeMutableBufferPointer<Float>,
        dequantize: Bool = true
    ) throws(CheckpointError) {
        guard let i = location[ExactName(name)] else { throw .missingTensor(file: path, name: name) }
        switch backing {
        case let .safetensors(f): try f[i].read(name, into: destination)
        case let .hdf5(h): try h.read(name, into: destination)
        case let .reader(r): try r.read(name, into: destination)
        }
        if dequantize, let info = info(name), info.dtype == .f8e4m3 || info.dtype == .f8e5m2,
            contains(name + "_scale_inv")
        {
            try applyBlockScales(name, info: info, destination)
        }
    }

    /// Tensor `name` decoded to Float32 (dequantised as in `read`).
    public func tensor(_ name: String, dequantize: Bool = true) throws(CheckpointError) -> Tensor {
        guard let info = info(name) else { throw .missingTensor(file: path, name: name) }
        var storage = [Float](repeating: 0, count: info.elementCount)
        try storage.withUnsafeMutableBufferPointer { b throws(CheckpointError) in try read(name, into: b, dequantize: dequantize) }
        return Tensor(shape: info.shape, storage: storage)
    }

    /// The stored bytes of tensor `name` (little-endian, in its dtype).
    public func rawBytes(_ name: String) throws(CheckpointError) -> [UInt8] {
        guard let i = location[ExactName(name)] else { throw .missingTensor(file: path, name: name) }
        switch backing {
        case let .safetensors(f):
            guard let info = f[i].info(name) else { throw .missingTensor(file: path, name: name) }
            var out = [UInt8](repeating: 0, count: info.byteCount)
            let r = out.withUnsafeMutableBytes { b -> Result<Void, CheckpointError> in
                do throws(CheckpointError) { try f[i].readRaw(name, into: b); return .success(()) } catch { return .failure(error) }
            }
            try r.get()
            return out
        case let .hdf5(h): return try h.rawBytes(name)
        case let .reader(r):
            guard let info = r.info(name) else { throw .missingTensor(file: path, name: name) }
            var out = [UInt8](repeating: 0, count: info.byteCount)
            do { try out.withUnsafeMutableBytes { b in try r.copyRawBytes(name, into: b) } } catch let e as CheckpointError { throw e } catch {
                throw .io(file: path, reason: "\(error)")
            }
            return out
        }
    }

    /// Copies the stored bytes of `name` into `destination` without an intermediate array.
    public func copyRawBytes(_ name: String, into destination: UnsafeMutableRawBufferPointer) throws(CheckpointError) {
        guard let i = location[ExactName(name)] else { throw .missingTensor(file: path, name: name) }
        switch backing {
        case let .safetensors(f):
            try f[i].readRaw(name, into: destination)
        case let .hdf5(h):
            let b = try h.rawBytes(name)
            guard b.count == destination.count else { throw .malformed(file: path, reason: "tensor '\(name)': size mismatch") }
            b.withUnsafeBytes { s in if let sp = s.baseAddress, let d = destination.baseAddress { d.copyMemory(from: sp, byteCount: b.count) } }
        case let .reader(r): try r.copyRawBytes(name, into: destination)
        }
    }

    /// Hints the OS to read `name`'s bytes ahead (safetensors only).
    public func prefetch(_ name: String) {
        if case let .safetensors(f) = backing, let i = location[ExactName(name)] { f[i].prefetch(name) }
    }

    /// DeepSeek-V3 FP8: weight [out, in] times `scale_inv` [ceil(out/128), ceil(in/128)] per block.
    private func applyBlockScales(_ name: String, info: TensorInfo, _ w: UnsafeMutableBufferPointer<Float>) throws(CheckpointError) {
        let scale = try tensor(name + "_scale_inv", dequantize: false)
        guard info.shape.count == 2, scale.shape.count == 2 else {
            throw .malformed(file: path, reason: "'\(name)_scale_inv' must be 2-D beside a 2-D FP8 weight")
        }
        let rows = info.shape[0], cols = info.shape[1]
        let br = scale.shape[0], bc = scale.shape[1]
        guard br > 0, bc > 0, (rows + br - 1) / br <= 128, (rows + 127) / 128 == br, (cols + 127) / 128 == bc else {
            throw .malformed(file: path, reason: "'\(name)_scale_inv' shape \(scale.shape) does not tile \(info.shape) in 128x128 blocks")
        }
        guard let base = w.baseAddress else { return }
        scale.storage.withUnsafeBufferPointer { s in
            for r in 0..<rows {
                let row = base + r * cols, blockRow = (r / 128) * bc
                for k in 0..<bc {
                    let factor = s[blockRow + k]
                    for c in (k * 128)..<min(cols, (k + 1) * 128) { row[c] *= factor }
                }
            }
        }
    }
}
