import Foundation

/// The repository's `fixtures/` folder, found from this file's place in the tree.
public let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("fixtures").path

/// Parses a JSON file of the fixtures folder (`relative` to it) into a dictionary.
public func loadJSON(_ relative: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/" + relative))
    return (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
}

/// Flattens nested arrays of numbers or "nan"/"inf"/"-inf" strings into Doubles.
public func flatten(_ v: Any) -> [Double] {
    if let a = v as? [Any] { return a.flatMap(flatten) }
    if let n = v as? NSNumber { return [n.doubleValue] }
    if let s = v as? String { return [s == "nan" ? .nan : s == "inf" ? .infinity : s == "-inf" ? -.infinity : Double(s) ?? .nan] }
    return []
}

/// Bytes from a hex string.
public func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex, let j = s.index(i, offsetBy: 2, limitedBy: s.endIndex) {
        out.append(UInt8(s[i..<j], radix: 16) ?? 0)
        i = j
    }
    return out
}

/// A fresh temporary folder (the caller removes it).
public func temporaryFolder(_ label: String = "moe-inspect-tests") -> String {
    let p = NSTemporaryDirectory() + label + "-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}
