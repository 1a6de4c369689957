/// The shape of a marker drawn at a data point.
public enum MarkerShape: String, Sendable, CaseIterable {
    /// No marker; filled shapes (star: five points; triangles point up or down); `plus` and
    /// `cross` are drawn as strokes.
    case none, circle, square, diamond, triangleUp, triangleDown, star, plus, cross

    /// Shapes drawn as strokes only (no fill).
    var isStrokedOnly: Bool { self == .plus || self == .cross }

    /// The filled shapes in the order used to tell categories apart beyond ten colours:
    /// category `i` gets shape `i / 10` (circle for the first ten, square for the next ten, ...).
    public static func forCategory(_ index: Int) -> MarkerShape {
        let filled: [MarkerShape] = [.circle, .square, .triangleUp, .diamond, .triangleDown, .star]
        return filled[(max(0, index) / 10) % filled.count]
    }
}

/// The dash pattern of a line.
public enum LineStyle: Sendable, Equatable {
    /// Unbroken; long dashes; dots; dash and dot alternating.
    case solid, dashed, dotted, dashDot

    /// On-off lengths for a line `width` points wide (matplotlib's proportions), in points.
    func dashes(width: Double) -> [Double] {
        let w = max(width, 0.75)
        switch self {
        case .solid: return []
        case .dashed: return [3.7 * w, 1.6 * w]
        case .dotted: return [1 * w, 1.65 * w]
        case .dashDot: return [6.4 * w, 1.6 * w, 1 * w, 1.6 * w]
        }
    }
}

/// A line through `(x[i], y[i])`, with optional markers and an optional shaded band.
public struct LineSeries: Sendable {
    /// Positions along x and y, in data units; equal lengths. Non-finite points break the line.
    public var x, y: [Double]
    /// The name shown in the legend; nil keeps the series out of the legend. `_`/`^` markup (see `TextMarkup`).
    public var label: String?
    /// The colour; nil takes the next colour of `CategoricalPalette` in this axes.
    public var color: RGBColor?
    /// Line width in points (0 draws markers only).
    public var width: Double = 1.5
    /// The dash pattern.
    public var style: LineStyle = .solid
    /// The marker at each point (`.none` for a plain line).
    public var marker: MarkerShape = .none
    /// Marker size in points (diameter of a circle marker).
    public var markerSize: Double = 5
    /// A shaded band from `band.lower[i]` to `band.upper[i]` at `x[i]` (for example the min-max
    /// range around a mean), drawn in the line colour at `bandOpacity`; same length as `x`.
    public var band: (lower: [Double], upper: [Double])?
    /// The opacity of the band, 0...1.
    public var bandOpacity: Double = 0.2

    /// A line through `(x[i], y[i])` (data units).
    public init(x: [Double], y: [Double], label: String? = nil, color: RGBColor? = nil) {
        self.x = x
        self.y = y
        self.label = label
        self.color = color
    }
}

/// Points at `(x[i], y[i])` drawn as markers.
public struct ScatterSeries: Sendable {
    /// Positions along x and y, in data units; equal lengths. Non-finite points are skipped.
    public var x, y: [Double]
    /// The name shown in the legend; nil keeps the series out of the legend.
    public var label: String?
    /// The fill colour; nil takes the next colour of `CategoricalPalette` in this axes.
    public var color: RGBColor?
    /// One fill colour per point (for example `scale.color(for: value)` to colour points by a
    /// value, with an `Axes.colorbar` for that scale); overrides `color` when it has one colour
    /// per point.
    public var pointColors: [RGBColor]?
    /// The marker shape.
    public var marker: MarkerShape = .circle
    /// Marker size in points (diameter of a circle marker).
    public var size: Double = 4
    /// Fill opacity, 0...1 (lower it when thousands of points overlap).
    public var opacity: Double = 1
    /// The outline colour, nil for none (highlighted points: black).
    public var edgeColor: RGBColor?
    /// Outline width in points.
    public var edgeWidth: Double = 0.6
    /// Drawing order among the axes' series: higher is drawn later, on top (ties keep the order
    /// in which the series were added).
    public var zOrder: Int = 0

