import Foundation

/// Blank space each side of a plotting area taken by its texts, colour bar and legend, in points.
struct Insets {
    var left = 0.0, right = 0.0, top = 0.0, bottom = 0.0
}

/// An axes together with everything placed around it for one trial size.
struct DecoratedAxes {
    var frame: Rect
    var x: AxisLayout
    var y: AxisLayout
    var texts: [PlacedText] = []
    var colorbar: ColorbarLayout?
    var legend: LegendLayout?
    /// The union of the frame and all that was placed around it.
    var extent: Rect
}

/// The working state of one axes while the layout settles.
struct AxesPlan {
    let axes: Axes
    let row, column: Int
    let isVisible: Bool
    var xLimits: ClosedRange<Double>
    var yLimits: ClosedRange<Double>
    var showsXTickLabels = true
    var showsYTickLabels = true
    /// Set once an automatic legend found no free place inside; kept so the layout settles.
    var legendOutside = false
    var box = Rect(x: 0, y: 0, width: 100, height: 100)
    var decorated: DecoratedAxes?
}

/// Lays a figure out: sizes every text, then gives each axes the room its texts need, so that
/// nothing is clipped and neighbouring axes of a grid line up. The room depends on the ticks,
/// and the ticks on the room, so the computation repeats until it settles (a few rounds).
final class LayoutEngine {
    let figure: Figure
    let style: PlotStyle
    private let measuring = MeasuringCanvas()
    private var canvas: Canvas { measuring.canvas }

    /// Gap between a plotting area and its colour bar, and width of the bar, in points.
    static let colorbarGap = 10.0, colorbarWidth = 11.0

    init(figure: Figure) {
        self.figure = figure
        style = figure.style
    }

    // MARK: Figure

    func run() -> FigureLayout {
        let width = figure.width * 72, height = figure.height * 72
        var texts: [PlacedText] = []
        var top = style.margin
        if let title = figure.title, !title.isEmpty {
            let t = place(
                RichText(markup: title), Font(size: style.titleSize), role: .figureTitle,
                at: Point(x: width / 2, y: style.margin), anchor: TextAnchor(horizontal: .center, vertical: .top))
            texts.append(t)
            top = t.frame.maxY + 6
        }
        var plans = makePlans()
        var insets = plans.map { _ in Insets(left: 45, right: 12, top: 22, bottom: 36) }
        var reserved = Insets()
        var figureColorbar: ColorbarLayout?, figureLegend: LegendLayout?, figureTexts: [PlacedText] = []
        let sharedEntries = figureLegendEntries()
        for _ in 0..<5 {
            let area = Rect(
                x: style.margin, y: top, width: width - 2 * style.margin - reserved.right,
                height: height - style.margin - top - reserved.bottom)
            let boxes = gridBoxes(insets, plans: plans, area: area)
            for i in plans.indices where plans[i].isVisible {
                plans[i].box = boxes[i]
                let d = decorate(&plans[i])
                plans[i].decorated = d
                insets[i] = Insets(
                    left: max(0, boxes[i].minX - d.extent.minX), right: max(0, d.extent.maxX - boxes[i].maxX),
                    top: max(0, boxes[i].minY - d.extent.minY), bottom: max(0, d.extent.maxY - boxes[i].maxY))
            }
            let decorated = plans.compactMap { $0.isVisible ? $0.decorated : nil }
            let gridExtent = decorated.map(\.extent).reduce(nil as Rect?) { $0?.union($1) ?? $1 } ?? area
            let framesTop = decorated.map(\.frame.minY).min() ?? area.minY
            let framesBottom = decorated.map(\.frame.maxY).max() ?? area.maxY
            figureTexts = []
            figureColorbar = nil
            figureLegend = nil
            var right = gridExtent.maxX
            if let bar = figure.colorbar, let scale = bar.scale ?? figure.axes.lazy.compactMap(\.heatmapScale).first {
                let frame = Rect(
                    x: right + Self.colorbarGap, y: framesTop, width: Self.colorbarWidth,
                    height: max(20, framesBottom - framesTop))
                let (layout, t) = placeColorbar(label: bar.label, scale: scale, frame: frame)
                figureColorbar = layout
                figureTexts += t
                right = t.map(\.frame.maxX).reduce(frame.maxX, max)
            }
            if let placement = figure.legend, !sharedEntries.isEmpty {
                let (layout, t): (LegendLayout, [PlacedText])
                if placement == .right {
                    let size = legendSize(sharedEntries, maxHeight: height - 2 * style.margin)
                    let origin = Point(x: right + 10, y: max(style.margin, (framesTop + framesBottom - size.height) / 2))
                    (layout, t) = placeLegend(sharedEntries, size: size, at: origin, placement: .outsideRight)
                    right = layout.frame.maxX
                } else {
                    let size = legendSize(sharedEntries, maxWidth: width - 2 * style.margin)
                    let origin = Point(x: max(style.margin, (width - size.width) / 2), y: gridExtent.maxY + 8)
                    (layout, t) = placeLegend(sharedEntries, size: size, at: origin, placement: .outsideBottom)
                    reserved.bottom = size.height + 8
                }
                figureLegend = layout
                figureTexts += t
            }
            reserved.right = max(0, right - gridExtent.maxX)
        }
        let axesLayouts = plans.map { plan -> AxesLayout in
            guard plan.isVisible, let d = plan.decorated else {
                let none = AxisLayout(limits: plan.xLimits, scale: .linear, inverted: false, ticks: [], labels: [], labelRotation: 0)
                return AxesLayout(isVisible: false, frame: plan.box, x: none, y: none, colorbar: nil, legend: nil)
            }
            texts += d.texts
            return AxesLayout(isVisible: true, frame: d.frame, x: d.x, y: d.y, colorbar: d.colorbar, legend: d.legend)
        }
        return FigureLayout(
            width: width, height: height, dpi: figure.dpi, axes: axesLayouts,
            colorbar: figureColorbar, legend: figureLegend, texts: texts + figureTexts)
    }

