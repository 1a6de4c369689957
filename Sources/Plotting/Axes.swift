/// How data values map to positions along an axis.
public enum AxisScale: Sendable, Equatable {
    /// Equal steps in value are equal distances.
    case linear
    /// Equal ratios are equal distances (base 10); only positive values are shown.
    case logarithmic
}

/// The settings of one axis of an `Axes`.
public struct AxisOptions: Sendable {
    /// The axis label (units in brackets, for example "step" or "ERC loss"); `_`/`^` markup (see `TextMarkup`).
    public var label: String?
    /// Linear or logarithmic.
    public var scale: AxisScale = .linear
    /// The limits in data units; nil fits the data (with a 5 % margin for lines and points).
    public var limits: ClosedRange<Double>?
    /// Labels of categories at positions 0, 1, 2, ... (set by `bars` and `heatmap`); nil for a
    /// numeric axis. Crowded labels are rotated or only every k-th is shown.
    public var categories: [String]?
    /// Tick positions in data units; nil chooses nice 1-2-5 ticks.
    public var ticks: [Double]?
    /// Whether high values are at the left (x) or at the top (y). Heatmaps turn the y axis so
    /// that row 0 is on top.
    public var inverted = false
    /// Whether automatic limits always include 0.
    public var includesZero = false
    /// Whether tick labels are written (the axis label is written whenever set).
    public var showsTickLabels = true

    /// An axis with automatic limits and ticks.
    public init(label: String? = nil) { self.label = label }
}

/// Which grid lines an axes draws behind its data.
public enum GridLines: Sendable {
    /// Both for lines and points, the value axis for bars, none for heatmaps.
    case automatic
    /// No grid lines; vertical lines at the x ticks; horizontal lines at the y ticks; both.
    case none, x, y, both
}

/// The ratio of the axes' sides.
public enum Aspect: Sendable {
    /// Square cells when the axes holds a heatmap, otherwise fill the available space.
    case automatic
    /// Fill the space given to the axes.
    case fill
    /// One data unit is as long along x as along y.
    case equal
}

/// Where a legend goes.
public enum LegendPlacement: Sendable, Equatable {
    /// Inside, in the first corner (upper right, upper left, lower left, lower right) that covers
    /// no data; outside right when every corner would.
    case automatic
    /// Inside, in the corner where it covers the least data (possibly some).
    case best
    /// Inside, in this corner, whatever it covers.
    case upperRight, upperLeft, lowerLeft, lowerRight
    /// Outside the axes, to the right, top-aligned (more columns when the entries are many).
    case outsideRight
    /// Outside the axes, below the x axis label, centred, in as many columns as fit.
    case outsideBottom
    /// No legend.
    case none
}

/// A colour bar: the colour scale drawn as a bar with ticks and a label.
public struct Colorbar: Sendable {
    /// The label, written along the bar (for example "M[i,j]" or "cos"); `_`/`^` markup (see `TextMarkup`).
    public var label: String
    /// The scale to show; nil takes the scale of the first heatmap (of the axes, or of the figure
    /// for a shared colour bar).
    public var scale: ColorScale?

    /// A colour bar labelled `label` for `scale` (nil: the heatmap's).
    public init(label: String, scale: ColorScale? = nil) {
        self.label = label
        self.scale = scale
    }
}

/// One plotting area of a figure: data drawn in data coordinates, its axes, title, legend and an
/// optional colour bar. Obtain it from `Figure` (`figure.axes`, `figure[row, column]`).
public final class Axes {
    /// The title above the plotting area; `_`/`^` markup (see `TextMarkup`).
    public var title: String?
    /// The horizontal axis.
    public var x = AxisOptions()
    /// The vertical axis.
    public var y = AxisOptions()
    /// Grid lines behind the data.
    public var grid: GridLines = .automatic
    /// Where the legend goes (entries are the labelled series, in the order added).
    public var legend: LegendPlacement = .automatic
    /// A colour bar to the right of the plotting area, or nil.
    public var colorbar: Colorbar?
    /// The ratio of the sides.
    public var aspect: Aspect = .automatic
    /// Whether to draw all four sides of the frame; nil: only for heatmaps (left and bottom
    /// otherwise).
    public var boxed: Bool?
    /// Whether scatter markers are drawn as one image (at the figure's dpi) in PDF and SVG
    /// output, keeping the files small and quick to open; everything else stays vector. nil:
    /// when the axes holds more than `Axes.rasterThreshold` points.
    public var rasterizesPoints: Bool?
    /// The number of scatter points above which `rasterizesPoints` defaults to true.
    public static let rasterThreshold = 20_000

