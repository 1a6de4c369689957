/// The `Training` layer of moe-inspect; see `docs/architecture.md`.
public enum TrainingModule {
    /// The layer name, for provenance records.
    public static let name = "Training"
}