    /// The plans of all axes: visibility, limits (shared when asked), which tick labels show.
    private func makePlans() -> [AxesPlan] {
        var plans: [AxesPlan] = figure.axes.enumerated().map { i, ax in
            let (x, y) = dataLimits(ax)
            return AxesPlan(
                axes: ax, row: i / figure.columns, column: i % figure.columns, isVisible: !ax.isEmpty,
                xLimits: x, yLimits: y)
        }
        let visible = plans.filter(\.isVisible)
        func union(_ ranges: [ClosedRange<Double>]) -> ClosedRange<Double>? {
            guard let lo = ranges.map(\.lowerBound).min(), let hi = ranges.map(\.upperBound).max() else { return nil }
            return lo...hi
        }
        for i in plans.indices where plans[i].isVisible {
            let p = plans[i]
            if figure.sharesX {
                if p.axes.x.limits == nil, let u = union(visible.filter { $0.axes.x.limits == nil }.map(\.xLimits)) { plans[i].xLimits = u }
                plans[i].showsXTickLabels = !visible.contains { $0.column == p.column && $0.row > p.row }
            }
            if figure.sharesY {
                if p.axes.y.limits == nil, let u = union(visible.filter { $0.axes.y.limits == nil }.map(\.yLimits)) { plans[i].yLimits = u }
                plans[i].showsYTickLabels = !visible.contains { $0.row == p.row && $0.column < p.column }
            }
        }
        return plans
    }

    /// The boxes of the grid cells: every column as wide as the widest needs of its axes on the
    /// left and right, every row likewise, so that plotting areas align across the grid.
    private func gridBoxes(_ insets: [Insets], plans: [AxesPlan], area: Rect) -> [Rect] {
        let rows = figure.rows, columns = figure.columns
        var left = [Double](repeating: 0, count: columns), right = left
        var top = [Double](repeating: 0, count: rows), bottom = top
        for (plan, inset) in zip(plans, insets) where plan.isVisible {
            left[plan.column] = max(left[plan.column], inset.left)
            right[plan.column] = max(right[plan.column], inset.right)
            top[plan.row] = max(top[plan.row], inset.top)
            bottom[plan.row] = max(bottom[plan.row], inset.bottom)
        }
        let boxWidth = max(10, (area.width - left.reduce(0, +) - right.reduce(0, +) - Double(columns - 1) * style.spacing) / Double(columns))
        let boxHeight = max(10, (area.height - top.reduce(0, +) - bottom.reduce(0, +) - Double(rows - 1) * style.spacing) / Double(rows))
        return plans.map { plan in
            let x = area.minX + (0..<plan.column).reduce(0.0) { $0 + left[$1] + boxWidth + right[$1] + style.spacing } + left[plan.column]
            let y = area.minY + (0..<plan.row).reduce(0.0) { $0 + top[$1] + boxHeight + bottom[$1] + style.spacing } + top[plan.row]
            return Rect(x: x, y: y, width: boxWidth, height: boxHeight)
        }
    }

    // MARK: One axes

