/// The `Plotting` layer of moe-inspect; see `docs/architecture.md`.
public enum PlottingModule {
    /// The layer name, for provenance records.
    public static let name = "Plotting"
}
