import CHDF5
import Foundation
import Tensors

/// The HDF5 library is not thread-safe in Debian's serial build: every call goes through here.
enum HDF5Lock {
    static let lock = NSLock()
    nonisolated(unsafe) static var silenced = false
    static func run<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        if !silenced { moe_h5_silence_errors(); silenced = true }
        return try body()
    }
}

/// Whether HDF5 can store `d` in a type h5py reads (BF16 and FP8 have no counterpart).
func hdf5Stores(_ d: DType) -> Bool { d != .bf16 && d != .f8e4m3 && d != .f8e5m2 }

/// HDF5 file type identifiers for each `DType` that HDF5 can store (little-endian).
/// Touches the library: call it only inside `HDF5Lock.run`; close the F16 type after use.
func hdf5FileType(_ d: DType) -> hid_t? {
    switch d {
    case .f32: return moe_h5t_ieee_f32le()
    case .f64: return moe_h5t_ieee_f64le()
    case .f16: return moe_h5t_ieee_f16le()
    case .i8: return moe_h5t_std_i8le()
    case .u8, .bool: return moe_h5t_std_u8le()
    case .i16: return moe_h5t_std_i16le()
    case .u16: return moe_h5t_std_u16le()
    case .i32: return moe_h5t_std_i32le()
    case .u32: return moe_h5t_std_u32le()
    case .i64: return moe_h5t_std_i64le()
    case .u64: return moe_h5t_std_u64le()
    case .bf16, .f8e4m3, .f8e5m2: return nil
    }
}

/// An HDF5 checkpoint: every dataset in the group tree is a tensor named by its path with `/`
/// turned into `.`; flat dataset names that contain dots are kept as they are.
public final class HDF5File: @unchecked Sendable {
    /// Path of the file.
    public let path: String
    /// Tensors in name order.
    public let tensors: [TensorInfo]
    /// The JSON text of the root `config` attribute, when present.
    public let configText: String?
    private let datasetPath: [String: String]
    private let file: hid_t

