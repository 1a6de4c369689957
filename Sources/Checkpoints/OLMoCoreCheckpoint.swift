import Foundation
import Tensors

/// What `Checkpoint` needs from a storage format beyond safetensors and HDF5: the tensor list and
/// lazy reads, by name.
public protocol CheckpointTensorReader: AnyObject, Sendable {
    /// The data files, in order.
    var files: [String] { get }
    /// Every tensor, in file order.
    var tensors: [TensorInfo] { get }
    /// Information on tensor `name`, or nil.
    func info(_ name: String) -> TensorInfo?
    /// Decodes tensor `name` to Float32 into `destination` (exactly its element count long).
    func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws(CheckpointError)
    /// Copies the stored bytes of `name` (little-endian, in its dtype) into `destination`.
    func copyRawBytes(_ name: String, into destination: UnsafeMutableRawBufferPointer) throws(CheckpointError)
}

/// A training checkpoint as OLMo-core writes it (`stepN/model_and_optim/`: a `.metadata` index and
/// `__R_I.distcp` files holding one `torch.save` archive per saved chunk), read without Python.
///
/// Tensor names are the model's state-dict keys without the `model.` prefix
/// (`blocks.0.feed_forward_moe.router.weight`); optimizer state (`optim.*`) is left out unless
/// asked for, and byte entries (pickled Python objects) are never read. A tensor saved by several
/// ranks is reassembled from its chunks. Only `.metadata` is read at open; each chunk's archive is
/// parsed when the tensor is read. Files are read with `pread` (never mapped), elements decoded
/// through a small staging buffer, Float32 and raw copies straight into the destination.
public final class OLMoCoreCheckpoint: CheckpointTensorReader, @unchecked Sendable {
    /// The `model_and_optim` folder.
    public let folder: String
    /// Its `.metadata` file.
    public let metadataPath: String
    /// The run's `config.json` (in the step folder, or the folder above it), if found.
    public let configPath: String?
    /// The `.distcp` files the tensors read come from, sorted.
    public let files: [String]
    /// Tensors, in the index's order.
    public let tensors: [TensorInfo]
    /// Keys saved as pickled bytes, not read (optimizer hyper-parameters and the like).
    public let skippedByteKeys: [String]
    /// Number of optimizer-state tensors left out.
    public let skippedOptimizerTensors: Int

    /// The largest `.metadata` read (a 7B model's index is a few MB).
    public static let maxMetadataBytes = 1 << 30
    /// Bytes read per slice when elements are decoded.
    static let stagingBytes = 1 << 22

    private let entries: [ExactName: DistributedCheckpointMetadata.TensorEntry]
    private let position: [ExactName: Int]
    private let lock = NSLock()
    private var opened: [String: ReadOnlyFile] = [:]

    /// The `model_and_optim` folder for `path` — a step folder holding `model_and_optim/.metadata`,
    /// that folder itself, or its `.metadata` file — or nil when `path` is none of these.
    public static func locate(_ path: String) -> String? {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        if !isDir.boolValue {
            return (path as NSString).lastPathComponent == ".metadata" ? (path as NSString).deletingLastPathComponent : nil
        }
        let inner = (path as NSString).appendingPathComponent("model_and_optim")
        if fm.fileExists(atPath: (inner as NSString).appendingPathComponent(".metadata")) { return inner }
        if fm.fileExists(atPath: (path as NSString).appendingPathComponent(".metadata")),
            ((try? fm.contentsOfDirectory(atPath: path)) ?? []).contains(where: { $0.hasSuffix(".distcp") })
        {
            return path
        }
        return nil
    }

