import CHDF5
import Foundation
import Tensors

/// The HDF5 library is not thread-safe in Debian's serial build: every call goes through here.
enum HDF5Lock {
    static let lock = NSLock()
    static func run<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        // HDF5 keeps the automatic error printing per thread when built thread-safe (Debian's
        // is): turn it off on every thread that calls in, or hostile files print error stacks.
        moe_h5_silence_errors()
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

/// An HDF5 checkpoint: every dataset reachable from the root group is a tensor named by its path
/// with `/` turned into `.`; flat dataset names that contain dots are kept as they are.
///
/// The file may be hostile, so it is read as h5py would read it but with limits: hard and soft
/// links inside the file are followed (a dataset reached through a soft link is listed under the
/// link's name, as `f[name]` resolves it; link cycles are refused), while external links,
/// external storage and virtual datasets, which read other files, are refused and never
/// followed. Unwritten data reads as the dataset's fill value, within a bound.
public final class HDF5File: @unchecked Sendable {
    /// Path of the file.
    public let path: String
    /// Tensors in the order of their HDF5 paths.
    public let tensors: [TensorInfo]
    /// The JSON text of the root `config` attribute, when present.
    public let configText: String?
    private let datasetPath: [String: String]
    private let index: [String: Int]
    private let file: hid_t
    /// Dataset access properties on which external links cannot be traversed.
    private let access: hid_t

    /// Limits on what a file may ask of the reader.
    enum Limits {
        /// Most links followed while listing (soft links to groups can multiply names).
        static let links = 1_000_000
        /// Deepest group nesting followed.
        static let depth = 1_000
        /// Unwritten bytes one dataset may claim (they read as its fill value).
        static let unwrittenPerDataset = 1 << 30
        /// Unwritten bytes all datasets together may claim.
        static let unwrittenTotal = 4 << 30
        /// Longest `config` attribute.
        static let configBytes = 64 << 20
        /// Longest wait for the child process that reads a variable-length config attribute.
        static let isolatedReadMilliseconds: Int32 = 10_000
    }

    /// What is wrong with the file, for `CheckpointError.malformed`.
    struct Problem: Error { let text: String; init(_ t: String) { text = t } }

    /// Opens `path` and lists its datasets.
    /// - Throws: `CheckpointError.malformed` for a file that is not HDF5, is corrupt, holds a
    ///   dataset this tool cannot read, or would read outside itself.
    public init(path: String) throws(CheckpointError) {
        self.path = path
        guard FileManager.default.isReadableFile(atPath: path) else { throw .io(file: path, reason: "cannot open: no such readable file") }
        let opened: hid_t = HDF5Lock.run { H5Fopen(path, moe_h5f_acc_rdonly(), moe_h5p_default()) }
        guard opened >= 0 else { throw .malformed(file: path, reason: "not an HDF5 file, or the file is corrupt or truncated") }
        let access: hid_t = HDF5Lock.run { moe_h5_access_without_external_links(moe_h5p_dataset_access()) }
        guard access >= 0 else {
            HDF5Lock.run { _ = H5Fclose(opened) }
            throw .io(file: path, reason: "cannot create an HDF5 property list")
        }
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let scanned: Result<([TensorInfo], [String], String?), Problem> = HDF5Lock.run {
            Result { () throws(Problem) in
                var scan = Scan(file: opened, access: access, fileSize: fileSize)
                try scan.run()
                let config = try HDF5File.readConfig(opened)
                let order = scan.found.indices.sorted { scan.found[$0].path < scan.found[$1].path }
                return (
                    order.map { i in
                        let f = scan.found[i]
                        return TensorInfo(name: f.path.replacingOccurrences(of: "/", with: "."), dtype: f.dtype, shape: f.shape, file: path)
                    }, order.map { scan.found[$0].path }, config
                )
            }
        }
        switch scanned {
        case .failure(let p):
            HDF5Lock.run {
                _ = H5Pclose(access); _ = H5Fclose(opened)
            }
            throw .malformed(file: path, reason: p.text)
        case .success(let (infos, paths, config)):
            var index: [String: Int] = [:]
            var map: [String: String] = [:]
            index.reserveCapacity(infos.count); map.reserveCapacity(infos.count)
            for (i, t) in infos.enumerated() {
                if let other = map[t.name] {
                    HDF5Lock.run {
                        _ = H5Pclose(access); _ = H5Fclose(opened)
                    }
                    throw .malformed(file: path, reason: "datasets \(quoted(other)) and \(quoted(paths[i])) both map to tensor \(quoted(t.name))")
                }
                index[t.name] = i
                map[t.name] = paths[i]
            }
            file = opened
            self.access = access
            tensors = infos
            datasetPath = map
            self.index = index
            configText = config
        }
    }

