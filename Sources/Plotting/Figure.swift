/// Font sizes and spacings of a figure, in points (1/72 inch).
///
/// The defaults follow the habits of journal figures: 9 pt tick labels, 10 pt axis labels,
/// 11 pt axes titles and a 12 pt figure title, all in DejaVu Sans.
public struct PlotStyle: Sendable {
    /// The figure title (suptitle).
    public var titleSize = 12.0
    /// Titles of single axes.
    public var axesTitleSize = 11.0
    /// Axis labels and colour bar labels.
    public var labelSize = 10.0
    /// Tick labels.
    public var tickLabelSize = 9.0
    /// Legend entries.
    public var legendSize = 9.0
    /// Blank space around the whole figure.
    public var margin = 8.0
    /// Blank space between neighbouring axes of a grid (beyond their labels).
    public var spacing = 12.0
    /// Length of tick marks, drawn outwards.
    public var tickLength = 3.5
    /// Width of the frame lines and tick marks.
    public var frameWidth = 0.8

    /// The default style.
    public init() {}
}

/// Where a legend shared by the whole figure goes.
public enum FigureLegendPlacement: Sendable {
    /// To the right of the grid of axes, vertically centred.
    case right
    /// Below the grid of axes, centred, in as many columns as fit.
    case bottom
}

/// A figure: a page of `width x height` inches holding a grid of `rows x columns` axes, an
/// optional title, an optional colour bar and legend shared by all axes. Draw with `save(to:)`.
///
/// ```swift
/// let figure = Figure(width: 6.4, height: 4.8)
/// figure.title = "Activation matrix, layer 3"
/// let ax = figure.axes[0]
/// try ax.heatmap(m, scale: .fitting(m.joined()), diagonalOutline: .white)
/// ax.colorbar = Colorbar(label: "M[i,j]")
/// try figure.save(to: "m.png", provenance: ["Software": "moe-inspect 0.1"])
/// ```
public final class Figure {
    /// Width in inches.
    public var width: Double
    /// Height in inches.
    public var height: Double
    /// Pixels per inch of PNG output (PDF and SVG are vector and ignore it).
    public var dpi: Double
    /// The title above all axes (suptitle); `_`/`^` markup (see `TextMarkup`). Also the PDF title and the
    /// SVG `<title>`.
    public var title: String?
    /// Rows of the axes grid.
    public let rows: Int
    /// Columns of the axes grid.
    public let columns: Int
    /// The axes, row by row (`axes[row * columns + column]`).
    public let axes: [Axes]
    /// Whether all axes share their x limits (union of the data); x tick labels then appear
    /// only on the bottom row.
    public var sharesX = false
    /// Whether all axes share their y limits (union of the data); y tick labels then appear
    /// only in the left column.
    public var sharesY = false
    /// A colour bar for the whole grid, to its right (small multiples on one colour scale: give
    /// every heatmap the same `ColorScale`). Its scale defaults to the first heatmap's.
    public var colorbar: Colorbar?
    /// A legend for the whole figure gathering the distinct labels of all axes (axes then draw
    /// no legend of their own), or nil.
    public var legend: FigureLegendPlacement?
    /// Font sizes and spacings.
    public var style = PlotStyle()

    /// A figure of `width x height` inches (default 6.4 x 4.8, matplotlib's) at `dpi` pixels per
    /// inch for PNG, holding a `rows x columns` grid of empty axes (at least 1 x 1).
    public init(width: Double = 6.4, height: Double = 4.8, dpi: Double = 150, rows: Int = 1, columns: Int = 1) {
        self.width = width > 0 ? width : 6.4
        self.height = height > 0 ? height : 4.8
        self.dpi = dpi > 0 ? dpi : 150
        self.rows = max(1, rows)
        self.columns = max(1, columns)
        axes = (0..<(self.rows * self.columns)).map { _ in Axes() }
    }

    /// The axes in `row`, `column` (both counted from 0, clamped to the grid).
    public subscript(row: Int, column: Int) -> Axes {
        axes[min(max(row, 0), rows - 1) * columns + min(max(column, 0), columns - 1)]
    }

    /// Where everything goes: plotting areas, limits, ticks and tick labels, colour bars,
    /// legends and every text with its bounding box, in points from the top-left corner.
    public func layout() -> FigureLayout { LayoutEngine(figure: self).run() }

    /// Draws the figure into the file `path`, its format chosen by the extension: `.png`
    /// (`dpi` pixels per inch, written through libpng with the provenance as text chunks),
    /// `.pdf` or `.svg` (vector). The file is written under a temporary name in the same folder
    /// and renamed into place.
    /// - Parameters:
    ///   - provenance: key-value records stored in the file, for example
    ///     `["Software": "moe-inspect 0.3", "moe-inspect:command": "...", "moe-inspect:checkpoint": path]`.
    ///     PNG: one tEXt chunk each (iTXt when the value is not printable ASCII), plus "Title"
    ///     (the figure title) unless given; PDF: "Title" or the figure title as Title,
    ///     "Software" as Creator, all others as Keywords (`key: value; ...`); SVG: `<title>` and a
    ///     `<desc>` with one `key: value` line each. Keys are 1-79 printable ASCII characters.
    /// - Returns: the layout that was drawn.
    /// - Throws: `PlotError` naming the file.
    @discardableResult
    public func save(to path: String, provenance: [String: String] = [:]) throws(PlotError) -> FigureLayout {
        guard let format = OutputFormat(path: path) else { throw .unsupportedFormat(file: path) }
        let layout = layout()
        let bytes = try Output.encode(self, layout: layout, format: format, provenance: provenance, file: path)
        try Output.writeAtomically(bytes, to: path)
        return layout
    }

    /// The encoded file contents of the figure in `format`, without writing anything.
    /// - Throws: `PlotError` (with `name` as the file name in messages).
    public func encoded(
        as format: OutputFormat, provenance: [String: String] = [:],
        name: String = "figure"
    ) throws(PlotError) -> [UInt8] {
        try Output.encode(self, layout: layout(), format: format, provenance: provenance, file: name)
    }
}

/// The file formats a figure can be written in.
public enum OutputFormat: String, Sendable, CaseIterable {
    /// Raster, 8-bit RGB, `dpi` pixels per inch.
    case png
    /// Vector, fonts embedded.
    case pdf
    /// Vector, text as glyph outlines.
    case svg

    /// The format named by the extension of `path` (any case), or nil.
    public init?(path: String) {
        guard let dot = path.lastIndex(of: "."), !path[dot...].contains("/") else { return nil }
        self.init(rawValue: path[path.index(after: dot)...].lowercased())
    }
}
