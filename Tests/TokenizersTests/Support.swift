import Checkpoints
import Foundation

@testable import Tokenizers

/// The repository's fixtures folder.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("fixtures").path

/// The tokenizer fixtures folder.
let tokenizerFixtures = fixtures + "/tokenizers"

/// The folder of expected values: the committed fixtures, or a larger random comparison written
/// by `make_tokenizer_fixtures.py --fuzz N DIR` and named by MOE_TOKENIZER_EXPECTED.
let expectedFolder = ProcessInfo.processInfo.environment["MOE_TOKENIZER_EXPECTED"] ?? tokenizerFixtures + "/expected"

/// Parses a JSON file (strictly, keeping every string's exact scalars).
func loadJSON(_ path: String) throws -> JSONValue {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return try JSONParser.parse([UInt8](data), rejectDuplicateKeys: false)
}

/// The styles the fixture script trains, with whether it recorded pre-tokenizer pieces.
let styles = ["gpt2", "gpt2-prefix-space", "qwen2", "llama3", "deepseek-v3", "llama2", "metaspace", "misc"]

/// Texts shared by every style.
struct FixtureTexts {
    let texts: [String]
    let pretokenTexts: [String]
    static let shared: FixtureTexts? = {
        guard let j = try? loadJSON(expectedFolder + "/texts.json") else { return nil }
        return FixtureTexts(
            texts: (j["texts"]?.arrayValue ?? []).compactMap { $0.stringValue },
            pretokenTexts: (j["pretoken_texts"]?.arrayValue ?? []).compactMap { $0.stringValue })
    }()
}

/// A style's expected values.
struct Expected {
    let ids: [[Int32]]
    let decoded: [Int: String]
    let decodedSkip: [Int: String]
    let pretokens: [[String]]
    let decodeOnly: [([Int32], String)]
    let vocabSize: Int

    init(style: String) throws {
        let j = try loadJSON(expectedFolder + "/\(style).json")
        func ints(_ v: JSONValue) -> [Int32] { (v.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) } }
        ids = (j["ids"]?.arrayValue ?? []).map(ints)
        var d: [Int: String] = [:]
        for (k, v) in j["decoded_if_not_text"]?.objectPairs ?? [] { d[Int(k) ?? -1] = v.stringValue }
        decoded = d
        var s: [Int: String] = [:]
        for (k, v) in j["decoded_skip_special_if_different"]?.objectPairs ?? [] { s[Int(k) ?? -1] = v.stringValue }
        decodedSkip = s
        pretokens = (j["pretokens"]?.arrayValue ?? []).map { ($0.arrayValue ?? []).compactMap { $0.stringValue } }
        decodeOnly = (j["decode_only"]?.arrayValue ?? []).map { (ints($0["ids"] ?? .null), $0["decoded"]?.stringValue ?? "") }
        vocabSize = j["vocab_size"]?.intValue ?? -1
    }
}

/// Byte-exact string equality (Swift's `==` is canonical equivalence: NFC == NFD).
func same(_ a: String, _ b: String) -> Bool { Array(a.utf8) == Array(b.utf8) }

/// A readable form of a text for failure messages.
func show(_ s: String) -> String { String(s.unicodeScalars.prefix(80).map { $0.escaped(asASCII: true) }.joined()) }