    /// Opens the OLMo-core checkpoint at `path` (see `locate`).
    /// - Parameter includeOptimizerState: also list the `optim.*` tensors (under those names).
    /// - Throws: `CheckpointError` naming the file at fault: an unreadable or malformed `.metadata`,
    ///   a missing `.distcp` file, a chunk outside its file, chunks that overlap or leave holes.
    public init(path: String, includeOptimizerState: Bool = false) throws(CheckpointError) {
        guard let folder = Self.locate(path) else {
            throw .io(file: path, reason: "not an OLMo-core checkpoint (no model_and_optim/.metadata)")
        }
        self.folder = folder
        metadataPath = (folder as NSString).appendingPathComponent(".metadata")
        let bytes = try ReadOnlyFile.contents(of: metadataPath, limit: Self.maxMetadataBytes)
        let meta = try DistributedCheckpointMetadata(bytes, file: metadataPath)
        var infos: [TensorInfo] = []
        var entries: [ExactName: DistributedCheckpointMetadata.TensorEntry] = [:]
        var position: [ExactName: Int] = [:]
        var sizes: [String: Int] = [:]
        var skipped = 0
        let fm = FileManager.default
        for t in meta.tensors {
            let name: String
            if t.key.hasPrefix("model.") {
                name = String(t.key.dropFirst("model.".count))
            } else if t.key.hasPrefix("optim.") {
                guard includeOptimizerState else { skipped += 1; continue }
                name = t.key
            } else {
                name = t.key
            }
            guard entries[ExactName(name)] == nil else { throw .malformed(file: metadataPath, reason: "two entries read as tensor '\(name)'") }
            for c in t.chunks {
                if sizes[c.file] == nil {
                    let p = (folder as NSString).appendingPathComponent(c.file)
                    guard fm.fileExists(atPath: p) else {
                        throw .malformed(file: metadataPath, reason: "tensor '\(t.key)' is in \(c.file), which is missing from \(folder)")
                    }
                    sizes[c.file] = try ReadOnlyFile(path: p).size
                }
                let s = sizes[c.file] ?? 0
                guard c.byteOffset <= s, c.byteLength <= s - c.byteOffset else {
                    throw .malformed(
                        file: (folder as NSString).appendingPathComponent(c.file),
                        reason:
                            "chunk \(c.offsets) of '\(t.key)' at bytes [\(c.byteOffset), +\(c.byteLength)) lies past the end of the \(s)-byte file (truncated?)"
                    )
                }
            }
            let file = t.chunks.first.map { (folder as NSString).appendingPathComponent($0.file) } ?? folder
            position[ExactName(name)] = infos.count
            infos.append(TensorInfo(name: name, dtype: t.dtype, shape: t.shape, file: file))
            entries[ExactName(name)] = t
        }
        tensors = infos
        self.entries = entries
        self.position = position
        files = sizes.keys.sorted().map { (folder as NSString).appendingPathComponent($0) }
        skippedByteKeys = meta.byteKeys
        skippedOptimizerTensors = skipped
        let step = (folder as NSString).deletingLastPathComponent
        configPath = [step, (step as NSString).deletingLastPathComponent]
            .map { ($0 as NSString).appendingPathComponent("config.json") }
            .first { fm.fileExists(atPath: $0) }
    }

    /// Information on tensor `name`, or nil.
    public func info(_ name: String) -> TensorInfo? { position[ExactName(name)].map { tensors[$0] } }

