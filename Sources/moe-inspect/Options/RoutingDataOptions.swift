import Analysis
import ArgumentParser
import Foundation
import Models
import Reports
import Routing
import Tokenizers
import Training

/// The tokens that `routing`, `report --data` and `compare --data` run through checkpoints, and
/// how: files cut into windows, the tokenizer for text, the coupling sample.
struct RoutingDataOptions: ParsableArguments {
    @Option(
        name: .customLong("data"),
        help: ArgumentHelp(
            "Tokens: .npy (1-D integer), raw .bin (see --data-dtype) or .txt (encoded by the checkpoint's tokenizer.json or --tokenizer; bytes only for a byte-sized vocabulary without one); NAME=FILE names a domain. Repeat for several.",
            valueName: "FILE"))
    var data: [String] = []

    @Option(
        help: ArgumentHelp(
            "The tokenizer.json that encodes .txt data and decodes the tokens each expert receives (default: the one beside the first checkpoint).",
            valueName: "FILE"))
    var tokenizer: String?

    @Option(help: "Tokens per window.")
    var seqLen: Int = 512

    @Option(help: ArgumentHelp("At most N tokens from each --data file (whole windows).", valueName: "N"))
    var maxTokens: Int?

    @Option(help: ArgumentHelp("Element type of raw .bin token files: uint8, uint16, uint32, int32, int64 (default uint16).", valueName: "T"))
    var dataDtype: TokenDType?

    @Option(
        help: ArgumentHelp(
            "Measure the coupling on data on a seeded sample of N tokens (default all; 0 skips it). Its cost is n products with W_g per token and layer.",
            valueName: "N"))
    var couplingTokens: Int?

    @Option(help: ArgumentHelp("Input tokens listed per expert (vocabulary specialization).", valueName: "N"))
    var topTokens: Int = 10

    func validate() throws {
        guard seqLen >= 1, seqLen <= 1 << 20 else { throw ValidationError("--seq-len must be between 1 and 1048576") }
        if let m = maxTokens, m < 1 { throw ValidationError("--max-tokens must be positive") }
        if let c = couplingTokens, c < 0 { throw ValidationError("--coupling-tokens must be 0 or more") }
        guard topTokens >= 0, topTokens <= 10_000 else { throw ValidationError("--top-tokens must be between 0 and 10000") }
    }

    /// `NAME=FILE` or `FILE` (a path that exists is always a file).
    static func domain(_ s: String) -> (name: String, file: String) {
        if !FileManager.default.fileExists(atPath: s), let eq = s.firstIndex(of: "="), eq != s.startIndex {
            return (String(s[..<eq]), String(s[s.index(after: eq)...]))
        }
        return (((s as NSString).lastPathComponent as NSString).deletingPathExtension, s)
    }

    /// The data files named by `--data`.
    var files: [String] { data.map { Self.domain($0).file } }

    /// Runs the `--data` tokens through `checkpoints` (in order; checkpoints of one run get router
    /// saturation against its latest) and measures their routing.
    func route(
        _ checkpoints: [String], layout: LayoutOptions, alphas: [Double], feature: ProbeFeature, seed: UInt64,
        progress: Progress
    ) throws -> DataRouting {
        let models = try checkpoints.map { p throws -> CausalModel in try CausalModel(layout.open(p)) }
        guard let first = models.first else { throw CommandError("no checkpoint to run the data through") }
        let V = first.architecture.vocabularySize
        // text needs the tokenizer (a broken one is an error); token ids only use it to show the
        // tokens each expert receives
        let text = files.contains { $0.lowercased().hasSuffix(".txt") }
        let tok: Tokenizer?
        if let tokenizer {
            tok = try Tokenizer.load(tokenizer)
        } else if text {
            tok = try Tokenizer.of(checkpoint: checkpoints[0])
        } else {
            tok = (try? Tokenizer.of(checkpoint: checkpoints[0])) ?? nil
        }
        if let tok { progress.say("tokenizer \(tok.source)") }
        var windows = try TokenWindows(windowLength: seqLen)
        for spec in data {
            let (name, file) = Self.domain(spec)
            let tokens = try TokenData(path: file, vocabularySize: V, binaryDType: dataDtype, tokenizer: tok)
            let usable = min(tokens.count, maxTokens ?? tokens.count) / seqLen * seqLen
            var buffer = [Int32](repeating: 0, count: max(usable, 1))
            if usable > 0 {
                buffer.withUnsafeMutableBufferPointer { b in if let p = b.baseAddress { tokens.copyWindow(0, length: usable - 1, into: p) } }
            }
            try windows.append(domain: name, count: usable > 0 ? usable : min(tokens.count, maxTokens ?? tokens.count), source: file) { buffer[$0] }
            progress.say(
                "\(file): \(tokens.tokenizerSource == nil ? "" : "\(tokens.count) tokens, ")\(usable / seqLen) windows of \(seqLen) tokens (domain \(name))")
        }
        let options = RoutingOptions(alphas: alphas.isEmpty ? [1] : alphas, feature: feature, couplingTokens: couplingTokens, seed: seed, topTokens: topTokens)
        var results: [CheckpointRouting] = []
        for (path, model) in zip(checkpoints, models) {
            let L = model.architecture.layerCount
            let r = try RoutingAnalysis.run(model, data: windows, options: options, path: path) { l, s in
                progress.say(String(format: "%@: layer %d/%d %.2f s", path, l + 1, L, s))
            }
            progress.say(
                String(
                    format: "%@: %d tokens, forward %.2f s (%.0f tokens/s), coupling on data %.2f s", path, windows.tokenCount,
                    r.forwardSeconds, Double(windows.tokenCount) / max(r.forwardSeconds, 1e-9), r.couplingSeconds))
            results.append(r)
        }
        RoutingAnalysis.addSaturationByRun(&results)
        // the tokens each expert receives, as text: through the tokenizer, or as bytes when text
        // was read as bytes
        let decode: (@Sendable (Int32) -> String?)?
        if let tok {
            decode = { id in try? tok.decode([id]) }
        } else if !files.isEmpty && files.allSatisfy({ $0.lowercased().hasSuffix(".txt") }) {
            decode = { id in
                guard id >= 0, id < 256 else { return nil }
                return (0x20..<0x7F).contains(id) ? String(UnicodeScalar(UInt8(id))) : String(format: "\\x%02X", id)
            }
        } else {
            decode = nil
        }
        return DataRouting(runs: results, windowLength: seqLen, domainNames: windows.domains.map(\.name), decode: decode)
    }
}