    /// Places the frame, ticks, labels, title, annotations, colour bar and legend of one axes
    /// inside the box the grid gives it.
    private func decorate(_ plan: inout AxesPlan) -> DecoratedAxes {
        let ax = plan.axes
        var frame = plan.box
        let equal = ax.aspect == .equal || (ax.aspect == .automatic && ax.hasHeatmap)
        if equal {
            let xSpan = span(plan.xLimits, ax.x.scale), ySpan = span(plan.yLimits, ax.y.scale)
            if xSpan > 0, ySpan > 0 {
                let unit = min(frame.width / xSpan, frame.height / ySpan)
                let w = xSpan * unit, h = ySpan * unit
                frame = Rect(x: frame.minX + (frame.width - w) / 2, y: frame.minY + (frame.height - h) / 2, width: w, height: h)
            }
        }
        func axes(_ minimumStride: Int) -> (AxisLayout, AxisLayout) {
            (
                axisLayout(
                    ax.x, limits: plan.xLimits, length: frame.width, horizontal: true,
                    showsLabels: plan.showsXTickLabels && ax.x.showsTickLabels, minimumStride: minimumStride),
                axisLayout(
                    ax.y, limits: plan.yLimits, length: frame.height, horizontal: false,
                    showsLabels: plan.showsYTickLabels && ax.y.showsTickLabels, minimumStride: minimumStride)
            )
        }
        var (xAxis, yAxis) = axes(1)
        // The same categories on both axes (a square heatmap) are labelled alike.
        if let categories = ax.x.categories, categories == ax.y.categories {
            func stride(_ a: AxisLayout) -> Int { a.ticks.count > 1 ? Int(a.ticks[1] - a.ticks[0]) : categories.count }
            if stride(xAxis) != stride(yAxis) { (xAxis, yAxis) = axes(max(stride(xAxis), stride(yAxis))) }
        }
        var d = DecoratedAxes(frame: frame, x: xAxis, y: yAxis, extent: frame)
        let probe = AxesLayout(isVisible: true, frame: frame, x: xAxis, y: yAxis, colorbar: nil, legend: nil)
        let tickFont = Font(size: style.tickLabelSize), labelFont = Font(size: style.labelSize)
        let tickOut = style.tickLength + 3

        // x tick labels and label
        for (v, label) in zip(xAxis.ticks, xAxis.labels) where !label.isEmpty {
            let px = probe.point(x: v, y: plan.yLimits.lowerBound).x
            let y0 = frame.maxY + tickOut
            let text = RichText(plain: label)
            switch xAxis.labelRotation {
            case 90:
                d.texts.append(
                    place(
                        text, tickFont, role: .tickLabel, at: Point(x: px, y: y0),
                        anchor: TextAnchor(horizontal: .right, vertical: .middle), rotation: 90))
            case 45:
                // The end of the label's middle line points at the tick; its top corner stays below y0.
                d.texts.append(
                    place(
                        text, tickFont, role: .tickLabel, at: Point(x: px, y: y0 + 0.3 * tickFont.size),
                        anchor: TextAnchor(horizontal: .right, vertical: .middle), rotation: 45))
            default:
                d.texts.append(
                    place(
                        text, tickFont, role: .tickLabel, at: Point(x: px, y: y0),
                        anchor: TextAnchor(horizontal: .center, vertical: .top)))
            }
        }
        let xTicksBottom = d.texts.map(\.frame.maxY).reduce(frame.maxY + style.tickLength, max)
        if let label = ax.x.label, !label.isEmpty {
            d.texts.append(
                place(
                    RichText(markup: label), labelFont, role: .axisLabel, at: Point(x: frame.center.x, y: xTicksBottom + 4),
                    anchor: TextAnchor(horizontal: .center, vertical: .top)))
        }

        // y tick labels and label
        var yTicksLeft = frame.minX - style.tickLength
        for (v, label) in zip(yAxis.ticks, yAxis.labels) where !label.isEmpty {
            let py = probe.point(x: plan.xLimits.lowerBound, y: v).y
            let t = place(
                RichText(plain: label), tickFont, role: .tickLabel, at: Point(x: frame.minX - tickOut, y: py),
                anchor: TextAnchor(horizontal: .right, vertical: .middle))
            yTicksLeft = min(yTicksLeft, t.frame.minX)
            d.texts.append(t)
        }
        if let label = ax.y.label, !label.isEmpty {
            d.texts.append(
                place(
                    RichText(markup: label), labelFont, role: .axisLabel, at: Point(x: yTicksLeft - 4, y: frame.center.y),
                    anchor: TextAnchor(horizontal: .center, vertical: .bottom), rotation: 90))
        }

        // title, shrunk (down to 8 pt) when wider than the box
        if let title = ax.title, !title.isEmpty {
            let rich = RichText(markup: title)
            var font = Font(size: style.axesTitleSize)
            let w = canvas.measure(rich, font).width
            if w > plan.box.width { font.size = max(min(8, style.axesTitleSize), font.size * plan.box.width / w) }
            d.texts.append(
                place(
                    rich, font, role: .axesTitle, at: Point(x: frame.center.x, y: frame.minY - 6),
                    anchor: TextAnchor(horizontal: .center, vertical: .bottom)))
        }

        d.texts += annotations(ax, probe)

        var right = frame.maxX
        if let bar = ax.colorbar, let scale = bar.scale ?? ax.heatmapScale {
            let barFrame = Rect(x: frame.maxX + Self.colorbarGap, y: frame.minY, width: Self.colorbarWidth, height: frame.height)
            let (layout, t) = placeColorbar(label: bar.label, scale: scale, frame: barFrame)
            d.colorbar = layout
            d.texts += t
            right = t.map(\.frame.maxX).reduce(barFrame.maxX, max)
        }

        let entries = figure.legend == nil ? ax.legendEntries : []
        if !entries.isEmpty && ax.legend != .none {
            let below = d.texts.filter { $0.frame.minY >= frame.maxY }.map(\.frame.maxY).reduce(frame.maxY + style.tickLength, max)
            let (layout, t) = placeAxesLegend(entries, plan: &plan, axes: probe, outsideX: right + 8, belowY: below + 6)
            d.legend = layout
            d.texts += t
        }

        d.extent = d.texts.map(\.frame).reduce(
            frame.union(
                Rect(
                    x: frame.minX - style.tickLength, y: frame.minY,
                    width: frame.width + style.tickLength,
                    height: frame.height + style.tickLength)), { $0.union($1) })
        if let l = d.legend { d.extent = d.extent.union(l.frame) }
        if let c = d.colorbar { d.extent = d.extent.union(c.frame) }
        return d
    }