    deinit {
        HDF5Lock.run {
            _ = H5Pclose(access); _ = H5Fclose(file)
        }
    }

    /// Information on tensor `name`, or nil.
    public func info(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

    /// A dataset found while listing: its HDF5 path (through the links that reach it) and shape.
    struct Found { let path: String; let dtype: DType; let shape: [Int] }

    /// The walk over the group tree; runs inside `HDF5Lock.run`.
    ///
    /// First every group reachable through hard links is listed, each group object once
    /// (`resolve`): this sees every link of the file, so an external link anywhere is refused
    /// before any soft link, whose path might cross it, is followed. Then the soft links are
    /// resolved (`resolveSoftLinks`), and finally the names that reach each dataset are
    /// spelled out (`expand`), refusing cycles; soft links that multiply names cost no more
    /// HDF5 calls. (HDF5's own H5Lvisit recurses without end on a corrupt file whose link
    /// counts lie, so it is not used.)
    struct Scan {
        let file: hid_t
        let access: hid_t
        let fileSize: Int
        /// Every dataset name found, in walk order.
        var found: [Found] = []
        var unwrittenTotal = 0
        var linksResolved = 0
        var namesListed = 0

        /// An object of the file: equal for every link that reaches it.
        struct Identity: Hashable { let fileno: UInt64; let address: UInt64 }
        /// What a link of a group leads to; `soft` until it is resolved, `none` for a named datatype.
        enum Entry { case group(String, Identity), dataset(String, DType, [Int]), soft(String, String), none }
        /// The entries of every group object read so far (empty while it is being read).
        var groups: [Identity: [Entry]] = [:]
        /// Where each group was first reached (through hard links only, but for groups that only a
        /// soft link reaches in a corrupt file).
        var groupPaths: [Identity: String] = [:]
        /// Groups with soft links to resolve, in the order they were read.
        var pendingSoft: [Identity] = []
        /// dtype and shape of every dataset object read so far.
        var datasets: [Identity: (DType, [Int])] = [:]

        /// One link of a group, as `moe_h5_list_links` reports it.
        struct Link { let name: String?; let raw: String; let kind: Int32; let target: String?; let targetFile: String? }

        static func identity(_ o: hid_t, _ path: String) throws(Problem) -> Identity {
            var fileno: UInt64 = 0, address: UInt64 = 0
            guard moe_h5_object_identity(o, &fileno, &address) >= 0 else {
                throw Problem("cannot read the object \(quoted(path.isEmpty ? "/" : path)) (corrupt file)")
            }
            return Identity(fileno: fileno, address: address)
        }

        /// Lists every dataset name below the root group into `found`.
        mutating func run() throws(Problem) {
            let root = try Scan.identity(file, "")
            try resolve(file, root, path: "", depth: 0)
            try resolveSoftLinks()
            try expand(root, path: "", ancestors: [(root, "")])
        }

        /// Reads the links of group `g` (object `id`, reached at `path`) and, once each, the groups
        /// and datasets its hard links lead to; soft links are kept for `resolveSoftLinks`.
        mutating func resolve(_ g: hid_t, _ id: Identity, path: String, depth: Int) throws(Problem) {
            guard groups[id] == nil else { return }
            groups[id] = []
            groupPaths[id] = path
            guard depth <= Limits.depth else { throw Problem("groups nest more than \(Limits.depth) deep at \(quoted(path))") }
            final class Box { var links: [Scan.Link] = [] }
            let box = Box()
            let status = moe_h5_list_links(
                g,
                { name, kind, target, targetFile, ctx in
                    guard let name, let ctx else { return -1 }
                    let b = Unmanaged<Box>.fromOpaque(ctx).takeUnretainedValue()
                    b.links.append(
                        Scan.Link(
                            name: String(validatingCString: name),
                            raw: String(decoding: UnsafeRawBufferPointer(start: name, count: strlen(name)).prefix(200), as: UTF8.self),
                            kind: Int32(kind), target: target.map { String(cString: $0) },
                            targetFile: targetFile.map { String(cString: $0) }))
                    return b.links.count > Limits.links ? 1 : 0
                }, Unmanaged.passUnretained(box).toOpaque())
            guard status >= 0 else { throw Problem("cannot list group \(quoted(path.isEmpty ? "/" : path)) (corrupt file)") }

            var entries: [Entry] = []
            entries.reserveCapacity(box.links.count)
            for link in box.links {
                guard let name = link.name else {
                    throw Problem("a link in \(quoted(path.isEmpty ? "/" : path)) has a name that is not UTF-8 (\(quoted(link.raw)))")
                }
                let full = path.isEmpty ? name : path + "/" + name
                linksResolved += 1
                guard linksResolved <= Limits.links else { throw Problem("more than \(Limits.links) links in the file") }
                switch link.kind {
                case Int32(MOE_LINK_HARD):
                    break
                case Int32(MOE_LINK_SOFT):
                    entries.append(.soft(name, link.target ?? "?"))
                    continue
                case Int32(MOE_LINK_EXTERNAL):
                    let file = link.targetFile.map(quoted) ?? "another file"
                    throw Problem(
                        "\(quoted(full)) is an external link to \(file)\(link.target.map { ":" + $0 } ?? ""): a checkpoint must not read files outside itself")
                case Int32(MOE_LINK_USER):
                    throw Problem("\(quoted(full)) is a user-defined link, which this tool does not follow")
                default:
                    throw Problem("cannot read the link \(quoted(full)) (corrupt file)")
                }
                let o = H5Oopen(g, name, access)
                guard o >= 0 else { throw Problem("cannot open \(quoted(full)) (corrupt file)") }
                defer { H5Oclose(o) }
                entries.append(try entry(o, name: name, path: full, depth: depth))
            }
            if entries.contains(where: { if case .soft = $0 { return true } else { return false } }) { pendingSoft.append(id) }
            groups[id] = entries
        }

        /// The entry for open object `o`, linked as `name` at `path`; reads a group not read yet.
        mutating func entry(_ o: hid_t, name: String, path: String, depth: Int) throws(Problem) -> Entry {
            switch H5Iget_type(o) {
            case H5I_GROUP:
                let child = try Scan.identity(o, path)
                try resolve(o, child, path: path, depth: depth + 1)
                return .group(name, child)
            case H5I_DATASET:
                let object = try Scan.identity(o, path)
                if let (dtype, shape) = datasets[object] { return .dataset(name, dtype, shape) }
                let (dtype, shape) = try dataset(o, path: path)
                datasets[object] = (dtype, shape)
                return .dataset(name, dtype, shape)
            default:
                return .none  // a named datatype is no tensor
            }
        }

        /// Resolves every soft link of the groups read, as HDF5 resolves them (absolute, or
        /// relative to the link's group; at most 16 in a row).
        mutating func resolveSoftLinks() throws(Problem) {
            var next = 0
            while next < pendingSoft.count {
                let id = pendingSoft[next]
                next += 1
                guard var entries = groups[id], let path = groupPaths[id] else { continue }
                let g = path.isEmpty ? file : H5Oopen(file, path, access)
                guard g >= 0 else { throw Problem("cannot open \(quoted(path)) (corrupt file)") }
                defer { if !path.isEmpty { H5Oclose(g) } }
                for i in entries.indices {
                    guard case let .soft(name, target) = entries[i] else { continue }
                    let full = path.isEmpty ? name : path + "/" + name
                    let o = H5Oopen(g, name, access)
                    guard o >= 0 else {
                        throw Problem(
                            "soft link \(quoted(full)) points to \(quoted(target)), which does not resolve to an object in the file (missing, a cycle, or more than 16 links in a row)"
                        )
                    }
                    defer { H5Oclose(o) }
                    entries[i] = try entry(o, name: name, path: full, depth: full.split(separator: "/").count)
                }
                groups[id] = entries
            }
        }

        /// Lists every dataset name below group `id`, reached at `path`; `ancestors` are the
        /// groups on the way there, itself included.
        mutating func expand(_ id: Identity, path: String, ancestors: [(Identity, String)]) throws(Problem) {
            guard ancestors.count <= Limits.depth else { throw Problem("links nest more than \(Limits.depth) groups deep at \(quoted(path))") }
            for entry in groups[id] ?? [] {
                namesListed += 1
                guard namesListed <= Limits.links else {
                    throw Problem("more than \(Limits.links) names through the file's links (soft links that multiply names?); refused")
                }
                switch entry {
                case let .group(name, child):
                    let full = path.isEmpty ? name : path + "/" + name
                    if let loop = ancestors.first(where: { $0.0 == child }) {
                        throw Problem("\(quoted(full)) leads back to the group \(quoted(loop.1.isEmpty ? "/" : loop.1)) that contains it: a link cycle")
                    }
                    try expand(child, path: full, ancestors: ancestors + [(child, full)])
                case let .dataset(name, dtype, shape):
                    found.append(Found(path: path.isEmpty ? name : path + "/" + name, dtype: dtype, shape: shape))
                case .soft, .none:
                    break
                }
            }
        }

        /// dtype and shape of the open dataset `d` at `path`, after checking that reading it
        /// touches only this file and allocates no more than the file can justify.
        mutating func dataset(_ d: hid_t, path: String) throws(Problem) -> (DType, [Int]) {
            let q = quoted(path)
            let dcpl = H5Dget_create_plist(d)
            guard dcpl >= 0 else { throw Problem("cannot read the creation properties of dataset \(q) (corrupt file)") }
            defer { H5Pclose(dcpl) }
            if H5Pget_layout(dcpl) == H5D_VIRTUAL {
                throw Problem("dataset \(q) is a virtual dataset, which reads other files: a checkpoint must not read files outside itself")
            }
            let externals = H5Pget_external_count(dcpl)
            guard externals >= 0 else { throw Problem("cannot read the storage of dataset \(q) (corrupt file)") }
            if externals > 0 {
                var name = [CChar](repeating: 0, count: 1025)
                var offset = off_t(0)
                var size = hsize_t(0)
                let known = H5Pget_external(dcpl, 0, 1024, &name, &offset, &size) >= 0
                let target = known ? quoted(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) : "another file"
                throw Problem("dataset \(q) keeps its data in the external file \(target): a checkpoint must not read files outside itself")
            }
            let filters = H5Pget_nfilters(dcpl)
            guard filters >= 0 else { throw Problem("cannot read the filters of dataset \(q) (corrupt file)") }
            for i in 0..<UInt32(filters) {
                var flags: UInt32 = 0, nValues = 0, config: UInt32 = 0
                var name = [CChar](repeating: 0, count: 257)
                let id = H5Pget_filter2(dcpl, i, &flags, &nValues, nil, 256, &name, &config)
                guard id >= 0 else { throw Problem("cannot read the filters of dataset \(q) (corrupt file)") }
                if H5Zfilter_avail(id) <= 0 {
                    let filterName = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    throw Problem(
                        "dataset \(q) is compressed with filter \(id)\(filterName.isEmpty ? "" : " (\(quoted(filterName)))"), which this HDF5 library cannot decode"
                    )
                }
            }

            let t = H5Dget_type(d)
            guard t >= 0 else { throw Problem("cannot read the type of dataset \(q) (corrupt file)") }
            defer { H5Tclose(t) }
            guard let dtype = HDF5File.tensorType(t) else {
                throw Problem("dataset \(q) is of type \(HDF5File.typeDescription(t)): only integer, float and bool tensors are read")
            }
            let s = H5Dget_space(d)
            guard s >= 0 else { throw Problem("cannot read the shape of dataset \(q) (corrupt file)") }
            defer { H5Sclose(s) }
            let shape: [Int]
            switch H5Sget_simple_extent_type(s) {
            case H5S_SCALAR:
                shape = []
            case H5S_SIMPLE:
                let rank = Int(H5Sget_simple_extent_ndims(s))
                guard rank >= 0, rank <= 32 else { throw Problem("dataset \(q) has rank \(rank)") }
                var dims = [hsize_t](repeating: 0, count: max(rank, 1))
                guard H5Sget_simple_extent_dims(s, &dims, nil) >= 0 else { throw Problem("cannot read the shape of dataset \(q) (corrupt file)") }
                guard dims.allSatisfy({ $0 <= hsize_t(Int.max) }) else { throw Problem("dataset \(q) has an extent beyond 2^63") }
                shape = dims.prefix(rank).map { Int($0) }
            case H5S_NULL:
                throw Problem("dataset \(q) has no shape and no data (an empty, null dataspace)")
            default:
                throw Problem("cannot read the shape of dataset \(q) (corrupt file)")
            }
            var count = 1
            for n in shape {
                let (c, o) = count.multipliedReportingOverflow(by: n)
                guard !o else { throw Problem("dataset \(q) has shape \(shape), whose element count overflows") }
                count = c
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !o else { throw Problem("dataset \(q) has shape \(shape) of \(dtype.rawValue), whose byte count overflows") }
            // What is stored justifies up to 1100 times as much (gzip shrinks by about 1000:1 at
            // most); data never written reads as the fill value, allowed up to a bound.
            let stored = Int(clamping: H5Dget_storage_size(d))
            let justified = 1100 * min(max(stored, 1), max(fileSize, 1))
            if bytes > justified {
                guard bytes <= Limits.unwrittenPerDataset else {
                    throw Problem(
                        "dataset \(q) claims \(shape) of \(dtype.rawValue) (\(bytes) bytes) but the file stores \(stored) bytes of it: "
                            + "refused as corrupt or hostile (unwritten data, read as the fill value, is accepted up to \(Limits.unwrittenPerDataset >> 30) GiB per dataset)"
                    )
                }
                unwrittenTotal += bytes
                guard unwrittenTotal <= Limits.unwrittenTotal else {
                    throw Problem(
                        "datasets claim more than \(Limits.unwrittenTotal >> 30) GiB that the file does not store (at \(q)): refused as corrupt or hostile")
                }
            }
            return (dtype, shape)
        }
    }

    /// The tensor dtype of HDF5 type `t`, or nil for types that are not numbers.
    static func tensorType(_ t: hid_t) -> DType? {
        let size = H5Tget_size(t)
        switch H5Tget_class(t) {
        case H5T_FLOAT:
            switch size {
            case 2: return .f16;
            case 4: return .f32;
            case 8: return .f64;
            default: return nil
            }
        case H5T_INTEGER:
            let signed = H5Tget_sign(t) == H5T_SGN_2
            switch size {
            case 1: return signed ? .i8 : .u8
            case 2: return signed ? .i16 : .u16
            case 4: return signed ? .i32 : .u32
            case 8: return signed ? .i64 : .u64
            default: return nil
            }
        case H5T_ENUM where size == 1 && isBoolEnum(t):
            return .bool  // h5py stores numpy bool as an 8-bit enum {FALSE: 0, TRUE: 1}
        default:
            return nil
        }
    }

    /// Whether enum `t` is h5py's bool: exactly the members FALSE = 0 and TRUE = 1.
    static func isBoolEnum(_ t: hid_t) -> Bool {
        guard H5Tget_nmembers(t) == 2 else { return false }
        var seen: [String: Int8] = [:]
        for i: UInt32 in 0..<2 {
            guard let cName = H5Tget_member_name(t, i) else { return false }
            let name = String(cString: cName)
            H5free_memory(cName)
            var v: Int8 = 0
            guard H5Tget_member_value(t, i, &v) >= 0 else { return false }
            seen[name] = v
        }
        return seen == ["FALSE": 0, "TRUE": 1]
    }

    /// What HDF5 type `t` is, in a few words for messages (singular: "64-bit float").
    static func typeDescription(_ t: hid_t) -> String {
        let size = H5Tget_size(t)
        switch H5Tget_class(t) {
        case H5T_INTEGER: return "\(size * 8)-bit integer"
        case H5T_FLOAT: return "\(size * 8)-bit float"
        case H5T_STRING: return H5Tis_variable_str(t) > 0 ? "variable-length string" : "fixed-length string"
        case H5T_COMPOUND: return "compound of \(H5Tget_nmembers(t)) fields (as complex numbers are stored)"
        case H5T_ENUM: return "enum other than h5py's bool"
        case H5T_VLEN: return "variable-length sequence"
        case H5T_ARRAY: return "array type"
        case H5T_OPAQUE: return "opaque bytes"
        case H5T_REFERENCE: return "object reference"
        case H5T_BITFIELD: return "bit field"
        case H5T_TIME: return "time"
        default: return "unknown type"
        }
    }

    /// The root `config` attribute as text, or nil when there is none; runs inside `HDF5Lock.run`.
    /// It must hold exactly one string (variable or fixed length, UTF-8 or ASCII).
    static func readConfig(_ file: hid_t) throws(Problem) -> String? {
        let exists = H5Aexists(file, "config")
        guard exists >= 0 else { throw Problem("cannot read the attributes of the root group (corrupt file)") }
        guard exists > 0 else { return nil }
        let a = H5Aopen(file, "config", moe_h5p_default())
        guard a >= 0 else { throw Problem("cannot open the config attribute (corrupt file)") }
        defer { H5Aclose(a) }
        let t = H5Aget_type(a)
        guard t >= 0 else { throw Problem("cannot read the type of the config attribute (corrupt file)") }
        defer { H5Tclose(t) }
        let s = H5Aget_space(a)
        guard s >= 0 else { throw Problem("cannot read the shape of the config attribute (corrupt file)") }
        defer { H5Sclose(s) }
        let spaceType = H5Sget_simple_extent_type(s)
        let count = H5Sget_simple_extent_npoints(s)
        guard spaceType != H5S_NULL, count > 0 else { throw Problem("config attribute is empty (no value); expected one JSON string") }
        guard H5Tget_class(t) == H5T_STRING else {
            throw Problem(
                "config attribute is \(count == 1 ? "one" : "an array of \(count)") \(typeDescription(t))\(count == 1 ? "" : " values"); expected one JSON string"
            )
        }
        guard count == 1 else { throw Problem("config attribute is an array of \(count) strings; expected one JSON string") }
        let bytes: [UInt8]
        if H5Tis_variable_str(t) > 0 {
            let mt = H5Tcopy(moe_h5t_c_s1())
            guard mt >= 0 else { throw Problem("cannot read the config attribute") }
            defer { H5Tclose(mt) }
            H5Tset_size(mt, moe_h5t_variable())
            H5Tset_cset(mt, H5Tget_cset(t))
            // The string lives in the global heap, whose corruption crashes or hangs libhdf5 1.10:
            // read it in a child process (exactly one element: one pointer).
            var out: UnsafeMutablePointer<CChar>? = nil
            var n = 0
            let r = Int(moe_h5_read_vlen_string_isolated(a, mt, Limits.configBytes, Limits.isolatedReadMilliseconds, &out, &n))
            defer { free(out) }
            switch r {
            case MOE_ISOLATED_OK:
                guard let out else { throw Problem("config attribute holds no string (a null value)") }
                bytes = [UInt8](UnsafeRawBufferPointer(start: out, count: n))
            case MOE_ISOLATED_NO_PROCESS:  // no child process could be started: read here
                var p: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(a, mt, &p) >= 0 else { throw Problem("cannot read the config attribute (corrupt file)") }
                defer { _ = moe_h5_reclaim(mt, s, &p) }
                guard let str = p else { throw Problem("config attribute holds no string (a null value)") }
                let n = strnlen(str, Limits.configBytes + 1)
                guard n <= Limits.configBytes else { throw Problem("config attribute is longer than \(Limits.configBytes >> 20) MiB") }
                bytes = [UInt8](UnsafeRawBufferPointer(start: str, count: n))
            case MOE_ISOLATED_CRASHED:
                throw Problem("the config attribute's string data is corrupt (the HDF5 library crashed reading it, in a separate process)")
            case MOE_ISOLATED_TIMED_OUT:
                throw Problem(
                    "reading the config attribute did not end within \(Limits.isolatedReadMilliseconds / 1000) s (the HDF5 library loops on corrupt string data)"
                )
            case MOE_ISOLATED_TOO_LONG:
                throw Problem("config attribute is longer than \(Limits.configBytes >> 20) MiB")
            default:
                throw Problem("cannot read the config attribute (corrupt file)")
            }
        } else {
            let size = H5Tget_size(t)
            guard size > 0 else { throw Problem("cannot read the config attribute (corrupt file)") }
            guard size <= Limits.configBytes else {
                throw Problem("config attribute is a string of \(size) bytes, longer than \(Limits.configBytes >> 20) MiB")
            }
            var buf = [UInt8](repeating: 0, count: size + 1)  // one element of `size` bytes
            guard H5Aread(a, t, &buf) >= 0 else { throw Problem("cannot read the config attribute (corrupt file)") }
            bytes = Array(buf.prefix { $0 != 0 })
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw Problem("config attribute is not valid UTF-8") }
        return text
    }

    /// The stored bytes of tensor `name` as little-endian elements of its dtype.
    public func rawBytes(_ name: String) throws(CheckpointError) -> [UInt8] {
        guard let info = info(name), let p = datasetPath[name] else { throw .missingTensor(file: path, name: name) }
        guard hdf5Stores(info.dtype) else { throw .unsupported(file: path, reason: "dtype \(info.dtype.rawValue)") }
        var out = [UInt8](repeating: 0, count: info.byteCount)
        let ok: Bool = HDF5Lock.run {
            let d = H5Dopen2(file, p, access)
            guard d >= 0 else { return false }
            defer { H5Dclose(d) }
            if out.isEmpty { return true }
            guard let mt = hdf5FileType(info.dtype) else { return false }
            defer { if info.dtype == .f16 { H5Tclose(mt) } }
            return out.withUnsafeMutableBytes { H5Dread(d, mt, moe_h5s_all(), moe_h5s_all(), moe_h5p_default(), $0.baseAddress) >= 0 }
        }
        guard ok else { throw .malformed(file: path, reason: "cannot read dataset \(quoted(p)) (corrupt or truncated file, or a failed checksum)") }
        return out
    }

    /// Decodes tensor `name` to Float32 into `destination`.
    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws(CheckpointError) {
        guard let info = info(name), let p = datasetPath[name] else { throw .missingTensor(file: path, name: name) }
        guard destination.count == info.elementCount else {
            throw .malformed(file: path, reason: "tensor \(quoted(name)): \(info.elementCount) elements, buffer of \(destination.count)")
        }
        if info.elementCount == 0 { return }
        let ok: Bool = HDF5Lock.run {
            let d = H5Dopen2(file, p, access)
            guard d >= 0 else { return false }
            defer { H5Dclose(d) }
            return H5Dread(d, moe_h5t_native_float(), moe_h5s_all(), moe_h5s_all(), moe_h5p_default(), destination.baseAddress) >= 0
        }
        guard ok else { throw .malformed(file: path, reason: "cannot read dataset \(quoted(p)) (corrupt or truncated file, or a failed checksum)") }
    }
}

/// `s` in single quotes for a one-line message: control characters escaped, at most 200 characters.
public func quoted(_ s: String) -> String {
    var out = ""
    for ch in s.unicodeScalars.prefix(200) {
        switch ch {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "'": out += "\\'"
        default:
            if ch.value < 0x20 || ch.value == 0x7F || (0x80..<0xA0).contains(ch.value) || ch.value == 0x2028 || ch.value == 0x2029 {
                out += "\\u{\(String(ch.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(ch)
            }
        }
    }
    return "'" + out + (s.unicodeScalars.count > 200 ? "...'" : "'")
}

/// Writes HDF5 checkpoints that `h5py` reads back bit-exactly.
public enum HDF5Writer {
    /// Writes `specs` into a new HDF5 file at `path` (atomically). Dotted names become group
    /// paths (`model.layers.0.mlp.gate.weight` -> `model/layers/0/mlp/gate/weight`); `config`
    /// is stored as a UTF-8 string attribute on the root, as `f.attrs["config"] = text` does.
    /// - Parameters:
    ///   - compress: gzip level 4 on chunks of about 1 MB (h5py `compression="gzip"`).
    ///   - produce: fills a tensor's little-endian bytes in its spec's dtype.
    public static func write(
        _ specs: [TensorSpec], config: String?, to path: String, compress: Bool = false,
        produce: TensorBytesProducer
    ) throws {
        for s in specs where !hdf5Stores(s.dtype) {
            throw CheckpointError.unsupported(file: path, reason: "HDF5 has no \(s.dtype.rawValue) type that h5py reads; choose \(Setting.dtype) f16 or f32")
        }
        let names = specs.map { $0.name }
        if Set(names).count != names.count { throw CheckpointError.malformed(file: path, reason: "duplicate tensor names") }
        // A name that is a prefix group of another cannot also be a dataset.
        let groupPaths = Set(
            names.flatMap { n -> [String] in
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
