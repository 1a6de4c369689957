import Foundation
import Plotting
import Testing

/// A small deterministic generator for sample data (not for statistics).
struct SampleRandom {
    var state: UInt64
    mutating func next() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) / Double(1 << 53)
    }
    mutating func normal() -> Double {
        let u = max(next(), 1e-12), v = next()
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}

/// One figure of every kind the reports draw, each written as PNG, PDF and SVG. The folder is
/// `$PLOTTING_SAMPLES` when set (to look at them), a temporary one otherwise.
enum SampleFigures {
    static func activationMatrix(_ n: Int, seed: UInt64) -> [[Double]] {
        var rng = SampleRandom(state: seed)
        return (0..<n).map { i in (0..<n).map { j in i == j ? 0.55 + 0.3 * rng.next() : 0.25 * rng.next() * rng.next() } }
    }

    static func all() throws -> [String: Figure] {
        var figures: [String: Figure] = [:]

        let m = activationMatrix(64, seed: 1)
        let heat = Figure(width: 5.2, height: 4.4)
        heat.title = "Activation matrix M, layer 3"
        let ax = heat.axes[0]
        try ax.heatmap(m, scale: .fitting(m.joined()), diagonalOutline: .white)
        ax.xLabel = "expert j (router row)"
        ax.yLabel = "expert i (gate W_g)"
        ax.colorbar = Colorbar(label: "M[i,j]")
        figures["heatmap-activation"] = heat

        let small = activationMatrix(8, seed: 2)
        let annotated = Figure(width: 5, height: 4.4)
        try annotated.axes[0].heatmap(
            small, scale: .fitting(small.joined(), colormap: .cividis),
            annotation: CellAnnotation(decimals: 2), diagonalOutline: .black,
            rowLabels: (0..<8).map { "expert \($0)" }, columnLabels: (0..<8).map { "expert \($0)" })
        annotated.axes[0].title = "M with values (8 experts)"
        annotated.axes[0].colorbar = Colorbar(label: "mean |activation|")
        figures["heatmap-annotated"] = annotated

        var rng = SampleRandom(state: 3)
        var cosine = (0..<64).map { _ in (0..<64).map { _ in 0.0 } }
        for i in 0..<64 {
            for j in i..<64 {
                let v = i == j ? 1 : max(-1, min(1, 0.25 * rng.normal()))
                cosine[i][j] = v
                cosine[j][i] = v
            }
        }
        let cosineFigure = Figure(width: 5.2, height: 4.4)
        cosineFigure.title = "Router cosine similarity, layer 0"
        try cosineFigure.axes[0].heatmap(cosine, scale: .symmetric(limit: 1))
        cosineFigure.axes[0].colorbar = Colorbar(label: "cos(r_i, r_j)")
        cosineFigure.axes[0].xLabel = "expert j"
        cosineFigure.axes[0].yLabel = "expert i"
        figures["heatmap-cosine"] = cosineFigure

        let grid = Figure(width: 9, height: 6, rows: 2, columns: 3)
        grid.title = "Activation matrix M per layer (shared colour scale)"
        let mats = (0..<5).map { activationMatrix(16, seed: UInt64(10 + $0)) }
        let shared = ColorScale.fitting(mats.joined().joined())
        for (l, mat) in mats.enumerated() {
            try grid.axes[l].heatmap(mat, scale: shared, diagonalOutline: .white)
            grid.axes[l].title = "layer \(l)"
        }
        grid.colorbar = Colorbar(label: "M[i,j]")
        grid.sharesX = true
        grid.sharesY = true
        figures["heatmap-grid"] = grid

        let alphas = stride(from: 0.0, through: 3.0, by: 0.1).map { $0 }
        let profile = Figure()
        profile.title = "Coupling profile: ERC loss against α"
        for layer in 0..<16 {
            let threshold = 0.8 + 0.1 * Double(layer)
            try profile.axes[0].plot(
                x: alphas, y: alphas.map { max(0, threshold - $0) * (1 + 0.05 * Double(layer)) },
                label: "layer \(layer)")
        }
        profile.axes[0].xLabel = "α"
        profile.axes[0].yLabel = "ERC loss"
        profile.axes[0].referenceLine(ReferenceLine(.vertical, at: 1.0, label: "α = 1"))
        figures["lines-profile"] = profile

        var eps = SampleRandom(state: 4)
        let layers = (0..<16).map(Double.init)
        let mean = layers.map { 0.02 + 0.004 * $0 + 0.003 * eps.next() }
        let band = Figure(width: 6.4, height: 4)
        try band.axes[0].plot(
            x: layers, y: mean, label: "mean over experts", marker: .circle,
            band: (mean.map { $0 * 0.7 }, mean.map { $0 * 1.4 }))
        try band.axes[0].plot(x: layers, y: mean.map { $0 * 0.8 }, label: "MoE+ERC (mean)", marker: .square, style: .dashed)
        band.axes[0].title = "Noise bound ε per layer (band: min-max over experts)"
        band.axes[0].xLabel = "layer"
        band.axes[0].yLabel = "ε_i"
        band.axes[0].y.includesZero = true
        figures["lines-band"] = band

        var pts = SampleRandom(state: 5)
        var xs: [Double] = [], ys: [Double] = [], cats: [Int] = []
        var rx: [Double] = [], ry: [Double] = [], rc: [Int] = []
        for e in 0..<64 {
            let cx = 30 * cos(Double(e) * 0.7) * (1 + Double(e % 5) / 5), cy = 30 * sin(Double(e) * 0.7) * (1 + Double(e % 5) / 5)
            for _ in 0..<40 {
                xs.append(cx + 2.5 * pts.normal())
                ys.append(cy + 2.5 * pts.normal())
                cats.append(e)
            }
            rx.append(cx)
            ry.append(cy)
            rc.append(e)
        }
        let tsne = Figure(width: 6.4, height: 5.6)
        tsne.title = "t-SNE of W_g rows and router rows (64 experts)"
        try tsne.axes[0].scatter(x: xs, y: ys, categories: cats, size: 3, opacity: 0.7)
        for e in 0..<64 {
            try tsne.axes[0].scatter(.highlighted(x: [rx[e]], y: [ry[e]], label: nil, color: CategoricalPalette.color(e)))
        }
        try tsne.axes[0].scatter(.highlighted(x: [], y: [], label: "router row", color: .white))
        tsne.axes[0].xLabel = "t-SNE 1"
        tsne.axes[0].yLabel = "t-SNE 2"
        tsne.axes[0].aspect = .equal
        figures["scatter-tsne"] = tsne

        let tsneSmall = Figure(width: 6.4, height: 4.8)
        try tsneSmall.axes[0].scatter(
            x: Array(xs.prefix(320)), y: Array(ys.prefix(320)), categories: Array(cats.prefix(320)),
            label: { "expert \($0)" }, size: 4)
        tsneSmall.axes[0].title = "8 experts, automatic legend"
        figures["scatter-legend"] = tsneSmall

        let bars = Figure(width: 7, height: 4)
        let names = (0..<16).map { "layer \($0)" }
        var b = SampleRandom(state: 6)
        try bars.axes[0].bars(
            categories: names,
            series: [
                BarSeries(values: names.map { _ in 1 + b.next() }, label: "MoE"),
                BarSeries(values: names.map { _ in 1.5 + b.next() }, label: "MoE+ERC"),
            ])
        bars.axes[0].title = "Coupling threshold α* per layer"
        bars.axes[0].yLabel = "α^*"
        figures["bars-grouped"] = bars

        let training = Figure(width: 7, height: 3.2, rows: 1, columns: 2)
        let steps = (1...200).map { Double($0 * 50) }
        try training.axes[0].plot(x: steps, y: steps.map { 2.5 + 8 / sqrt($0 / 50) }, label: "LM loss")
        try training.axes[0].plot(x: steps, y: steps.map { 0.2 + 1 / sqrt($0 / 50) }, label: "ERC loss")
        training.axes[0].x.scale = .logarithmic
        training.axes[0].xLabel = "step"
        training.axes[0].yLabel = "loss"
        var tp = SampleRandom(state: 7)
        try training.axes[1].plot(x: steps, y: steps.map { _ in 15_000 + 1500 * tp.next() }, label: "tokens/s")
        training.axes[1].xLabel = "step"
        training.axes[1].yLabel = "tokens/s"
        training.title = "Training curves"
        figures["lines-training"] = training

        let compare = Figure(width: 8, height: 3.4, rows: 1, columns: 2)
        compare.title = "ε over training: MoE against MoE+ERC"
        for (k, run) in ["MoE", "MoE+ERC"].enumerated() {
            let ax = compare.axes[k]
            ax.title = run
            for layer in 0..<4 {
                try ax.plot(
                    x: steps, y: steps.map { 0.05 + 0.01 * Double(layer) + (k == 0 ? 0.02 : 0.005) * log10($0) },
                    label: "layer \(layer)", marker: layer == 0 ? .circle : .none)
            }
            ax.xLabel = "step"
            ax.yLabel = "ε"
        }
        compare.sharesY = true
        compare.legend = .bottom
        figures["lines-compare"] = compare

        let all = Figure(width: 10, height: 10, rows: 4, columns: 4)
        all.title = "Activation matrix M, all 16 layers"
        let allScale = ColorScale.fitting([0.0, 0.85])
        for l in 0..<16 {
            try all.axes[l].heatmap(activationMatrix(64, seed: UInt64(100 + l)), scale: allScale)
            all.axes[l].title = "layer \(l)"
        }
        all.sharesX = true
        all.sharesY = true
        all.colorbar = Colorbar(label: "M[i,j]")
        figures["heatmap-all-layers"] = all

        let many = Figure(width: 7, height: 5)
        try many.axes[0].scatter(x: xs, y: ys, categories: cats, label: { "expert \($0)" }, size: 3)
        many.axes[0].title = "64 experts with a legend (outside, in columns)"
        figures["scatter-64-legend"] = many

        let logY = Figure(width: 5, height: 3.5)
        try logY.axes[0].plot(x: steps, y: steps.map { 3 * pow($0, -0.7) }, label: "‖∇L‖", marker: .none)
        logY.axes[0].y.scale = .logarithmic
        logY.axes[0].x.scale = .logarithmic
        logY.axes[0].title = "A very long axes title that is wider than the plotting area and must shrink to fit"
        logY.axes[0].xLabel = "step"
        logY.axes[0].yLabel = "gradient norm"
        logY.axes[0].legend = .outsideRight
        figures["lines-loglog"] = logY

        let norms = Figure(width: 8, height: 5, rows: 2, columns: 2)
        norms.title = "Router and W_g norms per expert"
        var nr = SampleRandom(state: 8)
        for (k, ax) in norms.axes.enumerated() {
            let experts = (0..<64).map(Double.init)
            try ax.plot(x: experts, y: experts.map { _ in 1 + 0.2 * nr.next() }, label: "‖r_e‖ (router row)", marker: .circle)
            try ax.plot(x: experts, y: experts.map { _ in 1.3 + 0.2 * nr.next() }, label: "‖W_{g,e}‖ (gate)", marker: .diamond)
            ax.title = "layer \(k * 5)"
            ax.xLabel = k >= 2 ? "expert" : nil
            ax.yLabel = k % 2 == 0 ? "norm" : nil
        }
        norms.sharesX = true
        norms.sharesY = true
        norms.legend = .right
        figures["lines-figure-legend"] = norms

        let below = Figure(width: 5, height: 4)
        try below.axes[0].plot(x: steps, y: steps.map { 3 - log10($0) / 2 }, label: "LM loss")
        try below.axes[0].plot(x: steps, y: steps.map { 1 - log10($0) / 5 }, label: "load-balancing loss")
        try below.axes[0].plot(x: steps, y: steps.map { 0.5 / log10($0) }, label: "ERC loss", style: .dashed)
        below.axes[0].legend = .outsideBottom
        below.axes[0].xLabel = "step"
        below.axes[0].yLabel = "loss"
        figures["lines-legend-below"] = below

        let palette = Figure(width: 6.4, height: 4)
        for c in 0..<80 {
            var s = ScatterSeries(x: [Double(c % 10)], y: [Double(c / 10)], color: CategoricalPalette.color(c))
            s.marker = .square
            s.size = 22
            try palette.axes[0].scatter(s)
        }
        palette.axes[0].title = "CategoricalPalette, colours 0-79 (row r, column c: colour 10r + c)"
        palette.axes[0].y.inverted = true
        figures["palette"] = palette

        return figures
    }
}

@Test func everyFigureKindRendersInEveryFormat() throws {
    let folder = ProcessInfo.processInfo.environment["PLOTTING_SAMPLES"] ?? temporaryFolder()
    try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    for (name, figure) in try SampleFigures.all() {
        for format in OutputFormat.allCases {
            let path = "\(folder)/\(name).\(format.rawValue)"
            let layout = try figure.save(to: path, provenance: ["Software": "moe-inspect test"])
            #expect(bytes(path).count > 1000, "\(path) is nearly empty")
            for t in layout.texts where t.role != .cellAnnotation {
                #expect(
                    t.frame.minX >= 0 && t.frame.maxX <= layout.width && t.frame.minY >= 0 && t.frame.maxY <= layout.height,
                    "\(name): \"\(t.text)\" sticks out of the figure at \(t.frame)")
            }
        }
    }
}
