/// The `Reports` layer of moe-inspect; see `docs/architecture.md`.
public enum ReportsModule {
    /// The layer name, for provenance records.
    public static let name = "Reports"
}
