import Foundation

/// Progress lines on stderr, silenced by --quiet.
struct Progress {
    var quiet: Bool
    func say(_ s: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }
}
