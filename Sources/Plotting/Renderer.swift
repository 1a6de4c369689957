/// Draws a laid-out figure on a canvas: white page, then each axes (grid, data, frame, ticks),
/// colour bars and legends, and last every text, so that no line crosses a label.
struct Renderer {
    let figure: Figure
    let layout: FigureLayout
    let canvas: Canvas
    /// Whether the output is vector (PDF, SVG): then crowds of points may become one image.
    let isVector: Bool

    func draw() {
        canvas.fill(Rect(x: 0, y: 0, width: layout.width, height: layout.height), color: .white)
        for (ax, al) in zip(figure.axes, layout.axes) where al.isVisible {
            drawAxes(ax, al)
            if let bar = al.colorbar { drawColorbar(bar) }
            if let legend = al.legend { drawLegend(legend) }
        }
        if let bar = layout.colorbar { drawColorbar(bar) }
        if let legend = layout.legend { drawLegend(legend) }
        for t in layout.texts {
            canvas.draw(t.rich, t.font, color: t.color, at: t.point, anchor: t.anchor, rotation: t.rotation)
        }
    }

    private var style: PlotStyle { figure.style }

    private func drawAxes(_ ax: Axes, _ al: AxesLayout) {
        let frame = al.frame
        drawGrid(ax, al)
        canvas.clip(to: frame)
        for case .heatmap(let h) in ax.contents { drawHeatmap(h, al) }
        for case .line(let s) in ax.contents { if let band = s.band { drawBand(s, band, al) } }
        for case .bars(let categories, let series) in ax.contents {
            for (rect, color) in barRects(categories: categories, series: series, layout: al) { canvas.fill(rect, color: color) }
        }
        for case .reference(let r) in ax.contents { drawReference(r, al) }
        for case .line(let s) in ax.contents { drawLine(s, al) }
        let scatters = ax.contents.enumerated().compactMap { i, c -> (Int, ScatterSeries)? in
            if case .scatter(let s) = c { return (i, s) }
            return nil
        }
        let ordered = scatters.sorted { ($0.1.zOrder, $0.0) < ($1.1.zOrder, $1.0) }.map(\.1)
        let points = ordered.reduce(0) { $0 + $1.x.count }
        if isVector && (ax.rasterizesPoints ?? (points > Axes.rasterThreshold)) {
            canvas.rasterize(frame, scale: figure.dpi / 72) { layer in
                for s in ordered { drawScatter(s, al, on: layer) }
            }
        } else {
            for s in ordered { drawScatter(s, al, on: canvas) }
        }
        canvas.unclip()
        drawFrameAndTicks(ax, al)
    }

    private func drawGrid(_ ax: Axes, _ al: AxesLayout) {
        let hasBars = ax.contents.contains { if case .bars = $0 { return true } else { return false } }
        let lines: GridLines
        switch ax.grid {
        case .automatic: lines = ax.hasHeatmap ? .none : (hasBars ? .y : .both)
        default: lines = ax.grid
        }
        let frame = al.frame
        if lines == .x || lines == .both {
            for v in al.x.ticks {
                let px = al.point(x: v, y: al.y.limits.lowerBound).x
                canvas.line(from: Point(x: px, y: frame.minY), to: Point(x: px, y: frame.maxY), color: .gridGrey, width: 0.5)
            }
        }
        if lines == .y || lines == .both {
            for v in al.y.ticks {
                let py = al.point(x: al.x.limits.lowerBound, y: v).y
                canvas.line(from: Point(x: frame.minX, y: py), to: Point(x: frame.maxX, y: py), color: .gridGrey, width: 0.5)
            }
        }
    }

    private func drawHeatmap(_ h: Heatmap, _ al: AxesLayout) {
        let topLeft = al.point(x: -0.5, y: -0.5)
        let bottomRight = al.point(x: Double(h.columns) - 0.5, y: Double(h.rows) - 0.5)
        let cells = Rect(
            x: min(topLeft.x, bottomRight.x), y: min(topLeft.y, bottomRight.y),
            width: abs(bottomRight.x - topLeft.x), height: abs(bottomRight.y - topLeft.y))
        canvas.paintCells(h.values.flatMap { $0.map(h.scale.color(for:)) }, columns: h.columns, rows: h.rows, into: cells)
        guard let outline = h.diagonalOutline else { return }
        let cellWidth = cells.width / Double(h.columns), cellHeight = cells.height / Double(h.rows)
        let width = min(1.0, 0.12 * min(cellWidth, cellHeight))
        for i in 0..<min(h.rows, h.columns) {
            let c = al.point(x: Double(i), y: Double(i))
            canvas.stroke(
                Rect(
                    x: c.x - cellWidth / 2 + width / 2, y: c.y - cellHeight / 2 + width / 2,
                    width: cellWidth - width, height: cellHeight - width), color: outline, width: width)
        }
    }

    private func drawBand(_ s: LineSeries, _ band: (lower: [Double], upper: [Double]), _ al: AxesLayout) {
        let color = (s.color ?? .ink).withAlpha(s.bandOpacity)
        // One polygon per run of finite values, so a gap in the data is a gap in the band.
        var run: [(Double, Double, Double)] = []
        func flush() {
            if run.count > 1 {
                let upper = run.map { al.point(x: $0.0, y: $0.2) }
                let lower = run.reversed().map { al.point(x: $0.0, y: $0.1) }
                canvas.fillPolygon(upper + lower, color: color)
            }
            run = []
        }
        for (x, (lo, hi)) in zip(s.x, zip(band.lower, band.upper)) {
            if x.isFinite && lo.isFinite && hi.isFinite { run.append((x, lo, hi)) } else { flush() }
        }
        flush()
    }