    private func span(_ r: ClosedRange<Double>, _ scale: AxisScale) -> Double {
        scale == .logarithmic && r.lowerBound > 0 ? log10(r.upperBound / r.lowerBound) : r.upperBound - r.lowerBound
    }

    /// Numbers in heatmap cells: one font size for all, as large as fits the cells (at most the
    /// annotation's maximum), in black or white whichever contrasts more with the cell.
    private func annotations(_ ax: Axes, _ layout: AxesLayout) -> [PlacedText] {
        var texts: [PlacedText] = []
        for case .heatmap(let h) in ax.contents {
            guard let a = h.annotation else { continue }
            let origin = layout.point(x: 0, y: 0), next = layout.point(x: 1, y: 1)
            let cellWidth = abs(next.x - origin.x), cellHeight = abs(next.y - origin.y)
            let strings = h.values.map { row in row.map { $0.isFinite ? Ticks.format($0, decimals: a.decimals) : "" } }
            let reference = Font(size: 10)
            let widest = strings.joined().map { canvas.measure(RichText(plain: $0), reference).width / 10 }.max() ?? 0
            let size = min(a.maxFontSize, cellHeight * 0.6, widest > 0 ? cellWidth * 0.88 / widest : a.maxFontSize)
            guard size >= 5 else { continue }
            for (i, row) in h.values.enumerated() {
                for (j, v) in row.enumerated() where v.isFinite {
                    let p = layout.point(x: Double(j), y: Double(i))
                    guard layout.frame.contains(p) else { continue }
                    texts.append(
                        place(
                            RichText(plain: strings[i][j]), Font(size: size), role: .cellAnnotation, at: p,
                            anchor: .center, color: h.scale.color(for: v).contrastingText))
                }
            }
        }
        return texts
    }

    // MARK: Limits and ticks

    /// Automatic limits from the data: lines and points get a 5 % margin each side; heatmap
    /// edges and the 0 of bars are "sticky" (no margin beyond them). Explicit limits win.
    private func dataLimits(_ ax: Axes) -> (ClosedRange<Double>, ClosedRange<Double>) {
        var x = Extent(scale: ax.x.scale), y = Extent(scale: ax.y.scale)
        for content in ax.contents {
            switch content {
            case .line(let s):
                x.add(s.x)
                y.add(s.y)
                if let band = s.band {
                    y.add(band.lower)
                    y.add(band.upper)
                }
            case .scatter(let s):
                x.add(s.x)
                y.add(s.y)
            case .bars(let categories, let series):
                x.add(-0.5, sticky: true)
                x.add(Double(categories.count) - 0.5, sticky: true)
                for s in series { y.add(s.values) }
                y.add(0, sticky: true)
            case .heatmap(let h):
                x.add(-0.5, sticky: true)
                x.add(Double(h.columns) - 0.5, sticky: true)
                y.add(-0.5, sticky: true)
                y.add(Double(h.rows) - 0.5, sticky: true)
            case .reference(let r):
                if r.orientation == .horizontal { y.add([r.value]) } else { x.add([r.value]) }
            }
        }
        if ax.x.includesZero { x.add(0, sticky: true) }
        if ax.y.includesZero { y.add(0, sticky: true) }
        return (ax.x.limits.flatMap(valid) ?? x.limits, ax.y.limits.flatMap(valid) ?? y.limits)
    }

    private func valid(_ r: ClosedRange<Double>) -> ClosedRange<Double>? {
        r.lowerBound.isFinite && r.upperBound.isFinite && r.lowerBound < r.upperBound ? r : nil
    }

