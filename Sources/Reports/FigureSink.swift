import Analysis
import Checkpoints
import Foundation
import Plotting

/// One figure of a report: its file stem, title, and a one-line reading of what it shows.
public struct ReportFigure: Sendable {
    public var stem: String
    public var title: String
    public var reading: String
    public var files: [String]
    /// Wider than tall by far (side-by-side panels): the page gives it a whole row.
    public var wide: Bool = false
    /// Values under the pointer, as JSON for the page's script (heatmap cells, t-SNE points).
    public var hover: String?
}

/// What the page shows under the pointer over a figure: the cells of a heatmap or the points of a map.
public enum Hover: Sendable {
    /// The heatmap in axes `axes`: `values[i][j]`; `title` names the panel.
    case heatmap(
        axes: Int, values: [[Double]], rowName: String, columnName: String, valueName: String,
        rowLabels: [String]? = nil, title: String? = nil)
    /// Points in axes `axes` at data coordinates `x`, `y`, each with its text.
    case points(axes: Int, x: [Double], y: [Double], text: [String])
}

/// How a report writes its figures.
public struct FigureSettings {
    /// Output formats of every figure.
    public var formats: [OutputFormat]
    /// Pixels per inch of PNG figures.
    public var dpi: Double
    /// Figure width in inches (the height follows in proportion), or nil for each figure's own.
    public var width: Double?
    /// Factor on every font size.
    public var fontScale: Double
    /// Provenance recorded in PNG text chunks (tool version, command line, checkpoint).
    public var provenance: [String: String]
    /// Called with each file written.
    public var progress: (String) -> Void

    public init(
        formats: [OutputFormat] = [.png], dpi: Double = 150, width: Double? = nil, fontScale: Double = 1,
        provenance: [String: String] = [:], progress: @escaping (String) -> Void = { _ in }
    ) {
        self.formats = formats; self.dpi = dpi; self.width = width; self.fontScale = fontScale
        self.provenance = provenance; self.progress = progress
    }

    /// The most panels a figure puts side by side at this width: 2 below 5 inches, else `wide`.
    public func maxColumns(_ wide: Int) -> Int { (width ?? 99) < 5 ? min(2, wide) : wide }

    /// Named widths: `paper` a single journal column (3.3 in), `wide` a full page width (6.9 in).
    public static let presetWidths: [String: Double] = ["paper": 3.3, "wide": 6.9]

    /// Gives `figure` the width asked (height in proportion, at least 1.7 in per row of panels),
    /// the dpi, and fonts scaled by `fontScale`; below 5 inches legends move from the right to
    /// below, and text wider than the figure shrinks to fit (to 60 % at most).
    public func fit(_ figure: Figure) {
        figure.dpi = dpi
        if let w = width, w > 0, w != figure.width {
            let s = w / figure.width
            // A map drawn with equal axes needs its height; other panels at least 1.7 in a row.
            let square = figure.axes.contains { $0.aspect == .equal }
            figure.height = max(figure.height * s, 1.7 * Double(figure.rows) + 0.4, square ? 1.3 * w : 0)
            figure.width = w
            // Panels side by side in a narrow figure: smaller text (to 60 %), or nothing fits.
            let perPanel = w / Double(figure.columns)
            if perPanel < 2.4 { Self.scaleFonts(figure, max(0.6, perPanel / 2.4)) }
        }
        if fontScale != 1 { Self.scaleFonts(figure, fontScale) }
        guard width != nil else { return }
        // A narrow figure: legends that went to the right go below, and text wider than the
        // figure is made smaller (down to 60 %) rather than cut off.
        if figure.width < 5 {
            let l = figure.layout()
            for (k, a) in l.axes.enumerated() where a.legend?.placement == .outsideRight {
                // (A map with equal axes keeps its legend inside: below it, the map shrank to a stamp.)
                figure.axes[k].legend = figure.axes[k].aspect == .equal ? .best : .outsideBottom
            }
            if figure.legend == .right { figure.legend = .bottom }
        }
        // Titles wider than their panel's share of the width (or than the figure) shrink every text.
        var l = figure.layout()
        if figure.width < 5 {
            // A long subtitle over a map with equal axes squeezes the map to nothing in the layout;
            // the caption carries the same numbers.
            for (k, ax) in figure.axes.enumerated() where ax.aspect == .equal && (l.axes[k].frame.width < 0.5 * l.width / Double(figure.columns)) {
                ax.title = nil
            }
            l = figure.layout()
        }
        let share = l.width / Double(figure.columns)
        var factor = 1.0
        for t in l.texts {
            if t.role == .axesTitle && t.frame.width > 0.95 * share { factor = min(factor, 0.95 * share / t.frame.width) }
            if t.role == .figureTitle && t.frame.width > 0.95 * l.width { factor = min(factor, 0.95 * l.width / t.frame.width) }
        }
        if factor < 1 { Self.scaleFonts(figure, max(0.55, factor)) }
    }