    /// The shorthand for `x.label`.
    public var xLabel: String? {
        get { x.label }
        set { x.label = newValue }
    }

    /// The shorthand for `y.label`.
    public var yLabel: String? {
        get { y.label }
        set { y.label = newValue }
    }

    enum Content {
        case line(LineSeries)
        case scatter(ScatterSeries)
        case bars(categories: [String], series: [BarSeries])
        case heatmap(Heatmap)
        case reference(ReferenceLine)
    }

    private(set) var contents: [Content] = []
    private var nextColor = 0

    init() {}

    /// Whether anything has been plotted or titled here (empty cells of a grid are not drawn).
    public var isEmpty: Bool { contents.isEmpty && title == nil }

    private func autoColor(_ color: RGBColor?) -> RGBColor {
        if let color { return color }
        defer { nextColor += 1 }
        return CategoricalPalette.color(nextColor)
    }

    private static func check(_ what: String, _ counts: [(String, Int)]) throws(PlotError) {
        guard let first = counts.first else { return }
        for (name, n) in counts where n != first.1 {
            throw .invalidData(what: what, reason: "\(first.1) \(first.0) but \(n) \(name)")
        }
    }

    /// Adds a line (with its markers and band).
    /// - Throws: `PlotError.invalidData` when `x`, `y` and the band differ in length.
    public func plot(_ series: LineSeries) throws(PlotError) {
        var counts = [("x values", series.x.count), ("y values", series.y.count)]
        if let band = series.band { counts += [("band lower values", band.lower.count), ("band upper values", band.upper.count)] }
        try Self.check("line \"\(series.label ?? "")\"", counts)
        var s = series
        s.color = autoColor(series.color)
        contents.append(.line(s))
    }

    /// Adds a line through `(x[i], y[i])` (data units).
    /// - Parameters:
    ///   - label: legend entry (nil: none); `_`/`^` markup (see `TextMarkup`).
    ///   - color: nil takes the next palette colour.
    ///   - marker: a marker at each point.
    ///   - style: the dash pattern.
    ///   - band: a shaded band `lower[i]...upper[i]` around the line (for example min-max), or nil.
    /// - Throws: `PlotError.invalidData` when the lengths differ.
    public func plot(
        x: [Double], y: [Double], label: String? = nil, color: RGBColor? = nil,
        marker: MarkerShape = .none, style: LineStyle = .solid,
        band: (lower: [Double], upper: [Double])? = nil
    ) throws(PlotError) {
        var s = LineSeries(x: x, y: y, label: label, color: color)
        s.marker = marker
        s.style = style
        s.band = band
        try plot(s)
    }

    /// Adds points drawn as markers.
    /// - Throws: `PlotError.invalidData` when `x` and `y` differ in length.
    public func scatter(_ series: ScatterSeries) throws(PlotError) {
        try Self.check("scatter \"\(series.label ?? "")\"", [("x values", series.x.count), ("y values", series.y.count)])
        var s = series
        s.color = autoColor(series.color)
        contents.append(.scatter(s))
    }

    /// Adds points coloured by category: one series per distinct category, category `c` in
    /// `CategoricalPalette.color(c)` and, past ten categories, `MarkerShape.forCategory(c)`.
    /// - Parameters:
    ///   - categories: the category of each point (for example its expert index), same length as `x`.
    ///   - label: the legend label of a category (nil: no legend entries).
    ///   - size: marker size in points; `opacity` fill opacity 0...1.
    /// - Throws: `PlotError.invalidData` when the lengths differ.
    public func scatter(
        x: [Double], y: [Double], categories: [Int], label: ((Int) -> String)? = nil,
        size: Double = 4, opacity: Double = 0.8
    ) throws(PlotError) {
        try Self.check("categorical scatter", [("x values", x.count), ("y values", y.count), ("categories", categories.count)])
        var members: [Int: [Int]] = [:]
        for (i, c) in categories.enumerated() { members[c, default: []].append(i) }
        let many = members.count > 10
        for c in members.keys.sorted() {
            let idx = members[c] ?? []
            var s = ScatterSeries(
                x: idx.map { x[$0] }, y: idx.map { y[$0] }, label: label?(c),
                color: CategoricalPalette.color(c))
            s.size = size
            s.opacity = opacity
            s.marker = many ? MarkerShape.forCategory(c) : .circle
            contents.append(.scatter(s))
        }
    }