    /// Ticks and labels of one axis, `length` points long: categorical labels rotated or thinned
    /// when crowded, numeric ticks as many as fit without their labels touching.
    private func axisLayout(
        _ o: AxisOptions, limits: ClosedRange<Double>, length: Double, horizontal: Bool,
        showsLabels: Bool, minimumStride: Int = 1
    ) -> AxisLayout {
        let font = Font(size: style.tickLabelSize)
        func make(_ ticks: [Double], _ labels: [String], rotation: Double = 0, scale: AxisScale = o.scale) -> AxisLayout {
            AxisLayout(
                limits: limits, scale: scale, inverted: o.inverted, ticks: ticks,
                labels: showsLabels ? labels : ticks.map { _ in "" }, labelRotation: rotation)
        }
        if let categories = o.categories, !categories.isEmpty {
            let (indices, rotation) = categoricalTicks(
                categories, limits: limits, length: length, horizontal: horizontal,
                minimumStride: minimumStride)
            return make(indices.map(Double.init), indices.map { categories[$0] }, rotation: rotation, scale: .linear)
        }
        let labelsFor: ([Double]) -> [String] = { ticks in
            o.scale == .logarithmic ? Ticks.logarithmicLabels(for: ticks) : Ticks.labels(for: ticks)
        }
        if let explicit = o.ticks {
            let inside = explicit.filter { limits.contains($0) }
            return make(inside, labelsFor(inside))
        }
        let perTick = horizontal ? 40.0 : 20.0
        var count = min(9, max(2, Int(length / perTick)))
        while true {
            let ticks = o.scale == .logarithmic ? Ticks.logarithmic(in: limits, maxCount: count) : Ticks.linear(in: limits, maxCount: count)
            let labels = labelsFor(ticks)
            let probe = make(ticks, labels)
            let positions = ticks.map { probe.fraction(of: $0) * length }
            let sizes = labels.map { canvas.measure(RichText(plain: $0), font) }
            let crowded = zip(positions.indices, positions.indices.dropFirst()).contains { i, j in
                let gap = abs(positions[j] - positions[i])
                return horizontal
                    ? gap < (sizes[i].width + sizes[j].width) / 2 + 0.8 * font.size
                    : gap < 1.15 * (sizes[i].ascent + sizes[i].descent)
            }
            if !crowded || count <= 2 {
                var axis = probe
                if o.scale == .logarithmic { axis.minorTicks = Self.minorLogTicks(in: limits) }
                return axis
            }
            count -= 1
        }
    }

    /// 2...9 times the powers of ten inside `limits` (positive).
    static func minorLogTicks(in limits: ClosedRange<Double>) -> [Double] {
        guard limits.lowerBound > 0, limits.upperBound.isFinite else { return [] }
        let first = Int(log10(limits.lowerBound).rounded(.down)), last = Int(log10(limits.upperBound).rounded(.up))
        guard last - first < 30 else { return [] }
        return (first...last).flatMap { e in (2...9).map { Double($0) * pow(10, Double(e)) } }.filter { limits.contains($0) }
    }

    /// The labelled categories, every k-th from 0, and the label rotation. Numbers are thinned
    /// (k in 1, 2, 4, 8, ... when their count is a power of two, as expert counts are; otherwise
    /// 1, 2, 5, 10, ...). Text labels on x stay level when they fit, else turn 45 degrees (90
    /// when long), and only then are thinned.
    private func categoricalTicks(
        _ categories: [String], limits: ClosedRange<Double>, length: Double,
        horizontal: Bool, minimumStride: Int
    ) -> ([Int], Double) {
        let font = Font(size: style.tickLabelSize)
        let visible = categories.indices.filter { limits.contains(Double($0)) }
        guard !visible.isEmpty else { return ([], 0) }
        let unit = length / (limits.upperBound - limits.lowerBound)
        let boxes = categories.map { canvas.measure(RichText(plain: $0), font) }
        let lineHeight = (boxes.first.map { $0.ascent + $0.descent }) ?? font.size
        let numeric = categories.allSatisfy { Double($0) != nil }
        let n = categories.count
        var strides: [Int] = []
        if numeric && n & (n - 1) == 0 {
            var k = 1
            while k < n { strides.append(k); k *= 2 }
        } else {
            var decade = 1
            while decade < n { strides += [decade, 2 * decade, 5 * decade]; decade *= 10 }
        }
        strides = strides.filter { $0 >= minimumStride } + [max(n, minimumStride)]
        func labelled(_ k: Int) -> [Int] { visible.filter { $0 % k == 0 } }
        func fits(_ k: Int, rotation: Double) -> Bool {
            let idx = labelled(k)
            return zip(idx, idx.dropFirst()).allSatisfy { i, j in
                let gap = Double(j - i) * unit
                if !horizontal { return gap >= (numeric ? 1.6 : 1.05) * lineHeight }
                switch rotation {
                case 0: return gap >= (boxes[i].width + boxes[j].width) / 2 + (numeric ? 1.2 : 0.6) * font.size
                case 45: return gap >= 1.45 * lineHeight
                default: return gap >= 1.05 * lineHeight
                }
            }
        }
        var rotation = 0.0
        if horizontal && !numeric && !fits(max(1, minimumStride), rotation: 0) {
            rotation = (boxes.map(\.width).max() ?? 0) <= 6 * font.size ? 45 : 90
        }
        for k in strides where fits(k, rotation: rotation) { return (labelled(k), rotation) }
        return ([visible[0]], rotation)
    }

