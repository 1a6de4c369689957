import Analysis
import Foundation
import Plotting

/// The t-SNE map of experts or neurons: points coloured by expert (or layer), router rows marked.
public enum TSNEFigures {
    /// The figure's reading: KL divergence and the silhouettes.
    public static func reading(_ m: ExpertMap) -> String {
        var reading = String(format: "%@. KL %.3f", m.points.note.prefix(1).uppercased() + m.points.note.dropFirst(), m.klDivergence)
        if let s = m.silhouette2D {
            reading += String(
                format:
                    "; silhouette by %@ %.3f in the map and %.3f in weight space (near 0: no clusters; near 1: tight clusters, as the paper finds with ERC).",
                m.labelKind.rawValue, s, m.silhouetteOriginal ?? .nan)
        } else {
            reading += "."
        }
        return reading
    }

    /// What the page shows under the pointer: each point's kind, expert and layer.
    public static func hover(_ m: ExpertMap) -> Hover {
        let n = m.points.kinds.count
        let text = (0..<n).map { i -> String in
            let what =
                m.points.kinds[i] == .router
                ? "router row R[\(m.points.experts[i])]" : "\(m.points.kinds[i] == .neuron ? "W_g row of " : "")expert \(m.points.experts[i])"
            return what + ", layer \(m.points.layers[i])"
        }
        return .points(axes: 0, x: (0..<n).map { Double(m.embedding[$0, 0]) }, y: (0..<n).map { Double(m.embedding[$0, 1]) }, text: text)
    }

    /// The map: points coloured by expert (or layer), router rows as stars.
    public static func map(_ m: ExpertMap, title: String) throws -> Figure {
        let f = Figure(width: 6.6, height: 6.0)
        f.title = title
        let ax = f.axes[0]
        ax.aspect = .equal
        ax.x.ticks = []
        ax.y.ticks = []
        ax.grid = GridLines.none
        let labels = m.labelKind == .layer ? m.points.layers : m.points.experts
        let plain = m.points.kinds.indices.filter { m.points.kinds[$0] != .router }
        let distinct = Set(plain.map { labels[$0] }).count
        try ax.scatter(
            x: plain.map { Double(m.embedding[$0, 0]) }, y: plain.map { Double(m.embedding[$0, 1]) },
            categories: plain.map { labels[$0] }, label: distinct <= 12 ? { "\(m.labelKind.rawValue) \($0)" } : nil,
            size: plain.count > 2000 ? 2.5 : 4, opacity: 0.75)
        let routers = m.points.kinds.indices.filter { m.points.kinds[$0] == .router }
        if !routers.isEmpty {
            // Each router row in its expert's colour; the legend entry is a neutral star, since it
            // stands for all of them.
            for r in routers {
                try ax.scatter(
                    ScatterSeries.highlighted(
                        x: [Double(m.embedding[r, 0])], y: [Double(m.embedding[r, 1])], label: nil,
                        color: CategoricalPalette.color(labels[r])))
            }
            try ax.scatter(ScatterSeries.highlighted(x: [], y: [], label: "router row R[i]", color: .white))
        }
        var sub = String(format: "KL %.3f", m.klDivergence)
        if let s = m.silhouette2D {
            sub += String(format: " · silhouette by %@: %.3f in the map, %.3f in weight space", m.labelKind.rawValue, s, m.silhouetteOriginal ?? .nan)
        }
        if distinct > 12 { sub += " · colour = \(m.labelKind.rawValue) (\(distinct))" }
        ax.title = sub
        ax.legend = routers.isEmpty && distinct > 12 ? .none : .automatic
        return f
    }
}