    /// Decodes tensor `name` to Float32 into `destination`, chunk by chunk.
    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws(CheckpointError) {
        guard let e = entries[ExactName(name)] else { throw .missingTensor(file: folder, name: name) }
        let count = e.shape.reduce(1, *)
        guard destination.count == count else {
            throw .malformed(file: folder, reason: "tensor '\(name)': \(count) elements, buffer of \(destination.count)")
        }
        guard let dst = destination.baseAddress else { return }
        let width = e.dtype.byteSize
        var staging: UnsafeMutableRawBufferPointer?
        defer { staging?.deallocate() }
        try assemble(e) { (file: ReadOnlyFile, at: Int, element: Int, n: Int) throws(CheckpointError) in
            if e.dtype == .f32 {
                try file.read(at: at, into: UnsafeMutableRawBufferPointer(start: dst + element, count: n * 4))
                return
            }
            let perSlice = max(1, Self.stagingBytes / width)
            if staging == nil { staging = .allocate(byteCount: perSlice * width, alignment: 64) }
            guard let buffer = staging else { return }
            var done = 0
            while done < n {
                let k = min(perSlice, n - done)
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(k * width)])
                try file.read(at: at + done * width, into: slice)
                if let src = slice.baseAddress { Conversion.decode(e.dtype, from: src, count: k, into: dst + element + done) }
                done += k
            }
        }
    }

    /// Copies tensor `name`'s stored bytes, reassembled from its chunks, into `destination`.
    public func copyRawBytes(_ name: String, into destination: UnsafeMutableRawBufferPointer) throws(CheckpointError) {
        guard let e = entries[ExactName(name)] else { throw .missingTensor(file: folder, name: name) }
        let width = e.dtype.byteSize
        guard destination.count == e.shape.reduce(1, *) * width else {
            throw .malformed(file: folder, reason: "tensor '\(name)': size mismatch")
        }
        try assemble(e) { (file: ReadOnlyFile, at: Int, element: Int, n: Int) throws(CheckpointError) in
            try file.read(at: at, into: UnsafeMutableRawBufferPointer(rebasing: destination[(element * width)..<((element + n) * width)]))
        }
    }

    private func file(_ name: String) throws(CheckpointError) -> ReadOnlyFile {
        lock.lock(); defer { lock.unlock() }
        if let f = opened[name] { return f }
        let f = try ReadOnlyFile(path: (folder as NSString).appendingPathComponent(name))
        opened[name] = f
        return f
    }

    /// Calls `run(file, fileOffset, destinationElement, count)` for every contiguous run of every
    /// chunk of `e`, after checking each chunk's archive against the index.
    private func assemble(
        _ e: DistributedCheckpointMetadata.TensorEntry,
        _ run: (ReadOnlyFile, Int, Int, Int) throws(CheckpointError) -> Void
    ) throws(CheckpointError) {
        let shape = e.shape, r = shape.count
        var strides = [Int](repeating: 1, count: r)
        if r > 1 { for a in (0..<(r - 1)).reversed() { strides[a] = strides[a + 1] * shape[a + 1] } }
        for c in e.chunks where c.elementCount > 0 {
            let f = try file(c.file)
            let path = f.path
            guard c.byteOffset <= f.size, c.byteLength <= f.size - c.byteOffset else {
                throw .malformed(file: path, reason: "chunk of '\(e.key)' lies past the end of the file")
            }
            let what = "\(path) (bytes \(c.byteOffset)..<\(c.byteOffset + c.byteLength), '\(e.key)' chunk \(c.offsets))"
            let archive = ArchiveBytes(file: f, offset: c.byteOffset, count: c.byteLength)
            let saved = try TorchSavedTensor(archive, what: what)
            guard saved.dtype == e.dtype else {
                throw .malformed(file: what, reason: "holds \(saved.dtype.rawValue) but the index says \(e.dtype.rawValue)")
            }
            guard saved.shape == c.sizes else {
                throw .malformed(file: what, reason: "holds a tensor of size \(saved.shape) but the index says \(c.sizes)")
            }
            let base = archive.fileOffset(saved.data.lowerBound)
            let width = e.dtype.byteSize
            if r == 0 { try run(f, base, 0, 1); continue }
            // Axes after `m` are whole: each run is sizes[m] * (elements of those axes) long.
            var m = r - 1
            while m > 0 && c.sizes[m] == shape[m] { m -= 1 }
            let runLength = c.sizes[m] * strides[m]
            var index = [Int](repeating: 0, count: m)
            var source = 0
            while true {
                var d = c.offsets[m] * strides[m]
                for a in 0..<m { d += (c.offsets[a] + index[a]) * strides[a] }
                try run(f, base + source * width, d, runLength)
                source += runLength
                var a = m - 1
                while a >= 0 {
                    index[a] += 1
                    if index[a] < c.sizes[a] { break }
                    index[a] = 0
                    a -= 1
                }
                if a < 0 { break }
            }
        }
    }
}
