import Analysis
import Embedding
import Foundation
import MoELayout

/// One t-SNE map of a report: its figure stem, title and the map.
public struct ReportMap {
    /// File stem of the figure (`tsne_neurons_layer0`).
    public var name: String
    /// Figure title.
    public var title: String
    /// The embedded points.
    public var map: ExpertMap
}

/// Which t-SNE maps a report shows, and the t-SNE settings they use.
public enum ReportMaps {
    /// t-SNE settings for report maps: scikit-learn's defaults, the perplexity lowered for few
    /// points, wide inputs first reduced to 50 principal components.
    public static func tsne(points: Int, columns: Int) -> TSNE {
        var t = TSNE(perplexity: min(30, max(2, Double(points - 1) / 3)), method: .barnesHut, iterations: 1000, seed: 0)
        if columns > 50 { t.reducedDimensions = min(50, points) }
        return t
    }

    /// The maps of `model`'s layers whose analysis succeeded (`analysed`): the W_g rows and
    /// router rows of the first such layer, and one point per expert over all of them (when
    /// there are at least 8 experts).
    /// - Parameter say: progress lines.
    public static func make(
        _ model: MoECheckpoint, analysed: [LayerCoupling], seed: UInt64,
        say: (String) -> Void = { _ in }
    ) throws -> [ReportMap] {
        let good = Set(analysed.filter(\.isOK).map(\.layer))
        let usable = model.moeLayers.filter { good.contains($0.index) }
        guard let first = usable.first else { return [] }
        var maps: [ReportMap] = []
        say("t-SNE of layer \(first.index)'s W_g rows and router rows")
        let neurons = try ExpertPoints.neurons(model, layer: first, perExpert: 64, seed: seed)
        maps.append(
            ReportMap(
                name: "tsne_neurons_layer\(first.index)", title: "t-SNE of W_g rows and router rows, layer \(first.index)",
                map: try ExpertMap.make(neurons, tsne: tsne(points: neurons.data.rows, columns: neurons.data.columns), labelBy: .expert)))
        let experts = try ExpertPoints.experts(model, layers: usable, allProjections: false, seed: seed)
        if experts.data.rows >= 8 {
            say("t-SNE of the experts of \(usable.count) layer(s)")
            let what = usable.count == 1 ? "layer \(first.index)" : "\(usable.count) MoE layers"
            maps.append(
                ReportMap(
                    name: "tsne_experts", title: "t-SNE of the experts of \(what) (W_g)",
                    map: try ExpertMap.make(
                        experts, tsne: tsne(points: experts.data.rows, columns: experts.data.columns),
                        labelBy: usable.count > 1 ? .layer : .expert)))
        }
        return maps
    }
}
