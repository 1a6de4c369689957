import Checkpoints
import Foundation
import MoELayout
import Training

/// Every parser of untrusted bytes, as a fuzz target: each must end in a value or an error for
/// any input, never a trap, a hang or a huge allocation. `scripts/fuzz.sh` runs them in turn
/// (`MOE_FUZZ_TARGET` names one), from the seeds in `fixtures/fuzz/<target>/`.
enum FuzzTargets {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "safetensors-header": { b in b.withUnsafeBytes { _ = try? SafetensorsHeader.parse($0, file: "fuzz") } },
        "safetensors-index": { b in _ = try? Checkpoint.parseIndex(b, file: "fuzz") },
        "config-json": { b in
            guard let text = String(validating: b, as: UTF8.self), let c = try? ModelConfig(text: text, source: "fuzz") else { return }
            _ = c.expertCount; _ = c.topK; _ = c.ropeTheta
            _ = try? OlmoeConfig(c, source: "fuzz")
        },
        "npy-header": { b in _ = try? TokenData.parseNpy(Data(b), path: "fuzz") },
        "layout-file": { b in _ = try? LayoutSpec.parse(Data(b), file: "fuzz") },
        "trainer-state": { b in _ = try? Trainer.checkState(Data(b), folder: "fuzz/step1") },
        "csv": { b in _ = try? CSV.parse(String(decoding: b, as: UTF8.self), source: "fuzz") },
        "olmo-core-metadata": { b in fuzzOLMoCoreMetadata(b) },
    ]

    /// The target named by `MOE_FUZZ_TARGET` (default: the safetensors header).
    static var selected: @Sendable ([UInt8]) -> Void {
        let name = ProcessInfo.processInfo.environment["MOE_FUZZ_TARGET"] ?? "safetensors-header"
        return all[name] ?? { @Sendable _ in
            FileHandle.standardError.write(Data("unknown MOE_FUZZ_TARGET '\(name)'; one of \(all.keys.sorted().joined(separator: ", "))\n".utf8))
            exit(2)
        }
    }
}
