import Foundation
import Tensors

/// Writing outputs so that nothing the user had is lost: every file goes to a temporary name in
/// the same folder and is renamed into place only when complete.
public enum AtomicOutput {
    /// A temporary sibling path of `path` (same folder, so the rename is atomic).
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    }

    /// Whether `name` (a file name) is one `temporaryPath` makes: `.NAME.tmp-PID-RANDOM`.
    public static func isTemporaryName(_ name: String) -> Bool {
        guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards) else { return false }
        let tail = name[r.upperBound...].split(separator: "-")
        return tail.count == 2 && tail.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }

    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws(CheckpointError) {
        let tmp = temporaryPath(for: path)
        FaultInjection.point()
        do {
            try data.write(to: URL(fileURLWithPath: tmp))
        } catch {
            throw .io(file: path, reason: "cannot write: \(error.localizedDescription)")
        }
        try commit(tmp, to: path)
    }

    /// Writes `text` (UTF-8) to `path` atomically.
    public static func write(_ text: String, to path: String) throws(CheckpointError) {
        try write(Data(text.utf8), to: path)
    }

    /// Renames the finished temporary `tmp` onto `path`, replacing a file of that name.
    public static func commit(_ tmp: String, to path: String) throws(CheckpointError) {
        FaultInjection.point()
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw .io(file: path, reason: "cannot rename into place: \(reason)")
        }
    }

    /// Creates folder `path` (and its parents) or says why not, naming it.
    public static func makeFolder(_ path: String) throws(CheckpointError) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw .io(file: path, reason: "exists and is not a folder") }
            return
        }
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw .io(file: path, reason: "cannot create folder (a parent is missing, not a folder, or not writable)")
        }
    }

    /// Creates a fresh temporary folder beside `path` for building a whole output folder.
    public static func temporaryFolder(for path: String) throws(CheckpointError) -> String {
        let tmp = temporaryPath(for: path)
        FaultInjection.point()
        do {
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        } catch {
            throw .io(file: path, reason: "cannot create folder: \(error.localizedDescription)")
        }
        return tmp
    }

    /// Builds a whole output folder atomically: `fill` writes into a fresh temporary sibling
    /// of `path` (its parent is created if missing), which then takes the place of `path`. On
    /// any error the temporary folder is removed and `path` is left as it was. An existing
    /// `path` is replaced only when `replace` is true, and only once the new folder is complete.
    public static func buildFolder(at path: String, replace: Bool, _ fill: (String) throws -> Void) throws {
        // An absolute, standardized path: Foundation's path functions trap on "." and "./"
        // (`NSString.deletingLastPathComponent`), and a relative name has no parent to build beside.
        let path = absolute(path)
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty { try makeFolder(parent) }
        let tmp = try temporaryFolder(for: path)
        do { try fill(tmp) } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        try commitFolder(tmp, to: path, replace: replace)
    }

    /// `path` made absolute (against the current folder) and standardized: no `.`, `..`, repeated
    /// or trailing `/`.
    public static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// Builds the contents of the existing folder `path` anew without renaming the folder itself
    /// (it is the current folder of this process or of the user's shell, which a rename would
    /// leave pointing at a removed folder): `fill` writes into a temporary folder inside `path`;
    /// then the old entries are moved aside into another, the new ones renamed into `path`, and
    /// the old ones removed. On an error in `fill`, `path` is left as it was.
    public static func buildInPlace(at path: String, _ fill: (String) throws -> Void) throws {
        let path = absolute(path)
        let fm = FileManager.default
        let tmp = path + "/.moe-inspect-new.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let old = path + "/.moe-inspect-old.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do { try fm.createDirectory(atPath: tmp, withIntermediateDirectories: false) } catch {
            throw CheckpointError.io(file: path, reason: "cannot create a folder in it: \(error.localizedDescription)")
        }
        do { try fill(tmp) } catch {
            try? fm.removeItem(atPath: tmp)
            throw error
        }
        let tmpName = (tmp as NSString).lastPathComponent, oldName = (old as NSString).lastPathComponent
        do { try fm.createDirectory(atPath: old, withIntermediateDirectories: false) } catch {
            try? fm.removeItem(atPath: tmp)
            throw CheckpointError.io(file: path, reason: "cannot create a folder in it: \(error.localizedDescription)")
        }
        for e in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where e != tmpName && e != oldName {
            FaultInjection.point()
            guard rename(path + "/" + e, old + "/" + e) == 0 else {
                throw CheckpointError.io(file: path + "/" + e, reason: "cannot move the old output aside: \(String(cString: strerror(errno)))")
            }
        }
        for e in (try? fm.contentsOfDirectory(atPath: tmp)) ?? [] {
            FaultInjection.point()
            guard rename(tmp + "/" + e, path + "/" + e) == 0 else {
                throw CheckpointError.io(file: path + "/" + e, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
            }
        }
        try? fm.removeItem(atPath: old)
        try? fm.removeItem(atPath: tmp)
    }

    /// Moves the finished folder `tmp` to `path`. An existing `path` is replaced only when
    /// `replace` is true, and then only after the new folder is complete.
    public static func commitFolder(_ tmp: String, to path: String, replace: Bool) throws(CheckpointError) {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) {
            guard replace else {
                try? fm.removeItem(atPath: tmp)
                throw .io(file: path, reason: "already exists; choose another output or pass \(Setting.overwrite)")
            }
            let old = temporaryPath(for: path)
            FaultInjection.point()
            guard rename(path, old) == 0 else {
                try? fm.removeItem(atPath: tmp)
                throw .io(file: path, reason: "cannot move the old output aside: \(String(cString: strerror(errno)))")
            }
            FaultInjection.point()
            guard rename(tmp, path) == 0 else {
                let reason = String(cString: strerror(errno))
                _ = rename(old, path)  // put the user's output back
                try? fm.removeItem(atPath: tmp)
                throw .io(file: path, reason: "cannot rename into place: \(reason)")
            }
            FaultInjection.point()
            try? fm.removeItem(atPath: old)
        } else {
            do { try commit(tmp, to: path) } catch {
                try? fm.removeItem(atPath: tmp)
                throw error
            }
        }
    }
}

/// A file being written sequentially through a buffered handle.
final class SequentialFile {
    let path: String
    private let handle: UnsafeMutablePointer<FILE>

    /// Opens `path` for writing; errors name `reportAs` (the user's output, not the temporary name).
    init(path: String, reportAs: String? = nil) throws(CheckpointError) {
        FaultInjection.point()
        guard let h = fopen(path, "wb") else { throw .io(file: reportAs ?? path, reason: "cannot create: \(String(cString: strerror(errno)))") }
        self.path = path
        handle = h
        setvbuf(h, nil, _IOFBF, 1 << 22)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(CheckpointError) {
        guard let b = bytes.baseAddress, !bytes.isEmpty else { return }
        if fwrite(b, 1, bytes.count, handle) != bytes.count {
            throw .io(file: path, reason: "write failed: \(String(cString: strerror(errno)))")
        }
    }

    func write(_ bytes: [UInt8]) throws(CheckpointError) {
        let r = bytes.withUnsafeBytes { b -> Result<Void, CheckpointError> in
            do throws(CheckpointError) { try write(b); return .success(()) } catch { return .failure(error) }
        }
        try r.get()
    }

    func close() throws(CheckpointError) {
        FaultInjection.point()
        if fflush(handle) != 0 || fclose(handle) != 0 {
            throw .io(file: path, reason: "cannot finish writing: \(String(cString: strerror(errno)))")
        }
    }
}
