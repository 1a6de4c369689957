import Analysis
import Foundation
import Plotting
import Tensors

/// Figures of the coupling analysis, one builder per figure; each returns a `Figure` ready to
/// save as PNG, PDF or SVG. Names follow the paper: M, eps, alpha*, R, W_g.
public enum CouplingFigures {
    static func matrix(_ t: Tensor) -> [[Double]] { (0..<t.rows).map { i in (0..<t.columns).map { Double(t[i, $0]) } } }
    static func layerLabel(_ l: Int) -> String { "layer \(l)" }
    static func okLayers(_ layers: [LayerCoupling]) -> [LayerCoupling] { layers.filter(\.isOK) }

    /// Line colour k of `count`: viridis without its palest yellow, which vanishes on white.
    static func lineColor(_ k: Int, of count: Int) -> RGBColor? {
        count > 1 ? Colormap.viridis.color(at: 0.88 * Double(k) / Double(count - 1)) : nil
    }

    /// Integer ticks at the layer indices when there are few of them (no "layer 0.5").
    static func layerAxis(_ ax: Axes, _ layers: [Int]) {
        ax.x.label = "layer"
        if layers.count <= 16 {
            ax.x.ticks = layers.map(Double.init)
        } else {
            let step = Double(((layers.count + 7) / 8));
            ax.x.ticks = stride(from: Double(layers.first ?? 0), through: Double(layers.last ?? 0), by: step).map { $0 }
        }
    }

    /// The activation matrix M of one layer: heatmap, diagonal outlined, colour bar.
    public static func activation(_ l: LayerCoupling, checkpoint: String) throws -> Figure? {
        guard let m = l.activation else { return nil }
        let f = Figure(width: 5.6, height: 4.8)
        f.title = "Activation matrix M, layer \(l.layer)"
        let ax = f.axes[0]
        ax.x.label = "expert j"
        ax.y.label = "proxy R̃[i] (router row i)"
        let values = matrix(m)
        let scale = ColorScale.fitting(values.joined(), colormap: .viridis)
        try ax.heatmap(values, scale: scale, annotation: l.experts <= 12 ? CellAnnotation(decimals: 3) : nil, diagonalOutline: .white)
        ax.colorbar = Colorbar(label: "M[i,j] = ‖R̃[i] W_g^jᵀ‖₂", scale: scale)
        ax.title = String(format: "α* = %.3g", l.couplingAlpha)
        return f
    }

    /// Every layer's M as small multiples on one colour scale.
    public static func activationGrid(_ layers: [LayerCoupling]) throws -> Figure? {
        let ok = okLayers(layers).compactMap { l in l.activation.map { (layer: l, activation: $0) } }
        guard !ok.isEmpty else { return nil }
        let cols = min(4, ok.count), rows = (ok.count + cols - 1) / cols
        let f = Figure(width: 2.4 * Double(cols) + 1.2, height: 2.3 * Double(rows) + 0.7, rows: rows, columns: cols)
        f.title = "Activation matrices M of all MoE layers (noise-free)"
        let all = ok.flatMap { matrix($0.activation).joined() }
        let scale = ColorScale.fitting(all, colormap: .viridis)
        for (k, (l, activation)) in ok.enumerated() {
            let ax = f.axes[k]
            try ax.heatmap(matrix(activation), scale: scale, diagonalOutline: .white)
            ax.title = String(format: "layer %d, α* %.2f", l.layer, l.couplingAlpha)
            ax.x.showsTickLabels = l.experts <= 16
            ax.y.showsTickLabels = l.experts <= 16
        }
        f.colorbar = Colorbar(label: "M[i,j]", scale: scale)
        return f
    }

    /// ERC loss per layer, one line per alpha (with the noise samples' std as a band when there
    /// are several samples).
    public static func ercByLayer(_ layers: [LayerNumbers]) throws -> Figure? {
        let ok = layers.filter(\.isOK)
        guard let first = ok.first, !first.erc.isEmpty else { return nil }
        let f = Figure(width: 6.4, height: 4)
        f.title = "ERC loss per layer"
        let ax = f.axes[0]
        layerAxis(ax, ok.map(\.layer))
        ax.y.label = "ERC loss"
        ax.y.includesZero = true
        for (k, a) in first.erc.enumerated() {
            let pts = ok.compactMap { l in l.erc(at: a.alpha).map { (Double(l.layer), $0) } }
            let y = pts.map(\.1.loss), sd = pts.map(\.1.lossStd)
            let band =
                sd.contains { $0.isFinite && $0 > 0 }
                ? (lower: zip(y, sd).map { max(0, $0 - ($1.isFinite ? $1 : 0)) }, upper: zip(y, sd).map { $0 + ($1.isFinite ? $1 : 0) }) : nil
            try ax.plot(
                x: pts.map(\.0), y: y, label: String(format: "α = %g", a.alpha), color: CategoricalPalette.color(k),
                marker: SeriesFigures.markers[k % SeriesFigures.markers.count], band: band)
        }
        let banded = ok.contains { $0.erc.contains { $0.lossStd.isFinite && $0.lossStd > 0 } }
        ax.legend = first.erc.count > 1 || banded ? .best : .none
        if first.erc.count == 1 { ax.title = String(format: "α = %g", first.erc[0].alpha) }
        return f
    }