    // MARK: Colour bars

    private func placeColorbar(label: String, scale: ColorScale, frame: Rect) -> (ColorbarLayout, [PlacedText]) {
        let font = Font(size: style.tickLabelSize)
        var count = min(9, max(2, Int(frame.height / 30)))
        var ticks: [Double] = [], labels: [String] = []
        while true {
            ticks = Ticks.linear(in: scale.range, maxCount: count)
            labels = Ticks.labels(for: ticks)
            let lineHeight = canvas.measure(RichText(plain: "0"), font)
            let spacing = ticks.count > 1 ? frame.height * abs(scale.position(of: ticks[1]) - scale.position(of: ticks[0])) : .infinity
            if spacing >= 1.15 * (lineHeight.ascent + lineHeight.descent) || count <= 2 { break }
            count -= 1
        }
        let layout = ColorbarLayout(frame: frame, scale: scale, ticks: ticks, labels: labels, label: label)
        var texts: [PlacedText] = []
        var labelsRight = frame.maxX + style.tickLength
        for (v, l) in zip(ticks, labels) {
            let t = place(
                RichText(plain: l), font, role: .colorbarTickLabel,
                at: Point(x: frame.maxX + style.tickLength + 3, y: layout.y(of: v)),
                anchor: TextAnchor(horizontal: .left, vertical: .middle))
            labelsRight = max(labelsRight, t.frame.maxX)
            texts.append(t)
        }
        if !label.isEmpty {
            texts.append(
                place(
                    RichText(markup: label), Font(size: style.labelSize), role: .colorbarLabel,
                    at: Point(x: labelsRight + 5, y: frame.center.y),
                    anchor: TextAnchor(horizontal: .center, vertical: .top), rotation: 90))
        }
        return (layout, texts)
    }

    // MARK: Legends

    private var legendFont: Font { Font(size: style.legendSize) }
    private var legendPad: Double { 0.45 * style.legendSize }
    private var legendRow: Double { 1.4 * style.legendSize }
    private var legendHandle: Double { 2.2 * style.legendSize }
    private var legendColumnGap: Double { 1.4 * style.legendSize }

    /// Rows per column and the size of a legend with `columns` columns.
    private func legendSize(_ entries: [LegendEntry], columns: Int) -> (width: Double, height: Double, columns: Int) {
        let cols = max(1, min(columns, entries.count))
        let rows = (entries.count + cols - 1) / cols
        let widths = entries.map { canvas.measure(RichText(markup: $0.label), legendFont).width }
        var width = 2 * legendPad + Double(cols - 1) * legendColumnGap
        for c in 0..<cols {
            let column = widths[min(c * rows, widths.count)..<min((c + 1) * rows, widths.count)]
            width += legendHandle + 0.6 * style.legendSize + (column.max() ?? 0)
        }
        return (width, 2 * legendPad + Double(rows) * legendRow, cols)
    }

    /// The legend in as few columns as fit `maxHeight` points.
    private func legendSize(_ entries: [LegendEntry], maxHeight: Double) -> (width: Double, height: Double, columns: Int) {
        let rowsFitting = max(1, Int((maxHeight - 2 * legendPad) / legendRow))
        return legendSize(entries, columns: (entries.count + rowsFitting - 1) / rowsFitting)
    }

    /// The legend in as many columns as fit `maxWidth` points (for a legend below the grid).
    private func legendSize(_ entries: [LegendEntry], maxWidth: Double) -> (width: Double, height: Double, columns: Int) {
        var columns = entries.count
        while columns > 1, legendSize(entries, columns: columns).width > maxWidth { columns -= 1 }
        return legendSize(entries, columns: columns)
    }

