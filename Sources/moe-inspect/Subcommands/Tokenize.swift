import ArgumentParser
import Checkpoints
import Foundation
import Tokenizers

extension MoEInspect {
    struct Tokenize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encode a text file with a checkpoint's own tokenizer (tokenizer.json), as Hugging Face tokenizers does.",
            discussion: """
                TOKENIZER is a tokenizer.json, a checkpoint folder holding one (or a file beside one),
                or a Hugging Face name org/name[@revision] found in the local hub cache. The ids are
                those of tokenizers' encode(text, add_special_tokens=False): no BOS/EOS is added, the
                post-processor, truncation and padding are not applied. The file is read as UTF-8
                bytes as they are (no newline translation). Without --npy or --stats the ids are
                printed on one line.
                """)

        @Argument(help: "tokenizer.json, a checkpoint folder or file beside one, or org/name[@revision].")
        var tokenizer: String

        @Option(help: ArgumentHelp("The UTF-8 text file to encode.", valueName: "FILE"))
        var text: String

        @Option(help: ArgumentHelp("Write the ids as a 1-D int32 NumPy array.", valueName: "OUT"))
        var npy: String?

        @Flag(help: "Print token count, bytes per token, unknown and byte-fallback tokens, and the most frequent tokens.")
        var stats = false

        @Flag(name: [.short, .long], help: "No progress on stderr.")
        var quiet = false

        func validate() throws {
            if let npy, !npy.hasSuffix(".npy") { throw ValidationError("--npy must name a .npy file, not '\(npy)'") }
        }

        func run() throws {
            let progress = Progress(quiet: quiet)
            let path = try Tokenizer.locate(tokenizer)
            let tok = try Tokenizer(contentsOf: path)
            if let npy {
                for input in [text, path] where Self.sameFile(npy, input) {
                    throw CommandError("--npy \(npy) is an input (\(input)); choose another output")
                }
            }
            let start = Date()
            let ids = try tok.encodeFile(text)
            let bytes = (try? FileManager.default.attributesOfItem(atPath: text)[.size] as? Int) ?? 0
            let seconds = Date().timeIntervalSince(start)
            progress.say(
                String(
                    format: "encoded %@ (%@) into %d tokens in %.2f s (%.1f MB/s) with %@",
                    text, formatBytes(bytes), ids.count, seconds, Double(bytes) / max(seconds, 1e-9) / 1e6, path))
            if let npy {
                try AtomicOutput.write(TokenArrayFile.npy(ids), to: npy)
                progress.say("wrote \(npy)")
            }
            if stats {
                let s = TokenStatistics(ids: ids, bytes: bytes, tokenizer: tok)
                print("tokenizer           \(path)")
                print("text                \(text)")
                print("tokens              \(s.tokens)")
                print("bytes               \(s.bytes)")
                print(String(format: "bytes per token     %.3f", s.bytesPerToken))
                print("distinct tokens     \(s.distinct) of \(tok.vocabularySize)")
                print("unknown tokens      \(tok.unknownId == nil ? "n/a (no unk_token)" : String(s.unknowns))")
                if tok.usesByteFallback { print("byte-fallback       \(s.byteFallbacks)") }
                print("top tokens")
                for (id, count) in s.top {
                    let t = tok.token(for: id) ?? "?"
                    print(String(format: "  %8d  %6.2f%%  ", id, 100 * Double(count) / Double(max(s.tokens, 1))) + "\(count)  " + t.debugDescription)
                }
            }
            if npy == nil && !stats {
                print(ids.map(String.init).joined(separator: " "))
            }
        }

        /// Whether `a` and `b` name the same existing file.
        static func sameFile(_ a: String, _ b: String) -> Bool {
            let fm = FileManager.default
            guard let x = try? fm.attributesOfItem(atPath: a), let y = try? fm.attributesOfItem(atPath: b) else {
                return URL(fileURLWithPath: a).standardizedFileURL.path == URL(fileURLWithPath: b).standardizedFileURL.path
            }
            return (x[.systemFileNumber] as? Int) == (y[.systemFileNumber] as? Int)
                && (x[.systemNumber] as? Int) == (y[.systemNumber] as? Int)
        }
    }
}

extension TokenizerError: ToolError {}
