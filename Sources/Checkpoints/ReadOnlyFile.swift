#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Tensors

/// A regular file opened read-only and read with `pread`.
///
/// Reading copies into the caller's buffer rather than mapping the file, so that a file cut
/// short by another process while it is read gives an error, never SIGBUS; the copy costs
/// little, since every tensor is decoded (or copied) once anyway.
public final class ReadOnlyFile: @unchecked Sendable {
    /// Path the file was opened from.
    public let path: String
    /// Size of the file in bytes when it was opened.
    public let size: Int
    private let descriptor: Int32

    /// Opens `path`, which must be a regular file. A FIFO, device or socket is refused without
    /// blocking (the open is non-blocking and the type is checked before any read).
    /// - Throws: `CheckpointError.io` naming the file.
    public init(path: String) throws(CheckpointError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .io(file: path, reason: SettingMessage(String(cString: strerror(errno)))) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .io(file: path, reason: SettingMessage(reason))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .io(file: path, reason: "not a regular file (\(ReadOnlyFile.kind(st.st_mode)))")
        }
        // Back to blocking reads for a regular file (O_NONBLOCK has no effect on them anyway).
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        descriptor = fd
        size = Int(st.st_size)
    }

    deinit { close(descriptor) }

    /// What kind of file `mode` describes, in words.
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a folder"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    /// Reads exactly `destination.count` bytes at `offset`.
    /// - Throws: `CheckpointError.io` when the file ends before (it was truncated since it was
    ///   opened) or the read fails.
    public func read(at offset: Int, into destination: UnsafeMutableRawBufferPointer) throws(CheckpointError) {
        guard let base = destination.baseAddress else { return }
        var done = 0
        while done < destination.count {
            let n = pread(descriptor, base + done, destination.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(file: path, reason: "read failed at byte \(offset + done): \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw .io(
                    file: path, reason: "file ends at byte \(offset + done), before the \(destination.count) bytes at \(offset) (truncated while being read?)")
            }
            done += n
        }
    }

    /// Reads `count` bytes at `offset` into a new array.
    public func read(at offset: Int, count: Int) throws(CheckpointError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let r = out.withUnsafeMutableBytes { b -> Result<Void, CheckpointError> in
            do throws(CheckpointError) { try read(at: offset, into: b); return .success(()) } catch { return .failure(error) }
        }
        try r.get()
        return out
    }

    /// The whole content of the regular file `path`, at most `limit` bytes (a config, an index,
    /// a layout file).
    /// - Throws: `CheckpointError.io` when it is not a readable regular file or is larger.
    public static func contents(of path: String, limit: Int) throws(CheckpointError) -> [UInt8] {
        let f = try ReadOnlyFile(path: path)
        guard f.size <= limit else { throw .io(file: path, reason: "is \(f.size) bytes, more than the \(limit) this file may hold") }
        return try f.read(at: 0, count: f.size)
    }

    /// Tells the kernel that bytes `range` will be read soon (read-ahead).
    public func willNeed(_ range: Range<Int>) {
        #if os(Linux)
        _ = posix_fadvise(descriptor, off_t(range.lowerBound), off_t(range.count), POSIX_FADV_WILLNEED)
        #endif
    }
}
