import Checkpoints
import Foundation
import Tensors

/// How a checkpoint stored the model, so that saving keeps its tensor names and dtypes.
public struct StoredFormat: Sendable, Equatable, Codable {
    /// Experts as transformers' fused 3-D tensors (`mlp.experts.gate_up_proj` [n, 2D, d],
    /// `mlp.experts.down_proj` [n, d, D]) rather than one tensor per expert and projection.
    public var fusedExperts: Bool
    /// Element type of each stored tensor by name (the model's names, fused or not).
    public var dtypes: [String: DType]
    /// Largest shard in bytes when the input was sharded, else nil (one file).
    public var shardBytes: Int?

    /// Float32, per-expert names, one file: what `--init` writes.
    public static let float32 = StoredFormat(fusedExperts: false, dtypes: [:], shardBytes: nil)
}

/// Reading an OLMoE model from a Hugging Face checkpoint and writing one back.
public enum NetworkCheckpoint {
    /// Loads `path` (a folder, safetensors file, index or HDF5 file with a config).
    /// - Returns: the model and how it was stored.
    /// - Throws: `TrainingError` naming the file and the tensor at fault.
    public static func load(_ path: String) throws(TrainingError) -> (OlmoeNetwork, StoredFormat) {
        let ck: Checkpoint
        do { ck = try Checkpoint.open(path) } catch { throw .files(error) }
        guard let mc = ck.config else {
            throw .checkpoint(file: path, reason: "no config.json beside the weights; the trainer needs the model's hyper-parameters")
        }
        let config = try OlmoeConfig(mc, source: ck.configSource ?? path)
        let model = OlmoeNetwork(config: config)
        let layout = model.layout
        var dtypes: [String: DType] = [:]
        let fused = ck.contains("model.layers.0.mlp.experts.gate_up_proj")
        let d = config.hiddenSize, D = config.intermediateSize, n = config.expertCount
        func read(_ name: String, into offset: Int, shape: [Int]) throws(TrainingError) {
            guard let info = ck.info(name) else { throw .checkpoint(file: path, reason: "missing tensor '\(name)'") }
            guard info.shape == shape else {
                throw .checkpoint(file: path, reason: "tensor '\(name)' has shape \(info.shape), the config implies \(shape)")
            }
            guard info.dtype.isFloatingPoint else { throw .checkpoint(file: path, reason: "tensor '\(name)' has non-float dtype \(info.dtype.rawValue)") }
            let buf = UnsafeMutableBufferPointer(start: model.parameters.pointer + offset, count: info.elementCount)
            do { try ck.read(name, into: buf) } catch { throw .files(error) }
            dtypes[name] = info.dtype
        }
        for t in layout.tensors {
            if fused && (t.group == .gateProjection || t.group == .upProjection || t.group == .downProjection) { continue }
            try read(t.name, into: t.offset, shape: t.shape)
        }
        if fused {
            for (l, o) in layout.layers.enumerated() {
                try read("model.layers.\(l).mlp.experts.gate_up_proj", into: o.gateUp, shape: [n, 2 * D, d])
                try read("model.layers.\(l).mlp.experts.down_proj", into: o.down, shape: [n, d, D])
            }
        }
        if config.tieWordEmbeddings == false, !ck.contains("lm_head.weight") {
            throw .checkpoint(file: path, reason: "missing tensor 'lm_head.weight' (config has tie_word_embeddings false)")
        }
        for i in 0..<model.parameters.count where !model.parameters.pointer[i].isFinite {
            let name = layout.tensors.last(where: { $0.offset <= i })?.name ?? "?"
            throw .checkpoint(file: path, reason: "tensor '\(name)' holds NaN or infinite values")
        }
        var shard: Int?
        if ck.files.count > 1 {
            shard = ck.files.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }.max()
        }
        return (model, StoredFormat(fusedExperts: fused, dtypes: dtypes, shardBytes: shard))
    }

    /// The tensors to write for `model` in `format`, each with its name, dtype and the flat
    /// offset of its first element (fused tensors span the whole expert stack).
    static func specs(_ model: OlmoeNetwork, format: StoredFormat, dtype override: DType?) -> [(TensorSpec, Int)] {
        let c = model.config, layout = model.layout
        let d = c.hiddenSize, D = c.intermediateSize, n = c.expertCount
        func dt(_ name: String) -> DType { override ?? format.dtypes[name] ?? .f32 }
        var out: [(TensorSpec, Int)] = []
        for t in layout.tensors {
            if format.fusedExperts && (t.group == .gateProjection || t.group == .upProjection || t.group == .downProjection) { continue }
            out.append((TensorSpec(name: t.name, dtype: dt(t.name), shape: t.shape), t.offset))
        }
        if format.fusedExperts {
            for (l, o) in layout.layers.enumerated() {
                let gu = "model.layers.\(l).mlp.experts.gate_up_proj", dn = "model.layers.\(l).mlp.experts.down_proj"
                out.append((TensorSpec(name: gu, dtype: dt(gu), shape: [n, 2 * D, d]), o.gateUp))
                out.append((TensorSpec(name: dn, dtype: dt(dn), shape: [n, d, D]), o.down))
            }
        }
        return out
    }

    /// Writes `model` as a Hugging Face folder into the existing folder `folder`:
    /// `model.safetensors` (or shards and an index when `format.shardBytes` is set) and
    /// `config.json`, each file atomically.
    public static func save(_ model: OlmoeNetwork, format: StoredFormat, dtype: DType?, to folder: String) throws(TrainingError) {
        let specs = specs(model, format: format, dtype: dtype)
        let offsets = Dictionary(uniqueKeysWithValues: specs.map { ($0.0.name, $0.1) })
        let base = UnsafeShared(model.parameters.pointer)
        do {
            try SafetensorsWriter.writeFolder(
                specs.map { $0.0 }, metadata: ["format": "pt"], folder: folder,
                maxShardBytes: format.shardBytes ?? Int.max
            ) { spec, out in
                guard let o = offsets[spec.name], let dst = out.baseAddress else { return }
                Conversion.encode(spec.dtype, from: base.value + o, count: spec.shape.reduce(1, *), into: dst)
            }
        } catch let e as CheckpointError {
            throw .files(e)
        } catch {
            throw .io(file: folder, reason: "\(error)")
        }
        let dtypes = Set(specs.map { $0.0.dtype })
        let name = dtypes.count == 1 ? torchName(dtypes.first ?? .f32) : torchName(.f32)
        let json = model.config.jsonForSaving(dtypeName: name).serialized(pretty: true) + "\n"
        do { try AtomicOutput.write(json, to: folder + "/config.json") } catch { throw .files(error) }
    }

    /// PyTorch's spelling of a dtype, as `config.json` records it.
    static func torchName(_ d: DType) -> String {
        switch d {
        case .bf16: return "bfloat16"
        case .f16: return "float16"
        case .f64: return "float64"
        default: return "float32"
        }
    }
}
