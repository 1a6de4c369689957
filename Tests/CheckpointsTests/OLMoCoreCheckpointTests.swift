import Foundation
import Tensors
import TestSupport
import Testing

@testable import Checkpoints

/// OLMo-core training checkpoints written by ai2-olmo-core 3.0 (fixtures/olmo-core), read
/// without Python and compared with the tensors OLMo-core's own unshard_checkpoint returned.
@Suite struct OLMoCoreCheckpointTests {
    static let root = fixtures + "/olmo-core"
    static let runs = ["dropless/step3", "default/step2", "dropless-2rank/step5", "dropless-optim/step1"]

    func expected(_ run: String) throws -> [String: Any] {
        try #require(try loadJSON("olmo-core/expected.json")[run] as? [String: Any])
    }

    @Test(arguments: runs)
    func routersEqualOLMoCoresOwn(_ run: String) throws {
        let c = try Checkpoint.open(Self.root + "/" + run)
        #expect(c.format == .olmoCore)
        let e = try expected(run)
        let n = try #require(e["experts"] as? Int), d = try #require(e["hidden_size"] as? Int)
        for layer in try #require(e["layers"] as? [[String: Any]]) {
            let l = try #require(layer["layer"] as? Int)
            let name = "blocks.\(l).feed_forward_moe.router.weight"
            #expect(c.info(name)?.shape == [n * d])
            let r = try c.tensor(name)
            let want = flatten(layer["router"] as Any).map(Float.init)
            #expect(r.storage == want, "\(run) layer \(l)")
        }
        // The run's config.json is found in the step folder.
        #expect(c.configSource?.hasSuffix(run + "/config.json") == true)
    }

    @Test func modelPrefixStrippedAndOptimizerSkipped() throws {
        let c = try Checkpoint.open(Self.root + "/dropless-optim/step1")
        let names = c.tensors.map(\.name)
        #expect(names.contains("embeddings.weight"))
        #expect(names.contains("blocks.0.feed_forward_moe.experts.mlp.w1"))
        #expect(!names.contains { $0.hasPrefix("model.") || $0.hasPrefix("optim.") })
        let all = try Checkpoint.open(Self.root + "/dropless-optim/step1", includeOptimizerState: true)
        let optim = all.tensors.filter { $0.name.hasPrefix("optim.") }
        #expect(optim.count == 3 * c.tensors.count)  // step, exp_avg, exp_avg_sq per parameter
        let avg = try all.tensor("optim.state.blocks.0.feed_forward_moe.experts.mlp.w1.exp_avg")
        // One AdamW step on a gradient of 1e-3 everywhere: exp_avg = (1 - 0.9) * 1e-3.
        #expect(avg.storage.allSatisfy { abs($0 - 1e-4) < 1e-9 })
    }

    @Test func openedFromModelAndOptimFolderAndMetadataFile() throws {
        let a = try Checkpoint.open(Self.root + "/default/step2/model_and_optim")
        let b = try Checkpoint.open(Self.root + "/default/step2/model_and_optim/.metadata")
        #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
        #expect(a.configSource?.hasSuffix("default/step2/config.json") == true)
    }

    /// Two ranks each saved half of every tensor (FSDP): the reassembled tensors equal the
    /// unsharded ones, and the raw bytes too.
    @Test func chunksFromTwoRanksReassemble() throws {
        let c = try Checkpoint.open(Self.root + "/dropless-2rank/step5")
        #expect(c.files.map { ($0 as NSString).lastPathComponent } == ["__0_0.distcp", "__1_0.distcp"])
        let e = try expected("dropless-2rank/step5")
        let layer = try #require((e["layers"] as? [[String: Any]])?.first)
        // Expert 7's up projection (w3 rows 7*D..<8*D, dropless) lies in rank 1's half.
        let w3 = try c.tensor("blocks.0.feed_forward_moe.experts.mlp.w3")
        #expect(w3.shape == [128, 32])
        let up7 = try #require((layer["up"] as? [String: Any])?["7"] as? [String: Any])
        let firstRows = flatten(up7["first_rows"] as Any).map(Float.init)
        #expect(Array(w3.storage[(7 * 16 * 32)..<(7 * 16 * 32 + 64)]) == firstRows)
        let raw = try c.rawBytes("blocks.0.feed_forward_moe.experts.mlp.w3")
        let fromRaw = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(fromRaw == w3.storage)
    }

    /// Chunks must tile the tensor: a grid along inner axes is fine, a hole or an overlap is not.
    @Test func tilingIsChecked() throws {
        let shape = [3, 4, 5]
        let chunks = [([0, 0, 0], [3, 2, 5]), ([0, 2, 0], [3, 2, 2]), ([0, 2, 2], [3, 2, 3])]
        let metaChunks = chunks.map { DistributedCheckpointMetadata.Chunk(offsets: $0.0, sizes: $0.1, file: "x", byteOffset: 0, byteLength: 0) }
        try DistributedCheckpointMetadata.validateTiling(key: "t", shape: shape, chunks: metaChunks, file: "f")
        #expect(throws: CheckpointError.self) {
            try DistributedCheckpointMetadata.validateTiling(key: "t", shape: shape, chunks: Array(metaChunks.dropLast()), file: "f")
        }
        // As many elements as the tensor, but rows 2 twice and row 4 never: an overlap.
        let overlapping = [([0, 0], [3, 3]), ([2, 0], [2, 3])].map {
            DistributedCheckpointMetadata.Chunk(offsets: $0.0, sizes: $0.1, file: "x", byteOffset: 0, byteLength: 0)
        }
        #expect {
            try DistributedCheckpointMetadata.validateTiling(key: "t", shape: [5, 3], chunks: overlapping, file: "f")
        } throws: { "\($0)".contains("overlap") }
    }
}
