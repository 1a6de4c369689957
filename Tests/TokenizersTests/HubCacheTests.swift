import Checkpoints
import Foundation
import Testing

@testable import Tokenizers

/// The local Hugging Face cache, on a cache that huggingface_hub's own helpers built and read back
/// (fixtures/tokenizers/hub-cache, made by make_tokenizer_fixtures.py).
@Suite(.serialized) struct HubCacheTests {
    static let cache = tokenizerFixtures + "/hub-cache"
    static let env = ["HF_HUB_CACHE": cache]
    static let expected = try? loadJSON(tokenizerFixtures + "/expected/hub-cache.json")

    @Test func namesAreParsedStrictly() {
        #expect(HubCache.parse("allenai/OLMoE-1B-7B-0924") == .init(organisation: "allenai", name: "OLMoE-1B-7B-0924", revision: nil))
        #expect(HubCache.parse("Qwen/Qwen3-30B-A3B@main")?.revision == "main")
        #expect(HubCache.parse("org/name@refs/pr/1")?.revision == "refs/pr/1")
        for bad in [
            "name", "/abs/path", "../x", "a/b/c", "org/na..me", "org--x/y", "org/-x", "org/x.", "./x", "org/name@../../etc",
            "org/name@/abs", "", "org/", "/name", "org/na me", "org/name.git", "o rg/x", "org/name@", "org/日本",
        ] {
            #expect(HubCache.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func theCacheFolderFollowsHuggingfaceHub() {
        #expect(HubCache.folder(environment: ["HF_HUB_CACHE": "/c", "HF_HOME": "/h"]) == "/c")
        #expect(HubCache.folder(environment: ["HUGGINGFACE_HUB_CACHE": "/old", "HF_HOME": "/h"]) == "/old")
        #expect(HubCache.folder(environment: ["HF_HOME": "/h", "XDG_CACHE_HOME": "/x"]) == "/h/hub")
        #expect(HubCache.folder(environment: ["XDG_CACHE_HOME": "/x"]) == "/x/huggingface/hub")
        #expect(HubCache.folder(environment: [:]).hasSuffix("/.cache/huggingface/hub"))
    }

    @Test func revisionsResolveToTheSnapshot() throws {
        let exp = try #require(Self.expected)
        let commit = try #require(exp["commit"]?.stringValue)
        let snapshot = tokenizerFixtures + "/" + (exp["snapshot"]?.stringValue ?? "")
        for arg in ["moe-inspect/olmoe-tiny", "moe-inspect/olmoe-tiny@main", "moe-inspect/olmoe-tiny@v1.0", "moe-inspect/olmoe-tiny@\(commit)"] {
            #expect(try HubCache.resolve(arg, environment: Self.env) == snapshot, "\(arg)")
        }
        // The snapshot holds symbolic links into blobs/, as huggingface_hub writes them.
        for f in (exp["files"]?.arrayValue ?? []).compactMap({ $0.stringValue }) {
            let dest = try FileManager.default.destinationOfSymbolicLink(atPath: snapshot + "/" + f)
            #expect(dest.hasPrefix("../../blobs/"), "\(f) -> \(dest)")
        }
        #expect(try HubCache.resolve("fixtures/olmoe-tiny-that-is-not-here@x y", environment: Self.env) == nil)
    }

    @Test func aMissSaysWhereItLookedAndHowToDownload() throws {
        let e1 = #expect(throws: CheckpointError.self) { try HubCache.resolve("moe-inspect/absent", environment: Self.env) }
        let m1 = e1?.description ?? ""
        #expect(m1.contains(Self.cache + "/models--moe-inspect--absent"), "\(m1)")
        #expect(m1.contains("huggingface-cli download moe-inspect/absent"), "\(m1)")
        let e2 = #expect(throws: CheckpointError.self) { try HubCache.resolve("moe-inspect/olmoe-tiny@nope", environment: Self.env) }
        let m2 = e2?.description ?? ""
        #expect(m2.contains("not revision 'nope'") && m2.contains("main, v1.0") && m2.contains("--revision nope"), "\(m2)")
        let e3 = #expect(throws: CheckpointError.self) {
            try HubCache.resolve("moe-inspect/olmoe-tiny@0123456789abcdef0123456789abcdef01234567", environment: Self.env)
        }
        #expect(e3?.description.contains("is missing") == true, "\(e3?.description ?? "")")
    }

    @Test func checkpointsAndTokenizersOpenFromTheCache() throws {
        setenv("HF_HUB_CACHE", Self.cache, 1)
        let viaCache = try Checkpoint.open("moe-inspect/olmoe-tiny@v1.0")
        let local = try Checkpoint.open(fixtures + "/olmoe-tiny")
        #expect(viaCache.tensors.map(\.name) == local.tensors.map(\.name))
        #expect(viaCache.config?.modelType == "olmoe")
        let t = try Tokenizer.load("moe-inspect/olmoe-tiny")
        let reference = try Tokenizer(contentsOf: tokenizerFixtures + "/gpt2.json")
        let text = "In the beginning God created the heaven and the earth.<|endoftext|>"
        #expect(t.encode(text) == reference.encode(text))
        #expect(throws: TokenizerError.self) { try Tokenizer.load("moe-inspect/absent") }
        #expect(throws: CheckpointError.self) { try Checkpoint.open("moe-inspect/absent") }
    }
}

/// Finding `tokenizer.json` for a checkpoint argument.
@Suite struct LocateTests {
    @Test func folderFileOrTokenizerItself() throws {
        let dir = NSTemporaryDirectory() + "moe-tok-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: TokenizerError.self) { try Tokenizer.locate(dir) }
        try FileManager.default.copyItem(atPath: tokenizerFixtures + "/qwen2.json", toPath: dir + "/tokenizer.json")
        try Data("{}".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        try Data().write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        #expect(try Tokenizer.locate(dir) == dir + "/tokenizer.json")
        #expect(try Tokenizer.locate(dir + "/model.safetensors") == dir + "/tokenizer.json")
        #expect(try Tokenizer.locate(dir + "/config.json") == dir + "/tokenizer.json")
        #expect(try Tokenizer.locate(tokenizerFixtures + "/llama2.json") == tokenizerFixtures + "/llama2.json")
        let t = try Tokenizer.load(dir)
        #expect(t.encode("Hello") == (try Tokenizer(contentsOf: tokenizerFixtures + "/qwen2.json")).encode("Hello"))
    }

    @Test func encodeFileMatchesEncodeAndNpyIsNumpyV1() throws {
        let t = try Tokenizer(contentsOf: tokenizerFixtures + "/qwen2.json")
        let path = fixtures + "/corpus/kjv-eval.txt"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let ids = try t.encodeFile(path)
        #expect(ids == t.encode(text))
        let npy = [UInt8](TokenArrayFile.npy([1, -2, 300]))
        #expect(Array(npy.prefix(8)) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        let header = String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self)
        #expect(header.hasPrefix("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }") && header.hasSuffix("\n"))
        #expect(Array(npy[(10 + headerLength)...]) == [1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF, 0x2C, 1, 0, 0])
    }
}
