import Foundation
import Tensors
import TestSupport
import Testing

@testable import Checkpoints

/// Readers agree with each other and with the peers; writers reproduce the peers' bytes.
@Suite struct RoundTripTests {
    @Test func safetensorsWriterReproducesEveryStoredByte() throws {
        let ref = try Checkpoint.open(fixtures + "/dtypes/all-dtypes.safetensors")
        let out = temporaryFolder() + "/copy.safetensors"
        try CheckpointConverter.convert(ref, to: out)
        let copy = try Checkpoint.open(out)
        #expect(copy.tensors.count == ref.tensors.count)
        for t in ref.tensors {
            #expect(copy.info(t.name)?.dtype == t.dtype && copy.info(t.name)?.shape == t.shape, "\(t.name)")
            #expect(try copy.rawBytes(t.name) == ref.rawBytes(t.name), "\(t.name)")
        }
        // Header padded to 8 bytes, tensors aligned, as the reference writer does.
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(n % 8 == 0)
    }

    @Test func hdf5RoundTripIsBitExactAndH5pyTreeIsRead() throws {
        let st = try Checkpoint.open(fixtures + "/olmoe-tiny")
        let h5 = try Checkpoint.open(fixtures + "/olmoe-tiny.h5")
        let flat = try Checkpoint.open(fixtures + "/olmoe-tiny-flat")
        #expect(h5.config?.modelType == "olmoe")
        #expect(flat.config?.modelType == "olmoe")
        #expect(Set(h5.tensors.map(\.name)) == Set(st.tensors.map(\.name)))
        #expect(Set(flat.tensors.map(\.name)) == Set(st.tensors.map(\.name)))
        let dir = temporaryFolder()
        for compress in [false, true] {
            let out = dir + "/ours\(compress).h5"
            try CheckpointConverter.convert(st, to: out, compress: compress)
            let ours = try Checkpoint.open(out)
            #expect(ours.config?.json == st.config?.json)
            for t in st.tensors {
                let bytes = try st.rawBytes(t.name)
                #expect(try h5.rawBytes(t.name) == bytes, "h5py nested \(t.name)")
                #expect(try flat.rawBytes(t.name) == bytes, "h5py flat \(t.name)")
                #expect(try ours.rawBytes(t.name) == bytes, "ours \(t.name)")
            }
        }
        // And back to safetensors.
        let back = dir + "/back"
        try CheckpointConverter.convert(try Checkpoint.open(dir + "/ourstrue.h5"), to: back)
        let b = try Checkpoint.open(back)
        for t in st.tensors { #expect(try b.rawBytes(t.name) == st.rawBytes(t.name)) }
    }

    @Test func h5pyIntegerAndHalfDatasetsRoundTrip() throws {
        let ref = try Checkpoint.open(fixtures + "/dtypes/h5py-dtypes.h5")
        let out = temporaryFolder() + "/copy.h5"
        try CheckpointConverter.convert(ref, to: out)
        let copy = try Checkpoint.open(out)
        for t in ref.tensors {
            #expect(copy.info(t.name)?.dtype == t.dtype, "\(t.name)")
            #expect(try copy.rawBytes(t.name) == ref.rawBytes(t.name), "\(t.name)")
        }
    }

    @Test func shardedBF16MatchesSingleFileRoundedToBF16() throws {
        let f32 = try Checkpoint.open(fixtures + "/olmoe-tiny")
        let bf = try Checkpoint.open(fixtures + "/olmoe-tiny-bf16-sharded")
        #expect(bf.files.count >= 3)
        #expect(bf.tensors.count == f32.tensors.count)
        for t in f32.tensors {
            var want = try f32.tensor(t.name).storage
            Conversion.roundTrip(&want, through: .bf16)
            #expect(try bf.tensor(t.name).storage == want, "\(t.name)")
        }
    }

    @Test func castingAndShardingOnConvert() throws {
        let src = try Checkpoint.open(fixtures + "/olmoe-tiny")
        let dir = temporaryFolder()
        try CheckpointConverter.convert(src, to: dir + "/bf16", dtype: .bf16, maxShardBytes: 20_000)
        let out = try Checkpoint.open(dir + "/bf16")
        #expect(out.files.count > 1)
        #expect(FileManager.default.fileExists(atPath: dir + "/bf16/model.safetensors.index.json"))
        #expect(Set(out.tensors.map(\.dtype)) == [.bf16])
        // An existing output is not replaced without overwrite, and is intact afterwards.
        #expect(throws: CheckpointError.self) { try CheckpointConverter.convert(src, to: dir + "/bf16") }
        #expect(try Checkpoint.open(dir + "/bf16").tensors.count == src.tensors.count)
        #expect(throws: CheckpointError.self) { try CheckpointConverter.convert(src, to: dir + "/x.h5", dtype: .bf16) }
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.h5"))
    }

    @Test func metadataIsKept() throws {
        let c = try Checkpoint.open(fixtures + "/olmoe-tiny")
        #expect(c.metadata["format"] == "pt")
    }
}