    /// Adds a bar chart: for each category a group of bars, one per series, side by side.
    /// The x axis becomes categorical with `categories` as tick labels.
    /// - Throws: `PlotError.invalidData` when a series does not have one value per category.
    public func bars(categories: [String], series: [BarSeries]) throws(PlotError) {
        var filled: [BarSeries] = []
        for s in series {
            try Self.check("bars \"\(s.label ?? "")\"", [("categories", categories.count), ("values", s.values.count)])
            var b = s
            b.color = autoColor(s.color)
            filled.append(b)
        }
        if x.categories == nil { x.categories = categories }
        contents.append(.bars(categories: categories, series: filled))
    }

    /// Adds a heatmap of `values` (`values[i][j]` is row i, column j; row 0 on top). The axes
    /// get categorical ticks (`columnLabels`, `rowLabels`, default "0", "1", ...), a y axis
    /// turned so that row 0 is on top, and by default square cells.
    /// - Parameters:
    ///   - scale: how values become colours (see `ColorScale.fitting`, `ColorScale.symmetric`).
    ///   - annotation: numbers written in the cells, in black or white for contrast; nil for none.
    ///   - diagonalOutline: the colour of an outline around the cells `(i, i)`; nil for none.
    /// - Throws: `PlotError.invalidData` for an empty or ragged matrix or labels of the wrong count.
    public func heatmap(
        _ values: [[Double]], scale: ColorScale, annotation: CellAnnotation? = nil,
        diagonalOutline: RGBColor? = nil, rowLabels: [String]? = nil,
        columnLabels: [String]? = nil
    ) throws(PlotError) {
        let columns = values.first?.count ?? 0
        guard columns > 0, columns <= 32_767, values.count <= 32_767 else {
            throw .invalidData(what: "heatmap", reason: "\(values.count) x \(columns) cells; need 1...32767 of each")
        }
        for (i, row) in values.enumerated() where row.count != columns {
            throw .invalidData(what: "heatmap", reason: "row 0 has \(columns) values but row \(i) has \(row.count)")
        }
        try Self.check("heatmap row labels", [("rows", values.count), ("row labels", rowLabels?.count ?? values.count)])
        try Self.check("heatmap column labels", [("columns", columns), ("column labels", columnLabels?.count ?? columns)])
        x.categories = columnLabels ?? (0..<columns).map(String.init)
        y.categories = rowLabels ?? (0..<values.count).map(String.init)
        y.inverted = true
        contents.append(
            .heatmap(
                Heatmap(
                    values: values, scale: scale, annotation: annotation,
                    diagonalOutline: diagonalOutline)))
    }

    /// Adds a straight line across the axes at a data value (a threshold, a reference level).
    public func referenceLine(_ line: ReferenceLine) { contents.append(.reference(line)) }

    /// The first heatmap's colour scale, if any.
    var heatmapScale: ColorScale? {
        for case .heatmap(let h) in contents { return h.scale }
        return nil
    }

    var hasHeatmap: Bool { heatmapScale != nil }

    /// The legend entries, in the order the series were added.
    var legendEntries: [LegendEntry] {
        var entries: [LegendEntry] = []
        for content in contents {
            switch content {
            case .line(let s):
                guard let label = s.label else { continue }
                entries.append(
                    LegendEntry(
                        label: label,
                        swatch: .line(
                            color: s.color ?? .ink, width: s.width, style: s.style, marker: s.marker,
                            markerSize: s.markerSize, band: s.band == nil ? nil : s.bandOpacity)))
            case .scatter(let s):
                guard let label = s.label else { continue }
                entries.append(
                    LegendEntry(
                        label: label,
                        swatch: .marker(
                            shape: s.marker, color: (s.color ?? .ink).withAlpha(max(s.opacity, 0.6)),
                            size: max(s.size, 5), edge: s.edgeColor, edgeWidth: s.edgeWidth)))
            case .bars(_, let series):
                for s in series {
                    if let label = s.label { entries.append(LegendEntry(label: label, swatch: .patch(color: s.color ?? .ink))) }
                }
            case .reference(let r):
                guard let label = r.label else { continue }
                entries.append(
                    LegendEntry(
                        label: label,
                        swatch: .line(
                            color: r.color, width: r.width, style: r.style, marker: .none, markerSize: 0, band: nil)))
            case .heatmap:
                continue
            }
        }
        return entries
    }
}