    static func scaleFonts(_ figure: Figure, _ f: Double) {
        var st = figure.style
        st.titleSize *= f; st.axesTitleSize *= f; st.labelSize *= f
        st.tickLabelSize *= f; st.legendSize *= f
        figure.style = st
    }
}

/// Saves figures of a report folder in every requested format and keeps the list for the page.
final class FigureSink {
    let folder: String, settings: FigureSettings
    private(set) var figures: [ReportFigure] = []

    init(folder: String, settings: FigureSettings) throws {
        self.folder = folder; self.settings = settings
        try AtomicOutput.makeFolder(folder + "/figures")
        try AtomicOutput.makeFolder(folder + "/tables")
    }

    /// Writes `figure` as `figures/<stem>.<ext>` for each format (nothing when nil).
    /// A figure title as page text: the mathtext of figures (`m_{data}`, `TopK_{router}`) without
    /// its braces (`m_data`), since the page shows titles as plain text.
    static func plainText(_ title: String) -> String {
        title.replacingOccurrences(of: "_{", with: "_").replacingOccurrences(of: "^{", with: "^").replacingOccurrences(of: "}", with: "")
    }

    func add(_ stem: String, _ figure: Figure?, reading: String, hover: [Hover] = []) throws {
        guard let figure else { return }
        settings.fit(figure)
        var files: [String] = []
        var layout: FigureLayout?
        // The page shows PNG or SVG; a PDF-only request still gets a PNG for it.
        let formats = settings.formats.contains(.png) || settings.formats.contains(.svg) ? settings.formats : [.png] + settings.formats
        for format in formats {
            let rel = "figures/\(stem).\(format.rawValue)"
            var prov = settings.provenance
            prov["moe-inspect:figure"] = stem
            let l = try figure.save(to: folder + "/" + rel, provenance: prov)
            if layout == nil { layout = l }
            files.append(rel)
            settings.progress(rel)
        }
        figures.append(
            ReportFigure(
                stem: stem, title: Self.plainText(figure.title ?? stem), reading: reading, files: files,
                wide: figure.width > 1.7 * figure.height,
                hover: layout.flatMap { Self.hoverJSON(hover, layout: $0) }))
    }

    /// `hover` placed on the drawn figure: positions as fractions of the image's width and height.
    static func hoverJSON(_ hover: [Hover], layout: FigureLayout) -> String? {
        func r(_ v: Double, _ digits: Int = 4) -> JSONValue {
            guard v.isFinite else { return .null }
            return .number(Double(String(format: "%.\(digits)g", v)) ?? v)
        }
        var items: [JSONValue] = []
        for h in hover {
            switch h {
            case let .heatmap(k, values, rowName, columnName, valueName, rowLabels, title):
                guard k < layout.axes.count, layout.axes[k].isVisible, let cols = values.first?.count, cols > 0 else { continue }
                let f = layout.axes[k].frame
                var pairs: [(String, JSONValue)] = [
                    ("k", .string("h")),
                    ("box", .array([f.minX / layout.width, f.minY / layout.height, f.width / layout.width, f.height / layout.height].map { r($0, 5) })),
                    ("rows", .int(values.count)), ("cols", .int(cols)),
                    ("r", .string(rowName)), ("c", .string(columnName)), ("n", .string(valueName)),
                    ("v", .array(values.flatMap { $0 }.map { r($0) })),
                ]
                if let rowLabels { pairs.append(("rl", .array(rowLabels.map { .string($0) }))) }
                if let title { pairs.append(("t", .string(title))) }
                items.append(.object(pairs))
            case let .points(k, x, y, text):
                guard k < layout.axes.count, layout.axes[k].isVisible else { continue }
                let a = layout.axes[k]
                var pts: [JSONValue] = []
                for i in x.indices where i < y.count && i < text.count && x[i].isFinite && y[i].isFinite {
                    let p = a.point(x: x[i], y: y[i])
                    pts.append(.array([r(p.x / layout.width, 5), r(p.y / layout.height, 5), .string(text[i])]))
                }
                items.append(.object([("k", .string("p")), ("p", .array(pts))]))
            }
        }
        return items.isEmpty ? nil : JSONValue.array(items).serialized()
    }
}