    /// Opens `path` and lists its datasets.
    /// - Throws: `CheckpointError.malformed` for a file that is not HDF5 or is corrupt.
    public init(path: String) throws(CheckpointError) {
        self.path = path
        guard FileManager.default.isReadableFile(atPath: path) else { throw .io(file: path, reason: "cannot open: no such readable file") }
        let opened: hid_t = HDF5Lock.run { H5Fopen(path, moe_h5f_acc_rdonly(), moe_h5p_default()) }
        guard opened >= 0 else { throw .malformed(file: path, reason: "not an HDF5 file, or the file is corrupt or truncated") }
        file = opened
        final class Box { var paths: [String] = [] }
        let box = Box()
        let status: herr_t = HDF5Lock.run {
            moe_h5_visit_datasets(opened, { name, ctx in
                guard let name, let ctx else { return 0 }
                Unmanaged<Box>.fromOpaque(ctx).takeUnretainedValue().paths.append(String(cString: name))
                return 0
            }, Unmanaged.passUnretained(box).toOpaque())
        }
        guard status >= 0 else {
            HDF5Lock.run { _ = H5Fclose(opened) }
            throw .malformed(file: path, reason: "corrupt HDF5 group tree")
        }
        var infos: [TensorInfo] = []
        var map: [String: String] = [:]
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        for p in box.paths.sorted() {
            let name = p.replacingOccurrences(of: "/", with: ".")
            func fail(_ reason: String) -> CheckpointError {
                HDF5Lock.run { _ = H5Fclose(opened) }
                return .malformed(file: path, reason: reason)
            }
            guard let (dtype, shape, stored) = HDF5File.describe(opened, p) else {
                throw fail("dataset '\(p)' has a type or shape this tool cannot read")
            }
            var count = 1
            for d in shape {
                let (c, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw fail("dataset '\(p)' has shape \(shape), whose element count overflows") }
                count = c
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            // gzip cannot shrink data more than about 1000:1, so a dataset claiming far more
            // bytes than it stores (or than the file holds) was never written or is corrupt.
            guard !o, bytes <= 1100 * max(stored, 1), bytes <= 1100 * max(fileSize, 1) else {
                throw fail("dataset '\(p)' claims \(shape) (\(o ? "overflowing" : String(bytes)) bytes) but stores \(stored) bytes: never written or corrupt")
            }
            if let other = map[name] { throw fail("datasets '\(other)' and '\(p)' both map to tensor '\(name)'") }
            infos.append(TensorInfo(name: name, dtype: dtype, shape: shape, file: path))
            map[name] = p
        }
        tensors = infos
        datasetPath = map
        configText = HDF5File.readStringAttribute(opened, "config")
    }

    deinit { HDF5Lock.run { _ = H5Fclose(file) } }

    /// Information on tensor `name`, or nil.
    public func info(_ name: String) -> TensorInfo? { tensors.first { $0.name == name } }

    /// dtype, shape and stored bytes of dataset `p`.
    private static func describe(_ file: hid_t, _ p: String) -> (DType, [Int], Int)? {
        HDF5Lock.run {
            let d = H5Dopen2(file, p, moe_h5p_default())
            guard d >= 0 else { return nil }
            defer { H5Dclose(d) }
            let t = H5Dget_type(d)
            guard t >= 0 else { return nil }
            defer { H5Tclose(t) }
            let size = H5Tget_size(t)
            let dtype: DType
            switch H5Tget_class(t) {
            case H5T_FLOAT:
                switch size { case 2: dtype = .f16; case 4: dtype = .f32; case 8: dtype = .f64; default: return nil }
            case H5T_INTEGER:
                let signed = H5Tget_sign(t) == H5T_SGN_2
                switch size {
                case 1: dtype = signed ? .i8 : .u8
                case 2: dtype = signed ? .i16 : .u16
                case 4: dtype = signed ? .i32 : .u32
                case 8: dtype = signed ? .i64 : .u64
                default: return nil
                }
            case H5T_ENUM where size == 1:
                dtype = .bool  // h5py stores numpy bool as an 8-bit enum
            default:
                return nil
            }
            let s = H5Dget_space(d)
            guard s >= 0 else { return nil }
            defer { H5Sclose(s) }
            let rank = Int(H5Sget_simple_extent_ndims(s))
            guard rank >= 0, rank <= 32 else { return nil }
            var dims = [hsize_t](repeating: 0, count: max(rank, 1))
            if rank > 0 { guard H5Sget_simple_extent_dims(s, &dims, nil) >= 0 else { return nil } }
            guard dims.allSatisfy({ $0 <= hsize_t(Int.max) }) else { return nil }
            return (dtype, rank == 0 ? [] : dims.map { Int($0) }, Int(clamping: H5Dget_storage_size(d)))
        }
    }

    private static func readStringAttribute(_ file: hid_t, _ name: String) -> String? {
        HDF5Lock.run {
            guard H5Aexists(file, name) > 0 else { return nil }
            let a = H5Aopen(file, name, moe_h5p_default())
            guard a >= 0 else { return nil }
            defer { H5Aclose(a) }
            let t = H5Aget_type(a)
            defer { H5Tclose(t) }
            guard H5Tget_class(t) == H5T_STRING else { return nil }
            if H5Tis_variable_str(t) > 0 {
                let mt = H5Tcopy(moe_h5t_c_s1())
                defer { H5Tclose(mt) }
                H5Tset_size(mt, moe_h5t_variable())
                H5Tset_cset(mt, H5T_CSET_UTF8)
                var p: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(a, mt, &p) >= 0, let s = p else { return nil }
                defer { H5free_memory(s) }
                return String(validatingCString: s) ?? ""
            }
            let size = H5Tget_size(t)
            guard size > 0, size < 100_000_000 else { return nil }
            var buf = [CChar](repeating: 0, count: size + 1)
            guard H5Aread(a, t, &buf) >= 0 else { return nil }
            return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// The stored bytes of tensor `name` as little-endian elements of its dtype.
    public func rawBytes(_ name: String) throws(CheckpointError) -> [UInt8] {
        guard let info = info(name), let p = datasetPath[name] else { throw .missingTensor(file: path, name: name) }
        guard hdf5Stores(info.dtype) else { throw .unsupported(file: path, reason: "dtype \(info.dtype.rawValue)") }
        var out = [UInt8](repeating: 0, count: info.byteCount)
        let ok: Bool = HDF5Lock.run {
            guard let mt = hdf5FileType(info.dtype) else { return false }
            defer { if info.dtype == .f16 { H5Tclose(mt) } }
            let d = H5Dopen2(file, p, moe_h5p_default())
            guard d >= 0 else { return false }
            defer { H5Dclose(d) }
            if out.isEmpty { return true }
            return out.withUnsafeMutableBytes { H5Dread(d, mt, moe_h5s_all(), moe_h5s_all(), moe_h5p_default(), $0.baseAddress) >= 0 }
        }
        guard ok else { throw .malformed(file: path, reason: "cannot read dataset '\(p)' (corrupt or truncated file)") }
        return out
    }

    /// Decodes tensor `name` to Float32 into `destination`.
    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws(CheckpointError) {
        guard let info = info(name), let p = datasetPath[name] else { throw .missingTensor(file: path, name: name) }
        guard destination.count == info.elementCount else {
            throw .malformed(file: path, reason: "tensor '\(name)': \(info.elementCount) elements, buffer of \(destination.count)")
        }
        if info.elementCount == 0 { return }
        let ok: Bool = HDF5Lock.run {
            let d = H5Dopen2(file, p, moe_h5p_default())
            guard d >= 0 else { return false }
            defer { H5Dclose(d) }
            return H5Dread(d, moe_h5t_native_float(), moe_h5s_all(), moe_h5s_all(), moe_h5p_default(), destination.baseAddress) >= 0
        }
        guard ok else { throw .malformed(file: path, reason: "cannot read dataset '\(p)' (corrupt or truncated file)") }
    }
}

/// Writes HDF5 checkpoints that `h5py` reads back bit-exactly.
public enum HDF5Writer {
    /// Writes `specs` into a new HDF5 file at `path` (atomically). Dotted names become group
    /// paths (`model.layers.0.mlp.gate.weight` -> `model/layers/0/mlp/gate/weight`); `config`
    /// is stored as a UTF-8 string attribute on the root, as `f.attrs["config"] = text` does.
    /// - Parameters:
    ///   - compress: gzip level 4 on chunks of about 1 MB (h5py `compression="gzip"`).
    ///   - produce: fills a tensor's little-endian bytes in its spec's dtype.
    public static func write(_ specs: [TensorSpec], config: String?, to path: String, compress: Bool = false,
                             produce: TensorBytesProducer) throws {
        for s in specs where !hdf5Stores(s.dtype) {
            throw CheckpointError.unsupported(file: path, reason: "HDF5 has no \(s.dtype.rawValue) type that h5py reads; choose --dtype f16 or f32")
        }
        let names = specs.map { $0.name }
        if Set(names).count != names.count { throw CheckpointError.malformed(file: path, reason: "duplicate tensor names") }
        // A name that is a prefix group of another cannot also be a dataset.
        let groupPaths = Set(names.flatMap { n -> [String] in
            let parts = n.split(separator: ".")
            return (1..<max(parts.count, 1)).map { parts[0..<$0].joined(separator: ".") }
        })
        let tmp = AtomicOutput.temporaryPath(for: path)
        let file: hid_t = HDF5Lock.run { H5Fcreate(tmp, moe_h5f_acc_trunc(), moe_h5p_default(), moe_h5p_default()) }
        guard file >= 0 else { throw CheckpointError.io(file: path, reason: "cannot create HDF5 file") }
        var closed = false
        defer { if !closed { HDF5Lock.run { _ = H5Fclose(file) }; unlink(tmp) } }
        for s in specs {
            let dsPath = groupPaths.contains(s.name) ? s.name : s.name.replacingOccurrences(of: ".", with: "/")
            var bytes = [UInt8](repeating: 0, count: s.byteCount)
            try bytes.withUnsafeMutableBytes { try produce(s, $0) }
            let ok: Bool = HDF5Lock.run {
                guard let ft = hdf5FileType(s.dtype) else { return false }
                defer { if s.dtype == .f16 { H5Tclose(ft) } }
                let space: hid_t
                if s.shape.isEmpty {
                    space = H5Screate(H5S_SCALAR)
                } else {
                    let dims = s.shape.map { hsize_t($0) }
                    space = H5Screate_simple(Int32(dims.count), dims, nil)
                }
                defer { H5Sclose(space) }
                let lcpl = H5Pcreate(moe_h5p_link_create())
                defer { H5Pclose(lcpl) }
                H5Pset_create_intermediate_group(lcpl, 1)
                let dcpl = H5Pcreate(moe_h5p_dataset_create())
                defer { H5Pclose(dcpl) }
                if compress && !s.shape.isEmpty && !s.shape.contains(0) {
                    let rowBytes = max(1, s.shape.dropFirst().reduce(1, *) * s.dtype.byteSize)
                    var chunk = s.shape.map { hsize_t($0) }
                    chunk[0] = hsize_t(max(1, min(s.shape[0], (1 << 20) / rowBytes)))
                    if rowBytes > (1 << 22), chunk.count > 1 { chunk[chunk.count - 1] = hsize_t(max(1, min(s.shape.last ?? 1, 1 << 18))) }
                    H5Pset_chunk(dcpl, Int32(chunk.count), chunk)
                    H5Pset_deflate(dcpl, 4)
                }
                let d = H5Dcreate2(file, dsPath, ft, space, lcpl, dcpl, moe_h5p_default())
                guard d >= 0 else { return false }
                defer { H5Dclose(d) }
                if bytes.isEmpty { return true }
                return bytes.withUnsafeBytes { H5Dwrite(d, ft, moe_h5s_all(), moe_h5s_all(), moe_h5p_default(), $0.baseAddress) >= 0 }
            }
            guard ok else { throw CheckpointError.io(file: path, reason: "cannot write dataset '\(dsPath)'") }
        }
        if let config {
            let ok: Bool = HDF5Lock.run {
                let t = H5Tcopy(moe_h5t_c_s1())
                defer { H5Tclose(t) }
                H5Tset_size(t, moe_h5t_variable())
                H5Tset_cset(t, H5T_CSET_UTF8)
                let space = H5Screate(H5S_SCALAR)
                defer { H5Sclose(space) }
                let a = H5Acreate2(file, "config", t, space, moe_h5p_default(), moe_h5p_default())
                guard a >= 0 else { return false }
                defer { H5Aclose(a) }
                return config.withCString { cs in
                    var p: UnsafePointer<CChar>? = cs
                    return H5Awrite(a, t, &p) >= 0
                }
            }
            guard ok else { throw CheckpointError.io(file: path, reason: "cannot write the config attribute") }
        }
        let status = HDF5Lock.run { H5Fclose(file) }
        closed = true
        guard status >= 0 else { unlink(tmp); throw CheckpointError.io(file: path, reason: "cannot finish the HDF5 file") }
        try AtomicOutput.commit(tmp, to: path)
    }
}