    /// Points at `(x[i], y[i])` (data units).
    public init(x: [Double], y: [Double], label: String? = nil, color: RGBColor? = nil) {
        self.x = x
        self.y = y
        self.label = label
        self.color = color
    }

    /// The look of highlighted points on top of a crowd (for example router rows among neurons):
    /// a larger marker with a black outline, drawn above all series with a lower `zOrder`.
    /// With empty `x` and `y` it is a legend entry only (say, a white star labelled "router row"
    /// when each highlighted point has its category's colour).
    public static func highlighted(
        x: [Double], y: [Double], label: String?, color: RGBColor?,
        marker: MarkerShape = .star, size: Double = 9
    ) -> ScatterSeries {
        var s = ScatterSeries(x: x, y: y, label: label, color: color)
        s.marker = marker
        s.size = size
        s.edgeColor = .black
        s.edgeWidth = 0.7
        s.zOrder = 10
        return s
    }
}

/// One set of bars in a bar chart: one value per category, drawn side by side with the other sets.
public struct BarSeries: Sendable {
    /// The bar heights, one per category, in data units (negative bars hang below 0).
    public var values: [Double]
    /// The name shown in the legend; nil keeps the set out of the legend.
    public var label: String?
    /// The fill colour; nil takes the next colour of `CategoricalPalette` in this axes.
    public var color: RGBColor?

    /// Bars of heights `values` (data units), one per category.
    public init(values: [Double], label: String? = nil, color: RGBColor? = nil) {
        self.values = values
        self.label = label
        self.color = color
    }
}

/// A straight line across the whole axes at a fixed data value (a threshold, a reference level).
public struct ReferenceLine: Sendable {
    /// Horizontal (at a y value) or vertical (at an x value).
    public enum Orientation: Sendable { case horizontal, vertical }
    /// Which way the line runs.
    public var orientation: Orientation
    /// The y (horizontal) or x (vertical) value, in data units.
    public var value: Double
    /// The name shown in the legend; nil keeps it out of the legend.
    public var label: String?
    /// The colour.
    public var color: RGBColor = .ink
    /// Line width in points.
    public var width: Double = 1
    /// The dash pattern.
    public var style: LineStyle = .dashed

    /// A line at `value` (data units).
    public init(
        _ orientation: Orientation, at value: Double, label: String? = nil, color: RGBColor = .ink,
        style: LineStyle = .dashed
    ) {
        self.orientation = orientation
        self.value = value
        self.label = label
        self.color = color
        self.style = style
    }
}

/// Numbers written in the cells of a heatmap.
public struct CellAnnotation: Sendable {
    /// Digits after the decimal point.
    public var decimals: Int
    /// The largest font size in points; the text shrinks to fit a cell, down to 5 pt, and cells
    /// smaller than that stay unannotated.
    public var maxFontSize: Double

    /// Numbers with `decimals` digits after the point, at most `maxFontSize` points tall.
    public init(decimals: Int = 2, maxFontSize: Double = 8) {
        self.decimals = decimals
        self.maxFontSize = maxFontSize
    }
}

/// A matrix drawn as coloured cells: row 0 on top, column 0 on the left; cell `(i, j)` is centred
/// at data coordinates `x = j`, `y = i`.
public struct Heatmap: Sendable {
    /// The values, `rows` arrays of `columns` values each (NaN cells get the map's `badColor`).
    public var values: [[Double]]
    /// How values become colours.
    public var scale: ColorScale
    /// Numbers in the cells, or nil.
    public var annotation: CellAnnotation?
    /// The colour of an outline around the diagonal cells `(i, i)`, or nil for none.
    public var diagonalOutline: RGBColor?

    /// Number of rows.
    public var rows: Int { values.count }
    /// Number of columns.
    public var columns: Int { values.first?.count ?? 0 }
}

/// One entry of a legend: a label and the look of its series.
struct LegendEntry: Sendable {
    enum Swatch: Sendable {
        case line(color: RGBColor, width: Double, style: LineStyle, marker: MarkerShape, markerSize: Double, band: Double?)
        case marker(shape: MarkerShape, color: RGBColor, size: Double, edge: RGBColor?, edgeWidth: Double)
        case patch(color: RGBColor)
    }
    var label: String
    var swatch: Swatch
}