    /// The coupling threshold alpha* per layer, with the paper's alpha = 1 for reference.
    public static func couplingThreshold(_ layers: [LayerNumbers]) throws -> Figure? {
        let ok = layers.filter { $0.isOK && $0.couplingAlpha.isFinite }
        guard !ok.isEmpty else { return nil }
        let f = Figure(width: 6.4, height: 4)
        f.title = "Coupling threshold α* per layer"
        let ax = f.axes[0]
        ax.x.label = "layer"
        ax.y.label = "α* (smallest α with zero ERC loss)"
        ax.y.includesZero = true
        try ax.bars(categories: ok.map { String($0.layer) }, series: [BarSeries(values: ok.map(\.couplingAlpha), label: "α*")])
        ax.referenceLine(ReferenceLine(.horizontal, at: 1, label: "α = 1"))
        ax.title = "dashed: α = 1 (at or below it, the α = 1 loss is zero)"
        ax.legend = .none
        return f
    }

    /// The alphas a coupling profile spans: from 0 to a little past the largest alpha* (and past 1).
    static func profileAlphas(_ thresholds: [Double]) -> [Double] {
        let top = max(1.2, 1.12 * (thresholds.filter(\.isFinite).max() ?? 1))
        return (0...120).map { top * Double($0) / 120 }
    }

    /// The coupling profile: noise-free ERC loss as a function of alpha from 0 to just past the
    /// largest alpha*, one line per layer, each layer's alpha* marked on the axis.
    public static func couplingProfile(_ layers: [LayerCoupling]) throws -> Figure? {
        let ok = okLayers(layers).filter { $0.activation != nil }
        guard !ok.isEmpty else { return nil }
        let f = Figure(width: 6.4, height: 4.4)
        f.title = "Coupling profile: ERC loss against α"
        try drawProfile(f.axes[0], ok, alphas: profileAlphas(ok.map(\.couplingAlpha)))
        f.axes[0].legend = ok.count <= 12 ? .best : .none
        return f
    }

    /// Draws the profile lines of `layers` on `ax`, each layer's alpha* as a diamond on the zero line
    /// (and, for up to 12 layers, a dashed vertical line in the layer's colour).
    static func drawProfile(_ ax: Axes, _ layers: [LayerCoupling], alphas: [Double]) throws {
        ax.x.label = "α"
        ax.y.label = "ERC loss (noise-free)"
        ax.y.includesZero = true
        ax.x.includesZero = true
        ax.x.limits = (alphas.first ?? 0)...(alphas.last ?? 1)
        for (i, l) in layers.enumerated() {
            guard let m = l.activation else { continue }
            let color = lineColor(i, of: layers.count) ?? CategoricalPalette.color(0)
            let label = layers.count <= 12 ? String(format: "layer %d (α* %.2f)", l.layer, l.couplingAlpha) : nil
            try ax.plot(x: alphas, y: alphas.map { ERCLoss(activation: m, alpha: $0).total }, label: label, color: color)
            if l.couplingAlpha.isFinite {
                if layers.count <= 12 {
                    var line = ReferenceLine(.vertical, at: l.couplingAlpha, color: color, style: .dashed)
                    line.width = 0.8
                    ax.referenceLine(line)
                }
                var s = ScatterSeries(x: [l.couplingAlpha], y: [0], label: nil, color: color)
                s.marker = .diamond
                s.size = 7
                s.edgeColor = .black
                s.edgeWidth = 0.5
                s.zOrder = 2
                try ax.scatter(s)
            }
        }
        ax.referenceLine(ReferenceLine(.vertical, at: 1, label: "α = 1 (the paper's default)", color: RGBColor(hex: 0x888888), style: .dotted))
    }

