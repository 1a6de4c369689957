import ArgumentParser
import Foundation
import Tensors

/// The `moe-inspect` command: parses, validates, calls the library, prints.
@main
struct MoEInspect: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "moe-inspect",
        abstract: "Inspect Mixture-of-Experts checkpoints: expert-router coupling (ERC), noise bound, router geometry, t-SNE, figures, training.",
        discussion: """
            Reads safetensors (single, sharded) and HDF5 checkpoints of OLMoE, Mixtral, Qwen2-MoE,
            Qwen3-MoE and DeepSeek-V2/V3, or any layout described by a layout file (--layout).
            See docs/guide.md for a worked example of every command.
            """,
        // The commit is looked up (running git) only when the version is asked for.
        version: CommandLine.arguments.contains("--version") ? versionLine : version,
        subcommands: [
            Info.self, ERC.self, Epsilon.self, Similarity.self, Report.self, Compare.self, Plot.self, Watch.self, TSNECommand.self, Train.self, Convert.self,
            Synth.self, RoutingCommand.self, Tokenize.self,
        ])

    /// `0.1.0 (commit v0.1-3-gabc1234: git describe of the checkout holding the binary, read at run time)`.
    static var versionLine: String {
        version + (BuildInfo.commit.map { " (commit \($0): \(BuildInfo.commitSource))" } ?? " (commit unknown: the binary does not sit in a git checkout)")
    }

    /// Parses and runs the command. The errors of this tool and its library (`ToolError`) become
    /// one line `moe-inspect: error: ...` and exit code 1; ArgumentParser's own (usage, help,
    /// validation) are printed as it prints them.
    static func main() {
        useTunedBLASKernels()
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { MoEInspect.exit(withError: error) }
        do {
            try command.run()
        } catch let e as SettingNamingError {
            fail(e.commandLineDescription)
        } catch let e as ToolError {
            fail(e.description)
        } catch {
            MoEInspect.exit(withError: error)
        }
    }

    /// Prints `message` as `moe-inspect: error: message` on stderr and exits 1, always on one
    /// line (a line break that a name in the message carries is shown escaped).
    static func fail(_ message: String) -> Never {
        let line = message.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        FileHandle.standardError.write(Data("moe-inspect: error: \(line)\n".utf8))
        Foundation.exit(1)
    }

    /// Restarts the process with `OPENBLAS_CORETYPE` set when OpenBLAS picked generic kernels on
    /// a CPU that runs much faster ones (see `BLAS.betterCoreType`). Never loops: the variable is
    /// set before the restart, and a user's own setting is respected.
    static func useTunedBLASKernels() {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let core = BLAS.betterCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returns only on failure: carry on with the kernels we have.
    }
}
