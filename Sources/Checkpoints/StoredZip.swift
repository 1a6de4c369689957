/// Random access to the bytes of one archive: a byte range of a file (read with `pread`, never
/// mapped, so a file cut short gives an error rather than SIGBUS) or bytes in memory.
public struct ArchiveBytes: Sendable {
    /// Length of the archive.
    public let count: Int
    private let file: ReadOnlyFile?
    private let offset: Int
    private let memory: [UInt8]

    /// Bytes `offset..<offset+count` of `file`.
    public init(file: ReadOnlyFile, offset: Int, count: Int) {
        self.file = file; self.offset = offset; self.count = count; memory = []
    }

    /// Bytes held in memory.
    public init(memory: [UInt8]) {
        file = nil; offset = 0; count = memory.count; self.memory = memory
    }

    /// Where an archive position is in its file (for reads straight into a destination).
    public func fileOffset(_ position: Int) -> Int { offset + position }

    /// Reads `destination.count` bytes at archive position `position`.
    /// - Throws: `CheckpointError` when the range is outside the archive or the read fails.
    public func read(_ position: Int, into destination: UnsafeMutableRawBufferPointer, what: String) throws(CheckpointError) {
        guard position >= 0, destination.count <= count, position <= count - destination.count else {
            throw .malformed(file: what, reason: "needs bytes [\(position), +\(destination.count)) of a \(count)-byte archive (truncated?)")
        }
        if let file { try file.read(at: offset + position, into: destination); return }
        memory.withUnsafeBytes { m in
            if let d = destination.baseAddress, let s = m.baseAddress { d.copyMemory(from: s + position, byteCount: destination.count) }
        }
    }

    /// `n` bytes at archive position `position`.
    public func bytes(_ position: Int, _ n: Int, what: String) throws(CheckpointError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(0, n))
        let r = out.withUnsafeMutableBytes { b -> Result<Void, CheckpointError> in
            do throws(CheckpointError) { try read(position, into: b, what: what); return .success(()) } catch { return .failure(error) }
        }
        try r.get()
        return out
    }
}