    /// eps per layer: mean with a min-max band.
    public static func epsilonByLayer(_ layers: [LayerNumbers]) throws -> Figure? {
        let ok = layers.filter { $0.isOK && $0.epsMean.isFinite }
        guard !ok.isEmpty else { return nil }
        let f = Figure(width: 6.4, height: 4)
        f.title = "Noise bound ε per layer"
        let ax = f.axes[0]
        layerAxis(ax, ok.map(\.layer))
        ax.y.label = "ε_i = min_j ‖R[i]−R[j]‖ / 2‖R[i]‖"
        let x = ok.map { Double($0.layer) }
        try ax.plot(
            x: x, y: ok.map(\.epsMean), label: "mean over experts (band: min to max)", marker: .circle,
            band: (lower: ok.map(\.epsMin), upper: ok.map(\.epsMax)))
        ax.legend = .best
        return f
    }

    /// eps of every expert: heatmap layer x expert.
    public static func epsilonByExpert(_ layers: [LayerCoupling]) throws -> Figure? {
        let ok = okLayers(layers)
        guard let n = ok.first?.experts, ok.allSatisfy({ $0.experts == n }) else { return nil }
        let f = Figure(width: 6.8, height: max(2.6, min(7, 0.28 * Double(ok.count) + 1.6)))
        f.title = "Noise bound ε_i of every expert"
        let ax = f.axes[0]
        let values = ok.map(\.eps)
        let scale = ColorScale.fitting(values.joined(), colormap: .cividis)
        try ax.heatmap(values, scale: scale, rowLabels: ok.map { String($0.layer) })
        ax.x.label = "expert i"
        ax.y.label = "layer"
        ax.colorbar = Colorbar(label: "ε_i", scale: scale)
        return f
    }

    /// Router row norms and gate-projection norms per expert (the paper's parameter-norm analysis).
    public static func norms(_ layers: [LayerCoupling]) throws -> Figure? {
        let ok = okLayers(layers).filter { $0.geometry != nil }
        guard !ok.isEmpty else { return nil }
        let f = Figure(width: 9, height: 3.8, rows: 1, columns: 2)
        f.title = "Parameter norms per expert"
        let a = f.axes[0], b = f.axes[1]
        a.x.label = "expert i"; a.y.label = "‖R[i]‖₂"; a.title = "router rows"
        b.x.label = "expert i"; b.y.label = "‖W_g^i‖_F"; b.title = "gate projections"
        for (k, l) in ok.enumerated() {
            guard let g = l.geometry else { continue }
            let color = lineColor(k, of: ok.count)
            let x = (0..<l.experts).map(Double.init)
            try a.plot(x: x, y: g.routerNorms, label: layerLabel(l.layer), color: color)
            if !g.gateNorms.isEmpty { try b.plot(x: x, y: g.gateNorms, label: layerLabel(l.layer), color: color) }
        }
        a.legend = .none
        b.legend = ok.count <= 10 ? .automatic : .none
        return f
    }

    /// Router cosine similarity of one layer (diverging map centred on 0).
    public static func cosine(_ l: LayerCoupling) throws -> Figure? {
        guard let g = l.geometry else { return nil }
        let f = Figure(width: 5.6, height: 4.8)
        f.title = "Router cosine similarity, layer \(l.layer)"
        let ax = f.axes[0]
        let scale = ColorScale.symmetric(limit: 1)
        try ax.heatmap(matrix(g.cosine), scale: scale, annotation: l.experts <= 12 ? CellAnnotation(decimals: 2) : nil)
        ax.x.label = "expert j"
        ax.y.label = "expert i"
        ax.title = String(format: "mean |cos| off the diagonal %.3f", g.meanAbsCosine)
        ax.colorbar = Colorbar(label: "cos(R[i], R[j])", scale: scale)
        return f
    }

    /// Mean |cos| of router rows by layer.
    public static func cosineByLayer(_ layers: [LayerNumbers]) throws -> Figure? {
        let ok = layers.filter { $0.isOK && $0.cosineMeanAbs.isFinite }
        guard !ok.isEmpty else { return nil }
        let f = Figure(width: 6.4, height: 4)
        f.title = "Router similarity per layer"
        let ax = f.axes[0]
        layerAxis(ax, ok.map(\.layer))
        ax.y.label = "mean |cos(R[i], R[j])|, i ≠ j"
        ax.y.includesZero = true
        try ax.plot(x: ok.map { Double($0.layer) }, y: ok.map(\.cosineMeanAbs), label: "mean |cos|", marker: .circle)
        ax.legend = .none
        return f
    }
}
