import Foundation
import Tensors

/// Converts a checkpoint between safetensors and HDF5, optionally casting floating tensors.
public enum CheckpointConverter {
    /// Output formats, chosen from the output path.
    public enum Target: Sendable, Equatable {
        /// A Hugging Face folder: model.safetensors (or shards + index) and config.json.
        case safetensorsFolder
        /// One .safetensors file (config.json written beside it unless one exists).
        case safetensorsFile
        /// One HDF5 file with the config as its `config` attribute.
        case hdf5
    }

    /// The target format for an output path.
    public static func target(for path: String) -> Target {
        if path.hasSuffix(".h5") || path.hasSuffix(".hdf5") { return .hdf5 }
        if path.hasSuffix(".safetensors") { return .safetensorsFile }
        return .safetensorsFolder
    }

    /// Converts `source` into `output`.
    ///
    /// Without `dtype` every tensor's bytes are copied unchanged (bit-exact). With `dtype`,
    /// floating-point tensors are cast to it (integers are kept); FP8 weights that have a
    /// `_scale_inv` are dequantised first and the scales dropped.
    /// - Parameters:
    ///   - overwrite: replace an existing output (only after the new one is complete).
    ///   - maxShardBytes: shard size for folder output.
    ///   - compress: gzip chunks in HDF5 output.
    ///   - progress: called with each tensor name as it is written.
    public static func convert(
        _ source: Checkpoint, to output: String, dtype: DType? = nil, overwrite: Bool = false,
        maxShardBytes: Int = 5_000_000_000, compress: Bool = false,
        progress: @escaping (String) -> Void = { _ in }
    ) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: output) && !overwrite {
            throw CheckpointError.io(file: output, reason: "already exists; choose another output or pass \(Setting.overwrite)")
        }
        var specs: [TensorSpec] = []
        var dequantized = Set<String>()
        for t in source.tensors {
            if let d = dtype, t.name.hasSuffix("_scale_inv"),
                let w = source.info(String(t.name.dropLast("_scale_inv".count))), w.dtype == .f8e4m3 || w.dtype == .f8e5m2, d != w.dtype
            {
                continue
            }
            var out = t.dtype
            if let d = dtype, t.dtype.isFloatingPoint {
                out = d
                if (t.dtype == .f8e4m3 || t.dtype == .f8e5m2) && source.contains(t.name + "_scale_inv") { dequantized.insert(t.name) }
            }
            specs.append(TensorSpec(name: t.name, dtype: out, shape: t.shape))
        }
        let produce: TensorBytesProducer = { spec, buffer in
            progress(spec.name)
            guard let info = source.info(spec.name) else { throw CheckpointError.missingTensor(file: source.path, name: spec.name) }
            if spec.dtype == info.dtype {
                try source.copyRawBytes(spec.name, into: buffer)
            } else {
                var values = [Float](repeating: 0, count: info.elementCount)
                try values.withUnsafeMutableBufferPointer { b throws(CheckpointError) in
                    try source.read(spec.name, into: b, dequantize: dequantized.contains(spec.name))
                }
                values.withUnsafeBufferPointer { v in
                    if let s = v.baseAddress, let d = buffer.baseAddress { Conversion.encode(spec.dtype, from: s, count: v.count, into: d) }
                }
            }
        }
        let configText = source.config.map { $0.json.serialized(pretty: true) + "\n" }
        switch target(for: output) {
        case .hdf5:
            // HDF5 stores `a.b.c` as groups a/b and dataset c, and reads it back by joining with
            // dots: a name with a slash or an empty part would come back renamed.
            if let bad = specs.first(where: {
                $0.name.contains("/") || $0.name.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty)
            }) {
                throw CheckpointError.io(
                    file: output,
                    reason:
                        "tensor '\(bad.name)' cannot be stored in HDF5 under its own name (a '/' or an empty part between dots); convert to .safetensors instead"
                )
            }
            try HDF5Writer.write(
                specs, config: configText.map { source.config?.json.serialized() ?? $0 }, to: output,
                compress: compress, produce: produce)
        case .safetensorsFile:
            try SafetensorsWriter.write(
                specs, metadata: source.metadata.isEmpty ? ["format": "pt"] : source.metadata,
                to: output, produce: produce)
            if let c = configText {
                let cfg = ((output as NSString).deletingLastPathComponent as NSString).appendingPathComponent("config.json")
                if !fm.fileExists(atPath: cfg) { try AtomicOutput.write(c, to: cfg) }
            }
        case .safetensorsFolder:
            try AtomicOutput.buildFolder(at: output, replace: overwrite) { tmp in
                try SafetensorsWriter.writeFolder(
                    specs, metadata: source.metadata.isEmpty ? ["format": "pt"] : source.metadata,
                    folder: tmp, maxShardBytes: maxShardBytes, produce: produce)
                if let c = configText { try AtomicOutput.write(c, to: tmp + "/config.json") }
                try carryOverSideFiles(from: source, into: tmp)
            }
        }
    }

    /// Copies the files beside the weights of a checkpoint folder (tokenizer, generation config,
    /// chat template, README) into the new folder: a conversion changes the tensors' storage,
    /// not the rest of the model.
    static func carryOverSideFiles(from source: Checkpoint, into folder: String) throws(CheckpointError) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: source.path, isDirectory: &isDir), isDir.boolValue else { return }
        let weights = Set(source.files.map { ($0 as NSString).lastPathComponent })
        for name in (try? fm.contentsOfDirectory(atPath: source.path)) ?? [] {
            if weights.contains(name) || name == "config.json" || name == "model.safetensors.index.json" || name.hasPrefix(".") { continue }
            if name.hasSuffix(".safetensors") || name.hasSuffix(".h5") || name.hasSuffix(".hdf5") { continue }
            let from = (source.path as NSString).appendingPathComponent(name)
            guard fm.fileExists(atPath: from, isDirectory: &isDir), !isDir.boolValue else { continue }
            let bytes = try ReadOnlyFile.contents(of: from, limit: 1 << 30)
            try AtomicOutput.write(Data(bytes), to: (folder as NSString).appendingPathComponent(name))
        }
    }
}
