import Analysis
import ArgumentParser
import Checkpoints
import Foundation
import Models
import MoELayout
import Reports
import Routing
import Tokenizers
import Training

extension MoEInspect {
    struct RoutingCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "routing",
            abstract: "Run tokens through checkpoints and measure their routing: load, co-activation, domains, vocabulary, saturation, and coupling on data.",
            discussion: """
            Each --data file is cut into consecutive windows of --seq-len tokens from token 0 (each its own causal \
            sequence, no BOS added; a last partial window is dropped). NAME=FILE names a domain. One decoder layer's \
            weights are in memory at a time. Per checkpoint and MoE layer (routed experts only): counts, co-activation, \
            load balance, the load-balancing loss in transformers' and OLMo-core's conventions, router entropy and top-1 \
            probability, per-domain shares, the tokens each expert receives most, and the coupling on data: agreement of \
            the router's top-k with the top-k of a_tj = ||W_g^j x_t|| (chance k/n), m_data[i][j] = mean a_tj over the \
            tokens routed to i, its ERC loss and alpha*, and its correlation with the noise-free proxy M. Several \
            checkpoints of one run add router saturation (top-k overlap with the last checkpoint).
            """)

        @Argument(help: "One or more checkpoints (files, indexes or folders; checkpoints of one run, stepN folders of one folder, give router saturation against its latest step).")
        var checkpoints: [String]

        @Option(name: .customLong("data"), help: ArgumentHelp("Tokens: .npy (1-D integer), raw .bin (see --data-dtype) or .txt (encoded by the checkpoint's tokenizer.json or --tokenizer; bytes only for a byte-sized vocabulary without one); NAME=FILE names a domain. Repeat for several.", valueName: "FILE"))
        var data: [String] = []

        @Option(help: ArgumentHelp("The tokenizer.json that encodes .txt data and decodes the tokens each expert receives (default: the one beside the first checkpoint).", valueName: "FILE"))
        var tokenizer: String?

        @Option(help: "Tokens per window.")
        var seqLen: Int = 512

        @Option(help: ArgumentHelp("At most N tokens from each --data file (whole windows).", valueName: "N"))
        var maxTokens: Int?

        @Option(help: ArgumentHelp("Element type of raw .bin token files: uint8, uint16, uint32, int32, int64 (default uint16).", valueName: "T"))
        var dataDtype: String?

        @Option(name: .customLong("alpha"), help: ArgumentHelp("ERC alpha for the loss of m_data; repeat for several (default 1).", valueName: "A"))
        var alphas: [Double] = []

        @Option(help: ArgumentHelp("Probe feature of a_tj: gate (x W_g, the paper's), up, silu-gate, swiglu or output.", valueName: "F"))
        var feature: String = "gate"

        @Option(help: ArgumentHelp("Measure the coupling on a seeded sample of N tokens (default all; 0 skips it). Its cost is n products with W_g per token and layer.", valueName: "N"))
        var couplingTokens: Int?

        @Option(help: "Seed of the coupling sample.")
        var seed: UInt64 = 0

        @Option(help: ArgumentHelp("Input tokens listed per expert (vocabulary specialization).", valueName: "N"))
        var topTokens: Int = 10

        @OptionGroup var layoutOptions: LayoutOptions

        @Flag(help: "Print the results as JSON (one object per checkpoint).")
        var json = false

        @Option(help: ArgumentHelp("Write the per-layer summary as CSV to FILE (- for stdout).", valueName: "FILE"))
        var csv: String?

        @Option(help: ArgumentHelp("Write layer{L}.npy (int32 [T, k], the router's top-k per token) into DIR.", valueName: "DIR"))
        var assignments: String?

        @Option(help: ArgumentHelp("Write figures, tables, summary.json and index.html into DIR (replaced whole; see --overwrite).", valueName: "DIR"))
        var out: String?

        @Flag(help: "Let --out replace a non-empty folder that holds no earlier report.")
        var overwrite = false

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            guard !data.isEmpty else { throw ValidationError("--data is required: the tokens to run through the checkpoints") }
            guard seqLen >= 1, seqLen <= 1 << 20 else { throw ValidationError("--seq-len must be between 1 and 1048576") }
            if let m = maxTokens, m < 1 { throw ValidationError("--max-tokens must be positive") }
            if let c = couplingTokens, c < 0 { throw ValidationError("--coupling-tokens must be 0 or more") }
            guard topTokens >= 0, topTokens <= 10_000 else { throw ValidationError("--top-tokens must be between 0 and 10000") }
            guard ProbeFeature(rawValue: feature) != nil else {
                throw ValidationError("--feature must be one of \(ProbeFeature.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            for a in alphas where !(a >= 0 && a.isFinite) { throw ValidationError("--alpha must be a non-negative number") }
            if let d = dataDtype, TokenDType(rawValue: d) == nil {
                throw ValidationError("--data-dtype must be one of \(TokenDType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        /// `NAME=FILE` or `FILE` (a path that exists is always a file).
        static func domain(_ s: String) -> (name: String, file: String) {
            if !FileManager.default.fileExists(atPath: s), let eq = s.firstIndex(of: "="), eq != s.startIndex {
                return (String(s[..<eq]), String(s[s.index(after: eq)...]))
            }
            return (((s as NSString).lastPathComponent as NSString).deletingPathExtension, s)
        }

        func run() throws {
            let progress = Progress(quiet: quiet)
            let models = try checkpoints.map { p throws -> CausalModel in try CausalModel(layoutOptions.open(p)) }
            guard let first = models.first else { return }
            let V = first.architecture.vocabularySize
            var windows = try TokenWindows(windowLength: seqLen)
            let binary = dataDtype.flatMap { TokenDType(rawValue: $0) }
            // text needs the tokenizer (a broken one is an error); token ids only use it to show
            // the tokens each expert receives
            let text = data.contains { Self.domain($0).file.lowercased().hasSuffix(".txt") }
            let tok: Tokenizer?
            if let tokenizer { tok = try Tokenizer.load(tokenizer) }
            else if text { tok = try Tokenizer.of(checkpoint: checkpoints[0]) }
            else { tok = (try? Tokenizer.of(checkpoint: checkpoints[0])) ?? nil }
            if let tok { progress.say("tokenizer \(tok.source)") }
            for spec in data {
                let (name, file) = Self.domain(spec)
                let tokens = try TokenData(path: file, vocabularySize: V, binaryDType: binary, tokenizer: tok)
                let usable = min(tokens.count, maxTokens ?? tokens.count) / seqLen * seqLen
                var buffer = [Int32](repeating: 0, count: max(usable, 1))
                if usable > 0 {
                    buffer.withUnsafeMutableBufferPointer { b in if let p = b.baseAddress { tokens.copyWindow(0, length: usable - 1, into: p) } }
                }
                try windows.append(domain: name, count: usable > 0 ? usable : min(tokens.count, maxTokens ?? tokens.count), source: file) { buffer[$0] }
                progress.say("\(file): \(tokens.tokenizerSource == nil ? "" : "\(tokens.count) tokens, ")\(usable / seqLen) windows of \(seqLen) tokens (domain \(name))")
            }
            let options = RoutingOptions(alphas: alphas.isEmpty ? [1] : alphas, feature: ProbeFeature(rawValue: feature) ?? .gate,
                                         couplingTokens: couplingTokens, seed: seed, topTokens: topTokens)
            var results: [CheckpointRouting] = []
            for (path, model) in zip(checkpoints, models) {
                let L = model.architecture.layerCount
                let r = try RoutingAnalysis.run(model, data: windows, options: options, path: path) { l, s in
                    progress.say(String(format: "%@: layer %d/%d %.2f s", path, l + 1, L, s))
                }
                progress.say(String(format: "%@: %d tokens, forward %.2f s (%.0f tokens/s), coupling on data %.2f s", path, windows.tokenCount,
                                    r.forwardSeconds, Double(windows.tokenCount) / max(r.forwardSeconds, 1e-9), r.couplingSeconds))
                results.append(r)
            }
            RoutingAnalysis.addSaturationByRun(&results)
            if let dir = assignments {
                for (i, r) in results.enumerated() {
                    try RoutingTables.writeAssignments(r, to: results.count == 1 ? dir : dir + "/\(i)-" + ((r.checkpoint as NSString).lastPathComponent))
                }
            }
            // the tokens each expert receives, as text: through the tokenizer, or as bytes when
            // text was read as bytes
            let bytes = tok == nil && data.allSatisfy { Self.domain($0).file.lowercased().hasSuffix(".txt") }
            let decode: ((Int32) -> String?)?
            if let tok {
                decode = { id in try? tok.decode([id]) }
            } else if bytes {
                decode = { id in
                    guard id >= 0, id < 256 else { return nil }
                    return (0x20..<0x7F).contains(id) ? String(UnicodeScalar(UInt8(id))) : String(format: "\\x%02X", id)
                }
            } else {
                decode = nil
            }
            let names = windows.domains.map(\.name)
            if let dir = out {
                try writeReportFolder(dir, overwrite: overwrite) { tmp in
                    try RoutingReport.write(results, windowLength: seqLen, domainNames: names, decode: decode, to: tmp)
                }
                progress.say("wrote \(dir)")
            }
            let table = RoutingTables.summary(results)
            if let csv {
                if csv == "-" { print(table.csv, terminator: "") } else { try table.writeCSV(to: csv) }
            }
            if json { print(RoutingTables.json(results, windowLength: seqLen, domainNames: names, decode: decode).serialized(pretty: true)) }
            if csv == nil && !json { print(RoutingTables.display(table).aligned()) }
        }
    }
}
