/// The `Embedding` layer of moe-inspect: two-dimensional maps of point clouds and numbers that
/// say how well labelled groups separate.
///
/// - `TSNE` (exact and Barnes-Hut t-SNE with scikit-learn's semantics) returns a `TSNEResult`.
/// - `PCA` (exact or randomised) reduces wide data and starts t-SNE.
/// - `Silhouette` scores a labelling, in the map or in the original space.
/// - `NearestNeighbors` and `PerplexityCalibration` are the affinity steps, public for reuse
///   and tests.
/// Every result is bit-identical for a given input, configuration and seed whatever the thread
/// count (ours or OpenBLAS's), except `Silhouette` on more than 8 columns, which uses a GEMM.
public enum EmbeddingModule {
    /// The layer name, for provenance records.
    public static let name = "Embedding"
}
