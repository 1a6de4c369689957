import Checkpoints
import Foundation
import Testing

@testable import Tokenizers

/// Untrusted tokenizer files: every defect is a `TokenizerError` naming the file and the
/// component, never a trap; unsupported components are refused, never approximated.
@Suite struct MalformedTests {
    /// A minimal valid byte-level tokenizer as a JSON object, to be altered by each test.
    static func base() -> [String: Any] {
        var vocab: [String: Int] = [:]
        for (i, c) in ["a", "b", "ab", "Ġ", "Ġab"].enumerated() { vocab[c] = i }
        return [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": [] as [Any],
            "normalizer": NSNull(), "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "post_processor": NSNull(), "decoder": ["type": "ByteLevel"],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": [["a", "b"], ["Ġ", "ab"]],
            ] as [String: Any],
        ]
    }

    static func load(_ j: [String: Any]) throws(TokenizerError) -> Tokenizer {
        let data = (try? JSONSerialization.data(withJSONObject: j)) ?? Data()
        return try Tokenizer(json: [UInt8](data), source: "test.json")
    }

    /// The error of loading `j`, or nil.
    static func error(_ j: [String: Any]) -> TokenizerError? {
        do { _ = try load(j); return nil } catch { return error }
    }

    /// A JSON value from its text.
    static func json(_ text: String) -> Any {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) ?? NSNull()
    }

    static func with(_ path: [String], _ value: Any) -> [String: Any] {
        func set(_ d: [String: Any], _ p: ArraySlice<String>) -> [String: Any] {
            var d = d
            guard let k = p.first else { return d }
            if p.count == 1 { d[k] = value } else { d[k] = set(d[k] as? [String: Any] ?? [:], p.dropFirst()) }
            return d
        }
        return set(base(), path[...])
    }

    @Test func theBaseLoadsAndEncodes() throws {
        let t = try Self.load(Self.base())
        #expect(t.encode("ab ab") == [2, 4])
        #expect(try t.decode([2, 4]) == "ab ab")
    }

    @Test(
        arguments: [
            (["model", "type"], #""WordPiece""#, "model"),
            (["normalizer"], #"{"type": "BertNormalizer"}"#, "normalizer"),
            (["normalizer"], #"{"type": "Precompiled", "precompiled_charsmap": "AAAA"}"#, "normalizer"),
            (["pre_tokenizer"], #"{"type": "Whitespace"}"#, "pre-tokenizer"),
            (
                ["pre_tokenizer"],
                #"{"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated", "invert": false}]}"#,
                "pre-tokenizer"
            ),
            (["decoder"], "{\"type\": \"WordPiece\", \"prefix\": \"##\", \"cleanup\": true}", "decoder"),
            (["model", "dropout"], #"0.1"#, "BPE option"),
            (["model", "continuing_subword_prefix"], "\"##\"", "BPE option"),
            (["model", "end_of_word_suffix"], #""</w>""#, "BPE option"),
            (["pre_tokenizer"], #"{"type": "Split", "pattern": {"Regex": "\\h+"}, "behavior": "Isolated", "invert": false}"#, "Split pre-tokenizer"),
            (["pre_tokenizer"], #"{"type": "Split", "pattern": {"Regex": "^a"}, "behavior": "Isolated", "invert": false}"#, "Split pre-tokenizer"),
            (["pre_tokenizer"], #"{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}"#, "Split pre-tokenizer"),
            (["pre_tokenizer"], #"{"type": "Split", "pattern": {"String": ""}, "behavior": "Isolated", "invert": false}"#, "Split pre-tokenizer"),
        ] as [([String], String, String)])
    func unsupportedComponentsAreRefusedByName(path: [String], value: String, component: String) throws {
        let e = try #require(Self.error(Self.with(path, Self.json(value))))
        guard case let .unsupported(file, c, _) = e else { Issue.record("\(e)"); return }
        #expect(file == "test.json")
        #expect(c == component, "\(e)")
        #expect(e.description.hasPrefix("test.json: unsupported \(component)"))
    }

    @Test(
        arguments: [
            (["version"], #""2.0""#, "version"),
            (["model"], #"null"#, "model"),
            (["model", "vocab"], #"{"a": -1}"#, "non-negative"),
            (["model", "vocab"], #"{"a": 1.5}"#, "integer"),
            (["model", "vocab"], #"{"a": 0, "b": 0}"#, "two tokens"),
            (["model", "vocab"], #"{"a": 99999999}"#, "not supported"),
            (["model", "merges"], #"[["a", "c"]]"#, "'c'"),
            (["model", "merges"], #"[["a", "b", "c"]]"#, "pair"),
            (["model", "merges"], #"["a b c"]"#, "two tokens"),
            (["model", "merges"], #"["a b", ["Ġ", "ab"]]"#, "mix"),
            (["model", "merges"], #"[["b", "a"]]"#, "'ba'"),
            (["model", "unk_token"], #""<unk>""#, "unk_token"),
            (
                ["added_tokens"],
                #"[{"id": 7, "content": "<x>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}]"#, "declares id 7"
            ),
            (["added_tokens"], #"[{"id": 5, "content": "<x>", "lstrip": "yes"}]"#, "lstrip"),
            (["added_tokens"], #"[{"content": "<x>"}]"#, "\"id\""),
            (["pre_tokenizer"], #"{"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways", "invert": false}"#, "behavior"),
            (["pre_tokenizer"], #"{"type": "Metaspace", "replacement": "ab"}"#, "one character"),
            (["pre_tokenizer"], #"{"type": "Metaspace", "replacement": "▁", "add_prefix_space": false}"#, "prepend_scheme"),
            (["decoder"], #"{"type": "Strip", "content": " ", "start": -1, "stop": 0}"#, "start"),
        ] as [([String], String, String)])
    func malformedFilesAreErrorsNamingTheDefect(path: [String], value: String, words: String) throws {
        let e = try #require(Self.error(Self.with(path, Self.json(value))))
        guard case .malformed = e else { Issue.record("\(e)"); return }
        #expect(e.description.hasPrefix("test.json: "))
        #expect(e.description.contains(words), "\(e)")
    }

    @Test func duplicateVocabularyKeysAndAddedTokenPatternsAreErrors() throws {
        let text = #"{"version":"1.0","model":{"type":"BPE","vocab":{"a":0,"a":1},"merges":[]}}"#
        #expect(throws: TokenizerError.self) { try Tokenizer(json: Array(text.utf8), source: "t.json") }
        // Two added tokens that normalize to the same text cannot both be matched.
        var j = Self.base()
        j["normalizer"] = ["type": "NFC"]
        j["added_tokens"] = [
            ["id": 5, "content": "é", "normalized": true, "special": false],
            ["id": 6, "content": "e\u{301}", "normalized": true, "special": false],
        ]
        let e = try #require(Self.error(j))
        #expect(e.description.contains("match the same text"), "\(e)")
    }

    @Test func notJSONOrNotAnObjectOrTooDeep() {
        for text in ["", "nope", "[1,2]", "{\"model\":", String(repeating: "[", count: 10_000)] {
            #expect(throws: TokenizerError.self) { try Tokenizer(json: Array(text.utf8), source: "t.json") }
        }
    }

    @Test func everyPrefixOfARealFileFailsCleanly() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tokenizerFixtures + "/qwen2.json")))
        var n = 0
        while n < bytes.count - 1 {
            #expect(throws: TokenizerError.self) { try Tokenizer(json: Array(bytes.prefix(n)), source: "cut.json") }
            n += 97
        }
    }

    @Test func randomByteChangesNeverTrap() throws {
        var rng = SystemRandomNumberGenerator()
        var loaded = 0
        for style in ["qwen2", "llama2", "misc"] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tokenizerFixtures + "/\(style).json")))
            for _ in 0..<60 {
                var b = bytes
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                guard let t = try? Tokenizer(json: b, source: "mutated.json") else { continue }
                loaded += 1
                for text in ["Hello, world! 日本 😀 <|endoftext|>", "", "  \n\t x"] {
                    let ids = t.encode(text)
                    _ = try? t.decode(ids)
                }
            }
        }
        #expect(loaded >= 0)
    }

    @Test func invalidUTF8TextIsAnErrorWithItsOffset() throws {
        let t = try Tokenizer(contentsOf: tokenizerFixtures + "/gpt2.json")
        let e = #expect(throws: TokenizerError.self) { try t.encode(utf8: [0x61, 0x62, 0xC3, 0x28], source: "bad.txt") }
        #expect(e?.description == "bad.txt: is not UTF-8 text (invalid byte 0xC3 at offset 2)")
        for bad: [UInt8] in [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            #expect(throws: TokenizerError.self) { try t.encode(utf8: bad, source: "bad.txt") }
        }
        let path = NSTemporaryDirectory() + "moe-tok-\(UUID().uuidString).txt"
        try Data([0x61, 0xFE]).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: TokenizerError.self) { try t.encodeFile(path) }
        #expect(throws: TokenizerError.self) { try t.encodeFile(path + ".missing") }
    }

    @Test func decodingAnIdOutsideTheVocabularyIsAnError() throws {
        let t = try Tokenizer(contentsOf: tokenizerFixtures + "/gpt2.json")
        #expect(throws: TokenizerError.self) { try t.decode([Int32(t.vocabularySize)]) }
        #expect(throws: TokenizerError.self) { try t.decode([-1]) }
    }
}
