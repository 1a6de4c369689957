import Foundation

/// The repository's fixtures folder.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("fixtures").path

/// Parses a JSON file of the fixtures folder.
func loadJSON(_ relative: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/" + relative))
    return (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
}
