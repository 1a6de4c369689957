import Analysis
import Checkpoints
import Embedding
import MoELayout
import Plotting
import Reports
import Training

/// An error of the library or of the command line whose description is one line for the user;
/// `main` prints it as `moe-inspect: error: ...` and exits 1.
protocol ToolError: Error, CustomStringConvertible {}

extension CheckpointError: ToolError {}
extension JSONParseError: ToolError {}
extension LayoutError: ToolError {}
extension AnalysisError: ToolError {}
extension EmbeddingError: ToolError {}
extension TrainingError: ToolError {}
extension PlotError: ToolError {}
extension ReportError: ToolError {}

/// An error of the command line itself.
struct CommandError: ToolError {
    let description: String
    init(_ d: String) { description = d }
}
