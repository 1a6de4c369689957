import ArgumentParser
import Checkpoints
import MoELayout

/// Options shared by every command that reads a checkpoint.
struct LayoutOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A layout file (JSON) mapping tensor names with {layer}/{expert} patterns, for checkpoints whose naming is not recognised. See docs/layout-file.md.",
            valueName: "FILE"))
    var layout: String?

    /// Opens `path` and recognises its MoE layout (the layout file, if given, replaces detection).
    func open(_ path: String) throws -> MoECheckpoint {
        let ckpt = try Checkpoint.open(path)
        let spec = try layout.map { p throws(LayoutError) in try LayoutSpec.load(p) }
        return try MoECheckpoint(ckpt, layout: spec)
    }
}
