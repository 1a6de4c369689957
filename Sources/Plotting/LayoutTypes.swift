import Foundation

/// What a text on the figure is.
public enum TextRole: Sendable, Equatable {
    /// The suptitle; an axes title; an axis label; a tick label; a colour bar's label; a colour
    /// bar's tick label; a legend entry; a number in a heatmap cell.
    case figureTitle, axesTitle, axisLabel, tickLabel, colorbarLabel, colorbarTickLabel, legendLabel, cellAnnotation
}

/// A text as placed on the figure: its characters, its role and its bounding box.
public struct PlacedText: Sendable {
    /// The characters without markup (`"ε_i"` reads `"εi"`).
    public var text: String { rich.plainText }
    /// What the text is.
    public let role: TextRole
    /// The bounding box (after rotation), in points from the top-left corner.
    public var frame: Rect { Rect(enclosing: corners) }
    /// The corners of the text's own box, turned with it, in points: top-left, top-right,
    /// bottom-right, bottom-left as read. For rotated texts this is tighter than `frame`.
    public let corners: [Point]
    /// Rotation in degrees, counter-clockwise.
    public let rotation: Double

    let rich: RichText
    let font: Font
    let point: Point
    let anchor: TextAnchor
    let color: RGBColor
}

/// Where an axis' ticks went and what they say.
public struct AxisLayout: Sendable {
    /// The data values at the two ends (low...high, whichever end of the axis they are drawn at).
    public let limits: ClosedRange<Double>
    /// Linear or logarithmic.
    public let scale: AxisScale
    /// Whether high values are drawn at the left (x) or top (y).
    public let inverted: Bool
    /// The tick positions in data units (for categorical axes: the indices of the labelled
    /// categories, every k-th when crowded).
    public let ticks: [Double]
    /// One label per tick; empty strings where tick labels are hidden (shared axes).
    public let labels: [String]
    /// Unlabelled minor tick positions in data units (2...9 times each power of ten on a
    /// logarithmic axis; none on a linear one).
    public var minorTicks: [Double] = []
    /// Rotation of the tick labels in degrees (0, 45 or 90).
    public let labelRotation: Double

    /// Where `value` falls along the axis: 0 at the low limit, 1 at the high limit (NaN when the
    /// value cannot be shown, for example 0 on a logarithmic axis).
    public func fraction(of value: Double) -> Double {
        switch scale {
        case .linear:
            return (value - limits.lowerBound) / (limits.upperBound - limits.lowerBound)
        case .logarithmic:
            guard value > 0, limits.lowerBound > 0 else { return .nan }
            return log10(value / limits.lowerBound) / log10(limits.upperBound / limits.lowerBound)
        }
    }
}

/// Where a colour bar went and what it shows.
public struct ColorbarLayout: Sendable {
    /// The bar itself (low values at the bottom), in points.
    public let frame: Rect
    /// The colour scale the bar shows; `scale.range` is its span in data units.
    public let scale: ColorScale
    /// Tick positions in data units, inside `scale.range`.
    public let ticks: [Double]
    /// One label per tick.
    public let labels: [String]
    /// The label written along the bar.
    public let label: String

    /// The vertical position (points) of `value` on the bar.
    public func y(of value: Double) -> Double {
        frame.maxY - min(max(scale.position(of: value), 0), 1) * frame.height
    }
}

/// Where a legend went.
public struct LegendLayout: Sendable {
    /// The legend box, in points.
    public let frame: Rect
    /// The placement chosen (never `.automatic`/`.best`: the position these resolved to; figure
    /// legends report `.outsideRight` or `.outsideBottom`).
    public let placement: LegendPlacement
    /// The entries' labels (markup removed), in order.
    public var labels: [String] { entries.map { RichText(markup: $0.entry.label).plainText } }
    /// Columns of entries.
    public let columns: Int

    let entries: [(entry: LegendEntry, swatch: Rect)]
}

/// Where one axes went: its plotting area, axes, colour bar and legend.
public struct AxesLayout: Sendable {
    /// Whether the axes is drawn (empty axes of a grid are not).
    public let isVisible: Bool
    /// The plotting area (inside the frame lines), in points from the top-left corner.
    public let frame: Rect
    /// The horizontal axis.
    public let x: AxisLayout
    /// The vertical axis.
    public let y: AxisLayout
    /// The colour bar of this axes, if any.
    public let colorbar: ColorbarLayout?
    /// The legend of this axes, if any.
    public let legend: LegendLayout?

    /// The figure position (points) of the data point `(x, y)`; for a heatmap, `(j, i)` is the
    /// centre of cell row i, column j.
    public func point(x: Double, y: Double) -> Point {
        var fx = self.x.fraction(of: x), fy = self.y.fraction(of: y)
        if self.x.inverted { fx = 1 - fx }
        if self.y.inverted { fy = 1 - fy }
        return Point(x: frame.minX + fx * frame.width, y: frame.maxY - fy * frame.height)
    }
}

/// The complete placement of a figure, in points (1/72 inch) from its top-left corner.
/// Multiply by `dpi / 72` for PNG pixels.
public struct FigureLayout: Sendable {
    /// Width and height in points.
    public let width, height: Double
    /// PNG pixels per inch.
    public let dpi: Double
    /// One layout per axes, in the order of `Figure.axes`.
    public let axes: [AxesLayout]
    /// The colour bar shared by the figure, if any.
    public let colorbar: ColorbarLayout?
    /// The legend shared by the figure, if any.
    public let legend: LegendLayout?
    /// Every text drawn, with its bounding box.
    public let texts: [PlacedText]

    /// The PNG pixel (column, row) containing the point `p`.
    public func pixel(_ p: Point) -> (x: Int, y: Int) {
        (Int((p.x * dpi / 72).rounded(.down)), Int((p.y * dpi / 72).rounded(.down)))
    }
}
