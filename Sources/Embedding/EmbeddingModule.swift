/// The `Embedding` layer of moe-inspect; see `docs/architecture.md`.
public enum EmbeddingModule {
    /// The layer name, for provenance records.
    public static let name = "Embedding"
}
