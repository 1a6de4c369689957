import Analysis
import Foundation
import Plotting

/// The t-SNE map of experts or neurons: points coloured by expert (or layer), router rows marked.
public enum TSNEFigures {
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
        try ax.scatter(x: plain.map { Double(m.embedding[$0, 0]) }, y: plain.map { Double(m.embedding[$0, 1]) },
                       categories: plain.map { labels[$0] }, label: distinct <= 12 ? { "\(m.labelKind.rawValue) \($0)" } : nil,
                       size: plain.count > 2000 ? 2.5 : 4, opacity: 0.75)
        let routers = m.points.kinds.indices.filter { m.points.kinds[$0] == .router }
        if !routers.isEmpty {
            for r in routers {
                var s = ScatterSeries(x: [Double(m.embedding[r, 0])], y: [Double(m.embedding[r, 1])], label: r == routers[0] ? "router row R[i]" : nil,
                                      color: CategoricalPalette.color(labels[r]))
                s.marker = .star
                s.size = 9
                s.edgeColor = .black
                s.edgeWidth = 0.8
                s.zOrder = 2
                try ax.scatter(s)
            }
        }
        var sub = String(format: "KL %.3f", m.klDivergence)
        if let s = m.silhouette2D { sub += String(format: " · silhouette by %@: %.3f in the map, %.3f in weight space", m.labelKind.rawValue, s, m.silhouetteOriginal ?? .nan) }
        if distinct > 12 { sub += " · colour = \(m.labelKind.rawValue) (\(distinct))" }
        ax.title = sub
        ax.legend = routers.isEmpty && distinct > 12 ? .none : .automatic
        return f
    }
}
