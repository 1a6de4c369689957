import Foundation

/// Human-readable byte count (GB with 1000 steps, as disk sizes are quoted).
func formatBytes(_ n: Int) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var v = Double(n), i = 0
    while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.2f %@", v, units[i])
}

/// Human-readable parameter count (K, M, B).
func formatCount(_ n: Int) -> String {
    let v = Double(n)
    if v >= 1e9 { return String(format: "%.2fB", v / 1e9) }
    if v >= 1e6 { return String(format: "%.2fM", v / 1e6) }
    if v >= 1e3 { return String(format: "%.1fK", v / 1e3) }
    return "\(n)"
}

/// Parses a size such as `5GB`, `200KB`, `1e9` into bytes.
func parseSize(_ s: String) -> Int? {
    let t = s.uppercased().trimmingCharacters(in: .whitespaces)
    let units: [(String, Double)] = [("GIB", 1_073_741_824), ("MIB", 1_048_576), ("KIB", 1024), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1)]
    func bytes(_ v: Double?, _ m: Double) -> Int? {
        guard let v, v.isFinite else { return nil }
        let b = v * m
        return b >= 1 && b < 9e18 ? Int(b) : nil
    }
    for (u, m) in units where t.hasSuffix(u) { return bytes(Double(t.dropLast(u.count)), m) }
    return bytes(Double(t), 1)
}