    private func placeLegend(
        _ entries: [LegendEntry], size: (width: Double, height: Double, columns: Int), at origin: Point,
        placement: LegendPlacement
    ) -> (LegendLayout, [PlacedText]) {
        let rows = (entries.count + size.columns - 1) / size.columns
        let frame = Rect(x: origin.x, y: origin.y, width: size.width, height: size.height)
        var texts: [PlacedText] = []
        var placed: [(entry: LegendEntry, swatch: Rect)] = []
        var x = frame.minX + legendPad
        for c in 0..<size.columns {
            var columnRight = x
            for r in 0..<rows {
                let i = c * rows + r
                guard i < entries.count else { break }
                let swatch = Rect(x: x, y: frame.minY + legendPad + Double(r) * legendRow, width: legendHandle, height: legendRow)
                let t = place(
                    RichText(markup: entries[i].label), legendFont, role: .legendLabel,
                    at: Point(x: swatch.maxX + 0.6 * style.legendSize, y: swatch.center.y),
                    anchor: TextAnchor(horizontal: .left, vertical: .middle))
                columnRight = max(columnRight, t.frame.maxX)
                texts.append(t)
                placed.append((entries[i], swatch))
            }
            x = columnRight + legendColumnGap
        }
        return (LegendLayout(frame: frame, placement: placement, columns: size.columns, entries: placed), texts)
    }

    /// An axes' own legend: at the asked corner, or (automatic) the first inside position that
    /// covers no data, or outside right when every inside position would cover some.
    private func placeAxesLegend(
        _ entries: [LegendEntry], plan: inout AxesPlan, axes: AxesLayout,
        outsideX: Double, belowY: Double
    ) -> (LegendLayout, [PlacedText]) {
        let frame = axes.frame
        let inside = legendSize(entries, columns: 1)
        let inset = 0.5 * style.legendSize
        func origin(_ p: LegendPlacement) -> Point? {
            let left = frame.minX + inset, right = frame.maxX - inset - inside.width
            let top = frame.minY + inset, bottom = frame.maxY - inset - inside.height
            switch p {
            case .upperRight: return Point(x: right, y: top)
            case .upperLeft: return Point(x: left, y: top)
            case .lowerLeft: return Point(x: left, y: bottom)
            case .lowerRight: return Point(x: right, y: bottom)
            default: return nil
            }
        }
        var choice = plan.axes.legend
        if choice == .automatic || choice == .best {
            let fitsInside = inside.width <= frame.width - 2 * inset && inside.height <= frame.height - 2 * inset
            let candidates: [LegendPlacement] = [.upperRight, .upperLeft, .lowerLeft, .lowerRight]
            let scored = candidates.compactMap { p -> (LegendPlacement, Int)? in
                guard let o = origin(p) else { return nil }
                return (p, dataHits(plan.axes, axes, Rect(x: o.x, y: o.y, width: inside.width, height: inside.height)))
            }
            let best = scored.min { $0.1 < $1.1 } ?? (.upperRight, 0)
            if choice == .automatic && (plan.legendOutside || !fitsInside || best.1 > 0) {
                plan.legendOutside = true
                choice = .outsideRight
            } else {
                choice = best.0
            }
        }
        if choice == .outsideRight {
            let size = legendSize(entries, maxHeight: figure.height * 72 - 2 * style.margin)
            return placeLegend(entries, size: size, at: Point(x: outsideX, y: frame.minY), placement: .outsideRight)
        }
        if choice == .outsideBottom {
            let size = legendSize(entries, maxWidth: max(frame.width, plan.box.width))
            return placeLegend(entries, size: size, at: Point(x: frame.center.x - size.width / 2, y: belowY), placement: .outsideBottom)
        }
        return placeLegend(entries, size: inside, at: origin(choice) ?? Point(x: frame.minX, y: frame.minY), placement: choice)
    }

    /// How much data a legend at `rect` would cover: vertices, crossing segments, points, bars,
    /// band columns; any heatmap counts as covered.
    private func dataHits(_ ax: Axes, _ layout: AxesLayout, _ rect: Rect) -> Int {
        let grown = Rect(x: rect.minX - 2, y: rect.minY - 2, width: rect.width + 4, height: rect.height + 4)
        var hits = 0
        func polyline(_ xs: [Double], _ ys: [Double]) {
            let points = zip(xs, ys).map { layout.point(x: $0, y: $1) }
            hits += points.filter { grown.contains($0) }.count
            hits += zip(points, points.dropFirst()).filter { segment($0, $1, crosses: grown) }.count
        }
        for content in ax.contents {
            switch content {
            case .line(let s):
                polyline(s.x, s.y)
                if let band = s.band {
                    for (x, (lo, hi)) in zip(s.x, zip(band.lower, band.upper)) {
                        let a = layout.point(x: x, y: lo), b = layout.point(x: x, y: hi)
                        if a.x >= grown.minX && a.x <= grown.maxX && max(a.y, b.y) >= grown.minY && min(a.y, b.y) <= grown.maxY { hits += 1 }
                    }
                }
            case .scatter(let s):
                let r = s.size / 2
                hits +=
                    zip(s.x, s.y).filter { x, y in
                        let p = layout.point(x: x, y: y)
                        return p.x >= grown.minX - r && p.x <= grown.maxX + r && p.y >= grown.minY - r && p.y <= grown.maxY + r
                    }.count
            case .bars(let categories, let series):
                for rect in barRects(categories: categories, series: series, layout: layout).map(\.rect) where rect.intersects(grown) { hits += 1 }
            case .heatmap:
                hits += 1000
            case .reference(let r):
                let a =
                    r.orientation == .horizontal
                    ? layout.point(x: layout.x.limits.lowerBound, y: r.value)
                    : layout.point(x: r.value, y: layout.y.limits.lowerBound)
                let b =
                    r.orientation == .horizontal
                    ? layout.point(x: layout.x.limits.upperBound, y: r.value)
                    : layout.point(x: r.value, y: layout.y.limits.upperBound)
                if segment(a, b, crosses: grown) { hits += 1 }
            }
        }
        return hits
    }

