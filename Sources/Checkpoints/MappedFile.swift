#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A read-only memory map of a whole file. Pages are touched only when read.
public final class MappedFile: @unchecked Sendable {
    /// Path the file was opened from.
    public let path: String
    /// Size of the file in bytes.
    public let size: Int
    /// Start of the mapping (nil for an empty file).
    public let base: UnsafeRawPointer?

    /// Maps `path` read-only.
    /// - Throws: `CheckpointError.io` when the file cannot be opened or mapped.
    public init(path: String) throws(CheckpointError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(file: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .io(file: path, reason: "not a regular file") }
        size = Int(st.st_size)
        if size == 0 { base = nil; return }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .io(file: path, reason: "cannot map file: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let b = base { munmap(UnsafeMutableRawPointer(mutating: b), size) }
    }

    /// Bytes `range` of the file. The caller has checked the range lies within the file.
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        guard let b = base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: b + range.lowerBound, count: range.count)
    }

    /// Maps the pages of bytes `range` in one call (Linux MADV_POPULATE_READ), which is much
    /// cheaper than taking one page fault per 4 KB while decoding; a no-op where unsupported.
    public func populate(_ range: Range<Int>) {
        #if os(Linux)
        advise(range, 22)  // MADV_POPULATE_READ, Linux 5.14+
        #endif
    }

    /// Tells the kernel that bytes `range` will be read soon (read-ahead).
    public func willNeed(_ range: Range<Int>) { advise(range, MADV_WILLNEED) }

    /// Drops bytes `range` from this process's resident set (the page cache keeps them).
    public func release(_ range: Range<Int>) { advise(range, MADV_DONTNEED) }

    private func advise(_ range: Range<Int>, _ advice: Int32) {
        guard let b = base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = min(size, range.upperBound)
        _ = madvise(UnsafeMutableRawPointer(mutating: b + start), end - start, advice)
    }
}
