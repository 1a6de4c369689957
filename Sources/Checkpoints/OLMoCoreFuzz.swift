/// Fuzz entry point for the OLMo-core readers: parses `data` as a distributed checkpoint's
/// `.metadata` pickle and as a `torch.save` archive. Any outcome but a trap, a hang or a huge
/// allocation is fine; errors are discarded.
public func fuzzOLMoCoreMetadata(_ data: [UInt8]) {
    data.withUnsafeBytes { b in
        _ = try? DistributedCheckpointMetadata(b, file: "fuzz-input")
        _ = try? TorchSavedTensor(b, what: "fuzz-input")
        _ = try? PickleReader.parse(b, allowed: DistributedCheckpointMetadata.allowedGlobals.union(TorchSavedTensor.allowedGlobals))
    }
}