    private func drawLine(_ s: LineSeries, _ al: AxesLayout) {
        let color = s.color ?? .ink
        let points = zip(s.x, s.y).map { x, y in x.isFinite && y.isFinite ? al.point(x: x, y: y) : Point(x: .nan, y: .nan) }
        if s.width > 0 { canvas.strokePolyline(points, color: color, width: s.width, dash: s.style.dashes(width: s.width)) }
        for p in points { canvas.marker(s.marker, at: p, size: s.markerSize, fill: color, edge: .white, edgeWidth: 0.5) }
    }

    private func drawScatter(_ s: ScatterSeries, _ al: AxesLayout, on canvas: Canvas) {
        let fill = (s.color ?? .ink).withAlpha(s.opacity)
        let perPoint = s.pointColors.flatMap { $0.count == s.x.count ? $0 : nil }
        for (i, (x, y)) in zip(s.x, s.y).enumerated() where x.isFinite && y.isFinite {
            canvas.marker(
                s.marker, at: al.point(x: x, y: y), size: s.size, fill: perPoint.map { $0[i].withAlpha(s.opacity) } ?? fill,
                edge: s.edgeColor, edgeWidth: s.edgeWidth)
        }
    }

    private func drawReference(_ r: ReferenceLine, _ al: AxesLayout) {
        let f = al.frame
        let (a, b): (Point, Point)
        if r.orientation == .horizontal {
            let y = al.point(x: al.x.limits.lowerBound, y: r.value).y
            (a, b) = (Point(x: f.minX, y: y), Point(x: f.maxX, y: y))
        } else {
            let x = al.point(x: r.value, y: al.y.limits.lowerBound).x
            (a, b) = (Point(x: x, y: f.minY), Point(x: x, y: f.maxY))
        }
        canvas.line(from: a, to: b, color: r.color, width: r.width, dash: r.style.dashes(width: r.width))
    }

    private func drawFrameAndTicks(_ ax: Axes, _ al: AxesLayout) {
        let f = al.frame, w = style.frameWidth
        if ax.boxed ?? ax.hasHeatmap {
            canvas.stroke(f, color: .ink, width: w)
        } else {
            canvas.line(from: Point(x: f.minX, y: f.minY), to: Point(x: f.minX, y: f.maxY + w / 2), color: .ink, width: w)
            canvas.line(from: Point(x: f.minX - w / 2, y: f.maxY), to: Point(x: f.maxX, y: f.maxY), color: .ink, width: w)
        }
        for v in al.x.ticks {
            let px = al.point(x: v, y: al.y.limits.lowerBound).x
            canvas.line(from: Point(x: px, y: f.maxY), to: Point(x: px, y: f.maxY + style.tickLength), color: .ink, width: w)
        }
        for v in al.y.ticks {
            let py = al.point(x: al.x.limits.lowerBound, y: v).y
            canvas.line(from: Point(x: f.minX, y: py), to: Point(x: f.minX - style.tickLength, y: py), color: .ink, width: w)
        }
        let minor = 0.55 * style.tickLength
        for v in al.x.minorTicks {
            let px = al.point(x: v, y: al.y.limits.lowerBound).x
            canvas.line(from: Point(x: px, y: f.maxY), to: Point(x: px, y: f.maxY + minor), color: .ink, width: 0.6 * w)
        }
        for v in al.y.minorTicks {
            let py = al.point(x: al.x.limits.lowerBound, y: v).y
            canvas.line(from: Point(x: f.minX, y: py), to: Point(x: f.minX - minor, y: py), color: .ink, width: 0.6 * w)
        }
    }

    private func drawColorbar(_ bar: ColorbarLayout) {
        let steps = 256
        let colors = (0..<steps).map { i in bar.scale.colormap.color(at: 1 - (Double(i) + 0.5) / Double(steps)) }
        canvas.paintCells(colors, columns: 1, rows: steps, into: bar.frame)
        canvas.stroke(bar.frame, color: .ink, width: 0.6)
        for v in bar.ticks {
            let y = bar.y(of: v)
            canvas.line(from: Point(x: bar.frame.maxX, y: y), to: Point(x: bar.frame.maxX + style.tickLength, y: y), color: .ink, width: 0.6)
        }
    }

    private func drawLegend(_ legend: LegendLayout) {
        if [.upperRight, .upperLeft, .lowerLeft, .lowerRight].contains(legend.placement) {
            canvas.fill(legend.frame, color: RGBColor.white.withAlpha(0.9))
            canvas.stroke(legend.frame, color: RGBColor(hex: 0xCCCCCC), width: 0.6)
        }
        for (entry, r) in legend.entries {
            let c = r.center
            switch entry.swatch {
            case .line(let color, let width, let lineStyle, let marker, let markerSize, let band):
                if let band {
                    canvas.fill(Rect(x: r.minX, y: c.y - 0.3 * r.height, width: r.width, height: 0.6 * r.height), color: color.withAlpha(band))
                }
                if width > 0 {
                    canvas.line(
                        from: Point(x: r.minX, y: c.y), to: Point(x: r.maxX, y: c.y), color: color, width: width,
                        dash: lineStyle.dashes(width: width))
                }
                canvas.marker(marker, at: c, size: markerSize, fill: color, edge: .white, edgeWidth: 0.5)
            case .marker(let shape, let color, let size, let edge, let edgeWidth):
                canvas.marker(shape, at: c, size: min(size, r.height * 0.8), fill: color, edge: edge, edgeWidth: edgeWidth)
            case .patch(let color):
                let h = 0.55 * r.height
                canvas.fill(Rect(x: r.minX + 0.15 * r.width, y: c.y - h / 2, width: 0.7 * r.width, height: h), color: color)
            }
        }
    }
}
