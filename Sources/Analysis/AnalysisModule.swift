/// The `Analysis` layer of moe-inspect; see `docs/architecture.md`.
public enum AnalysisModule {
    /// The layer name, for provenance records.
    public static let name = "Analysis"
}