/// A strict reader for the uncompressed ("stored") zip archives `torch.save` writes, read in place
/// from a byte range of a file (an archive may sit at any offset inside a `.distcp` file).
///
/// It reads the central directory (torch's local headers carry zero sizes and a data descriptor),
/// with zip64 records and extra fields, and accepts only stored, unencrypted, single-disk entries
/// whose names are unique and whose data lie inside the archive before the central directory.
/// Hand-written rather than ZIPFoundation: the archive is a slice of a larger file, read with a
/// few small `pread`s (end records, directory, local headers) and never copied whole, and every
/// defect must be one line naming the file.
public struct StoredZip: Sendable {
    /// One entry: its name and the byte range of its data, relative to the archive start.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var data: Range<Int>
        public var crc32: UInt32
    }

    /// The largest central directory read: a one-tensor torch.save archive has about 500 bytes.
    public static let maxDirectoryBytes = 1 << 20

    /// Entries in central-directory order.
    public let entries: [Entry]
    private let index: [String: Int]

    /// The entry named `name`, if any.
    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// Reads the archive in `bytes` (in memory); `what` names it in errors.
    public init(_ bytes: UnsafeRawBufferPointer, what: String) throws(CheckpointError) {
        try self.init(ArchiveBytes(memory: Array(bytes)), what: what)
    }

    /// Reads the archive `source`; `what` names it in errors (file and offset).
    /// - Throws: `CheckpointError.malformed(file: what, ...)`.
    public init(_ source: ArchiveBytes, what: String) throws(CheckpointError) {
        func bad(_ r: String) -> CheckpointError { .malformed(file: what, reason: "zip archive: \(r)") }
        let n = source.count
        func u16(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24 }
        func u64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(u32(b, o)) | UInt64(u32(b, o + 4)) << 32 }

        // End of central directory: 22 bytes plus a comment of at most 65535 bytes. torch writes no
        // comment, so the last 4 KB are read first and the whole possible span only if needed.
        guard n >= 22 else { throw bad("\(n) bytes, too short for a zip archive (truncated?)") }
        var tailStart = 0, tail: [UInt8] = [], eocd = -1
        for span in [min(n, 4096), min(n, 22 + 65535 + 20)] where eocd < 0 && span > tail.count {
            tailStart = n - span
            tail = try source.bytes(tailStart, span, what: what)
            var o = span - 22
            while o >= 0 {
                if u32(tail, o) == 0x0605_4B50, tailStart + o + 22 + u16(tail, o + 20) == n { eocd = o; break }
                o -= 1
            }
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record (not a torch.save archive, or truncated)") }
        guard u16(tail, eocd + 4) == 0, u16(tail, eocd + 6) == 0 else { throw bad("spans several disks") }
        var count = UInt64(u16(tail, eocd + 10))
        var cdSize = UInt64(u32(tail, eocd + 12))
        var cdOffset = UInt64(u32(tail, eocd + 16))
        let eocdPosition = UInt64(tailStart + eocd)
        // zip64: a locator just before the EOCD points at the zip64 end-of-central-directory record.
        if eocd >= 20, u32(tail, eocd - 20) == 0x0706_4B50 {
            let z = u64(tail, eocd - 20 + 8)
            guard z <= UInt64(n), UInt64(n) - z >= 56 else { throw bad("zip64 locator points at no zip64 record") }
            let rec = try source.bytes(Int(z), 56, what: what)
            guard u32(rec, 0) == 0x0606_4B50 else { throw bad("zip64 locator points at no zip64 record") }
            guard u32(rec, 16) == 0, u32(rec, 20) == 0 else { throw bad("spans several disks") }
            count = u64(rec, 32)
            cdSize = u64(rec, 40)
            cdOffset = u64(rec, 48)
            guard cdOffset <= z, cdSize <= z - cdOffset else { throw bad("central directory [\(cdOffset), +\(cdSize)) overlaps the zip64 record") }
        } else {
            guard count != 0xFFFF, cdSize != 0xFFFF_FFFF, cdOffset != 0xFFFF_FFFF else { throw bad("zip64 values but no zip64 locator") }
            guard cdOffset <= eocdPosition, cdSize <= eocdPosition - cdOffset else {
                throw bad("central directory [\(cdOffset), +\(cdSize)) runs past its end record (truncated?)")
            }
        }
        guard cdSize <= UInt64(Self.maxDirectoryBytes) else {
            throw bad("central directory of \(cdSize) bytes, more than a one-tensor torch.save archive holds")
        }
        guard count <= cdSize / 46 else { throw bad("\(count) entries cannot fit a \(cdSize)-byte central directory") }
        let cd = try source.bytes(Int(cdOffset), Int(cdSize), what: what)
        var entries: [Entry] = []
        var index: [String: Int] = [:]
        var p = 0
        for _ in 0..<Int(count) {
            guard p + 46 <= cd.count, u32(cd, p) == 0x0201_4B50 else { throw bad("central directory entry \(entries.count) is damaged") }
            let flags = u16(cd, p + 8), method = u16(cd, p + 10)
            let crc = u32(cd, p + 16)
            var csize = UInt64(u32(cd, p + 20)), usize = UInt64(u32(cd, p + 24))
            let nameLen = u16(cd, p + 28), extraLen = u16(cd, p + 30), commentLen = u16(cd, p + 32)
            var disk = UInt64(u16(cd, p + 34))
            var local = UInt64(u32(cd, p + 42))
            guard p + 46 + nameLen + extraLen + commentLen <= cd.count else { throw bad("central directory entry \(entries.count) runs past the directory") }
            guard let name = String(validating: cd[(p + 46)..<(p + 46 + nameLen)], as: UTF8.self) else {
                throw bad("entry \(entries.count) has a name that is not UTF-8")
            }
            // zip64 extra field (id 1): the 0xFFFFFFFF fields, in order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = u16(cd, e), len = u16(cd, e + 2)
                guard e + 4 + len <= extraEnd else { throw bad("entry '\(name)': extra field runs past its end") }
                if id == 1 {
                    var q = e + 4
                    let end = e + 4 + len
                    func next() throws(CheckpointError) -> UInt64 {
                        guard q + 8 <= end else { throw bad("entry '\(name)': zip64 extra field is too short") }
                        defer { q += 8 }
                        return u64(cd, q)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                    if disk == 0xFFFF {
                        guard q + 4 <= end else { throw bad("entry '\(name)': zip64 extra field is too short") }
                        disk = UInt64(u32(cd, q))
                    }
                }
                e += 4 + len
            }
            guard method == 0 else { throw bad("entry '\(name)' is compressed (method \(method)); torch.save archives are stored uncompressed") }
            guard flags & 0x41 == 0 else { throw bad("entry '\(name)' is encrypted") }
            guard disk == 0 else { throw bad("entry '\(name)' is on another disk") }
            guard csize == usize else { throw bad("entry '\(name)': stored size \(csize) differs from its size \(usize)") }
            guard local < cdOffset, cdOffset - local >= 30 else { throw bad("entry '\(name)': no local header at offset \(local)") }
            let l = Int(local)
            let header = try source.bytes(l, 30, what: what)
            guard u32(header, 0) == 0x0403_4B50 else { throw bad("entry '\(name)': no local header at offset \(local)") }
            let lName = u16(header, 26), lExtra = u16(header, 28)
            guard UInt64(l + 30 + lName) <= cdOffset, try source.bytes(l + 30, lName, what: what).elementsEqual(name.utf8) else {
                throw bad("entry '\(name)': local header names another file")
            }
            guard u16(header, 8) == 0 else { throw bad("entry '\(name)' is compressed in its local header") }
            let start = l + 30 + lName + lExtra
            guard UInt64(start) <= cdOffset, csize <= cdOffset - UInt64(start) else {
                throw bad("entry '\(name)': \(csize) bytes at offset \(start) run into the central directory (truncated?)")
            }
            guard index[name] == nil else { throw bad("entry '\(name)' appears twice") }
            index[name] = entries.count
            entries.append(Entry(name: name, data: start..<(start + Int(csize)), crc32: crc))
            p += 46 + nameLen + extraLen + commentLen
        }
        self.entries = entries
        self.index = index
    }

    /// The CRC-32 (zip polynomial) of `bytes`.
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    private static let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
}
