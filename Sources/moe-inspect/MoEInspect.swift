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
        version: version,
        subcommands: [Info.self, ERC.self, Epsilon.self, Similarity.self, Report.self, Compare.self, Plot.self, TSNECommand.self, Train.self, Convert.self, Synth.self, RoutingCommand.self])

    /// Parses and runs the command. The errors of this tool and its library (`ToolError`) become
    /// one line `moe-inspect: error: ...` and exit code 1; ArgumentParser's own (usage, help,
    /// validation) are printed as it prints them.
    static func main() {
        useTunedBLASKernels()
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { MoEInspect.exit(withError: error) }
        do {
            try command.run()
        } catch let e as ToolError {
            fail(e.description)
        } catch {
            MoEInspect.exit(withError: error)
        }
    }

    /// Prints `message` as `moe-inspect: error: message` on stderr and exits 1.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("moe-inspect: error: \(message)\n".utf8))
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