    // MARK: Text

    func place(
        _ rich: RichText, _ font: Font, role: TextRole, at point: Point, anchor: TextAnchor,
        rotation: Double = 0, color: RGBColor = .ink
    ) -> PlacedText {
        PlacedText(
            role: role, corners: canvas.corners(rich, font, at: point, anchor: anchor, rotation: rotation),
            rotation: rotation, rich: rich, font: font, point: point, anchor: anchor, color: color)
    }

    /// Legend entries of all axes with distinct labels, for a figure legend.
    private func figureLegendEntries() -> [LegendEntry] {
        guard figure.legend != nil else { return [] }
        var seen = Set<String>()
        return figure.axes.flatMap(\.legendEntries).filter { seen.insert($0.label).inserted }
    }
}

/// The rectangles of grouped bars: category `c` spans `c - 0.4 ... c + 0.4`, split evenly among
/// the series.
func barRects(categories: [String], series: [BarSeries], layout: AxesLayout) -> [(rect: Rect, color: RGBColor)] {
    guard !series.isEmpty else { return [] }
    let width = 0.8 / Double(series.count)
    var rects: [(Rect, RGBColor)] = []
    for (k, s) in series.enumerated() {
        for (c, v) in s.values.enumerated() where v.isFinite && c < categories.count {
            let x0 = Double(c) - 0.4 + Double(k) * width
            let a = layout.point(x: x0, y: 0), b = layout.point(x: x0 + width, y: v)
            rects.append((Rect(x: min(a.x, b.x), y: min(a.y, b.y), width: abs(b.x - a.x), height: abs(b.y - a.y)), s.color ?? .ink))
        }
    }
    return rects
}

/// Whether the segment `a`-`b` passes through `r` (Liang-Barsky clipping).
func segment(_ a: Point, _ b: Point, crosses r: Rect) -> Bool {
    guard a.x.isFinite, a.y.isFinite, b.x.isFinite, b.y.isFinite else { return false }
    var t0 = 0.0, t1 = 1.0
    let dx = b.x - a.x, dy = b.y - a.y
    for (p, q) in [(-dx, a.x - r.minX), (dx, r.maxX - a.x), (-dy, a.y - r.minY), (dy, r.maxY - a.y)] {
        if p == 0 {
            if q < 0 { return false }
        } else {
            let t = q / p
            if p < 0 { t0 = max(t0, t) } else { t1 = min(t1, t) }
            if t0 > t1 { return false }
        }
    }
    return true
}

/// The span of data along one axis while limits are gathered.
struct Extent {
    let scale: AxisScale
    var lo = Double.infinity, hi = -Double.infinity
    var stickyValues: [Double] = []

    init(scale: AxisScale) { self.scale = scale }

    mutating func add(_ values: [Double]) {
        for v in values where v.isFinite && (scale == .linear || v > 0) {
            lo = min(lo, v)
            hi = max(hi, v)
        }
    }

    mutating func add(_ v: Double, sticky: Bool) {
        guard scale == .linear || v > 0 else { return }
        add([v])
        if sticky { stickyValues.append(v) }
    }

    /// The limits: the data span with 5 % margins except at sticky ends; 0...1 (or 1...10 on a
    /// logarithmic axis) without data; a single value widened to a visible range.
    var limits: ClosedRange<Double> {
        guard lo <= hi else { return scale == .linear ? 0...1 : 1...10 }
        let stickyLo = stickyValues.contains(lo), stickyHi = stickyValues.contains(hi)
        if scale == .logarithmic {
            if lo == hi { return (lo / 2)...(hi * 2) }
            let f = pow(hi / lo, 0.05)
            return (stickyLo ? lo : lo / f)...(stickyHi ? hi : hi * f)
        }
        if lo == hi {
            // All zero on an axis that holds 0 as its floor (a loss that vanished): 0 to 1, not -0.5 to 0.5.
            if lo == 0 && stickyLo { return 0...1 }
            let d = lo == 0 ? 0.5 : abs(lo) * 0.1
            return (lo - d)...(hi + d)
        }
        let m = 0.05 * (hi - lo)
        return (stickyLo ? lo : lo - m)...(stickyHi ? hi : hi + m)
    }
}
