/// A strict reader for the uncompressed ("stored") zip archives `torch.save` writes, read in place
/// from a byte range of a memory map (an archive may sit at any offset inside a `.distcp` file).
///
/// It reads the central directory (torch's local headers carry zero sizes and a data descriptor),
/// with zip64 records and extra fields, and accepts only stored, unencrypted, single-disk entries
/// whose names are unique and whose data lie inside the archive before the central directory.
/// Hand-written rather than ZIPFoundation: the archive is a slice of a larger mapped file, read
/// without copying, and every defect must be one line naming the file.
public struct StoredZip: Sendable {
    /// One entry: its name and the byte range of its data, relative to the archive start.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var data: Range<Int>
        public var crc32: UInt32
    }

    /// Entries in central-directory order.
    public let entries: [Entry]
    private let index: [String: Int]

    /// The entry named `name`, if any.
    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// Reads the archive in `bytes`; `what` names it in errors (file and offset).
    /// - Throws: `CheckpointError.malformed(file: what, ...)`.
    public init(_ bytes: UnsafeRawBufferPointer, what: String) throws(CheckpointError) {
        func bad(_ r: String) -> CheckpointError { .malformed(file: what, reason: "zip archive: \(r)") }
        let n = bytes.count
        func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24 }
        func u64(_ o: Int) -> UInt64 { UInt64(u32(o)) | UInt64(u32(o + 4)) << 32 }
        func fits(_ o: Int, _ len: Int) -> Bool { o >= 0 && len >= 0 && len <= n && o <= n - len }

        // End of central directory: 22 bytes plus a comment of at most 65535 bytes.
        guard n >= 22 else { throw bad("\(n) bytes, too short for a zip archive (truncated?)") }
        var eocd = -1
        var o = n - 22
        while o >= max(0, n - 22 - 65535) {
            if u32(o) == 0x0605_4B50, o + 22 + u16(o + 20) == n { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record (not a torch.save archive, or truncated)") }
        guard u16(eocd + 4) == 0, u16(eocd + 6) == 0 else { throw bad("spans several disks") }
        var count = UInt64(u16(eocd + 10))
        var cdSize = UInt64(u32(eocd + 12))
        var cdOffset = UInt64(u32(eocd + 16))
        // zip64: a locator just before the EOCD points at the zip64 end-of-central-directory record.
        if eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
            let z = u64(eocd - 20 + 8)
            guard z <= UInt64(n), fits(Int(z), 56), u32(Int(z)) == 0x0606_4B50 else { throw bad("zip64 locator points at no zip64 record") }
            let zo = Int(z)
            guard u32(zo + 16) == 0, u32(zo + 20) == 0 else { throw bad("spans several disks") }
            count = u64(zo + 32)
            cdSize = u64(zo + 40)
            cdOffset = u64(zo + 48)
            guard cdOffset <= z, cdSize <= z - cdOffset else { throw bad("central directory [\(cdOffset), +\(cdSize)) overlaps the zip64 record") }
        } else {
            guard count != 0xFFFF, cdSize != 0xFFFF_FFFF, cdOffset != 0xFFFF_FFFF else { throw bad("zip64 values but no zip64 locator") }
            guard cdOffset <= UInt64(eocd), cdSize <= UInt64(eocd) - cdOffset else {
                throw bad("central directory [\(cdOffset), +\(cdSize)) runs past its end record (truncated?)")
            }
        }
        guard count <= cdSize / 46 else { throw bad("\(count) entries cannot fit a \(cdSize)-byte central directory") }
        let cdEnd = Int(cdOffset) + Int(cdSize)
        var entries: [Entry] = []
        var index: [String: Int] = [:]
        var p = Int(cdOffset)
        for _ in 0..<Int(count) {
            guard fits(p, 46), p + 46 <= cdEnd, u32(p) == 0x0201_4B50 else { throw bad("central directory entry \(entries.count) is damaged") }
            let flags = u16(p + 8), method = u16(p + 10)
            let crc = u32(p + 16)
            var csize = UInt64(u32(p + 20)), usize = UInt64(u32(p + 24))
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            var disk = UInt64(u16(p + 34))
            var local = UInt64(u32(p + 42))
            guard p + 46 + nameLen + extraLen + commentLen <= cdEnd else { throw bad("central directory entry \(entries.count) runs past the directory") }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: bytes[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self) else {
                throw bad("entry \(entries.count) has a name that is not UTF-8")
            }
            // zip64 extra field (id 1): the 0xFFFFFFFF fields, in order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = u16(e), len = u16(e + 2)
                guard e + 4 + len <= extraEnd else { throw bad("entry '\(name)': extra field runs past its end") }
                if id == 1 {
                    var q = e + 4
                    func next() throws(CheckpointError) -> UInt64 {
                        guard q + 8 <= e + 4 + len else { throw bad("entry '\(name)': zip64 extra field is too short") }
                        defer { q += 8 }
                        return u64(q)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                    if disk == 0xFFFF { guard q + 4 <= e + 4 + len else { throw bad("entry '\(name)': zip64 extra field is too short") }; disk = UInt64(u32(q)) }
                }
                e += 4 + len
            }
            guard method == 0 else { throw bad("entry '\(name)' is compressed (method \(method)); torch.save archives are stored uncompressed") }
            guard flags & 0x41 == 0 else { throw bad("entry '\(name)' is encrypted") }
            guard disk == 0 else { throw bad("entry '\(name)' is on another disk") }
            guard csize == usize else { throw bad("entry '\(name)': stored size \(csize) differs from its size \(usize)") }
            guard local < cdOffset, fits(Int(local), 30), u32(Int(local)) == 0x0403_4B50 else {
                throw bad("entry '\(name)': no local header at offset \(local)")
            }
            let l = Int(local)
            let lName = u16(l + 26), lExtra = u16(l + 28)
            guard l + 30 + lName <= n,
                  UnsafeRawBufferPointer(rebasing: bytes[(l + 30)..<(l + 30 + lName)]).elementsEqual(name.utf8) else {
                throw bad("entry '\(name)': local header names another file")
            }
            guard u16(l + 8) == 0 else { throw bad("entry '\(name)' is compressed in its local header") }
            let start = l + 30 + lName + lExtra
            guard start <= Int(cdOffset), csize <= cdOffset - UInt64(start) else {
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
    public static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
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
