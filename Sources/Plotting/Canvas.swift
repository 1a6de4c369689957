import CCairo
import Foundation

/// A position on the figure, in points (1/72 inch) from the top-left corner, y growing downwards.
public struct Point: Sendable, Equatable {
    /// Points from the left edge.
    public var x: Double
    /// Points from the top edge.
    public var y: Double

    /// The point `(x, y)` in points.
    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// An axis-aligned rectangle on the figure, in points from the top-left corner, y downwards.
public struct Rect: Sendable, Equatable {
    /// Left edge, top edge, width and height, in points.
    public var x, y, width, height: Double

    /// The rectangle with top-left corner `(x, y)` and the given size, in points.
    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    /// Left edge, in points.
    public var minX: Double { x }
    /// Right edge, in points.
    public var maxX: Double { x + width }
    /// Top edge, in points.
    public var minY: Double { y }
    /// Bottom edge, in points.
    public var maxY: Double { y + height }
    /// The centre, in points.
    public var center: Point { Point(x: x + width / 2, y: y + height / 2) }

    /// Whether `p` lies inside or on the border.
    public func contains(_ p: Point) -> Bool { p.x >= minX && p.x <= maxX && p.y >= minY && p.y <= maxY }

    /// Whether the two rectangles share interior area.
    public func intersects(_ o: Rect) -> Bool { minX < o.maxX && o.minX < maxX && minY < o.maxY && o.minY < maxY }

    /// The smallest rectangle holding all `points` (empty at the origin when there are none).
    init(enclosing points: [Point]) {
        let xs = points.map(\.x), ys = points.map(\.y)
        let x0 = xs.min() ?? 0, y0 = ys.min() ?? 0
        self.init(x: x0, y: y0, width: (xs.max() ?? x0) - x0, height: (ys.max() ?? y0) - y0)
    }

    /// The smallest rectangle holding both.
    func union(_ o: Rect) -> Rect {
        let x0 = min(minX, o.minX), y0 = min(minY, o.minY)
        return Rect(x: x0, y: y0, width: max(maxX, o.maxX) - x0, height: max(maxY, o.maxY) - y0)
    }
}

/// How a text is placed relative to its anchor point, in the text's own (unrotated) frame.
struct TextAnchor: Sendable {
    enum Horizontal { case left, center, right }
    /// `middle` centres digits and capitals (half the cap height above the baseline).
    enum Vertical { case top, middle, baseline, bottom }
    var horizontal: Horizontal
    var vertical: Vertical

    static let center = TextAnchor(horizontal: .center, vertical: .middle)
}

/// Font size (points) and weight of a text.
struct Font: Sendable {
    var size: Double
    var bold = false
}

/// A text cut into runs on the baseline, in subscript or in superscript.
///
/// Markup: `_x` or `_{...}` is a subscript, `^x` or `^{...}` a superscript; `\_`, `\^`, `\\`,
/// `\{`, `\}` are the literal characters. `"ε_i"` is ε with subscript i, `"10^{-3}"` ten to the
/// minus three. Greek letters and other symbols are written as themselves (UTF-8).
struct RichText: Equatable, Sendable {
    enum Shift: Sendable { case none, sub, sup }
    struct Run: Equatable, Sendable {
        var text: String
        var shift: Shift
    }
    var runs: [Run]

    /// The text without markup.
    init(plain: String) { runs = plain.isEmpty ? [] : [Run(text: plain, shift: .none)] }

    /// The text with `_` / `^` markup parsed.
    init(markup: String) {
        var runs: [Run] = []
        var current = "", shift = Shift.none
        var chars = Array(markup)[...]
        func flush() {
            if !current.isEmpty { runs.append(Run(text: current, shift: shift)) }
            current = ""
        }
        while let c = chars.popFirst() {
            if c == "\\", let next = chars.first, "_^\\{}".contains(next) {
                current.append(next)
                chars.removeFirst()
            } else if c == "_" || c == "^", let next = chars.first, shift == .none {
                flush()
                shift = c == "_" ? .sub : .sup
                if next == "{", let close = chars.firstIndex(of: "}") {
                    current = String(chars[chars.index(after: chars.startIndex)..<close])
                    chars = chars[chars.index(after: close)...]
                } else {
                    current = String(next)
                    chars.removeFirst()
                }
                flush()
                shift = .none
            } else {
                current.append(c)
            }
        }
        flush()
        self.runs = runs
    }

    /// The characters, without markup.
    var plainText: String { runs.map(\.text).joined() }
}

/// The extent of a text line around its baseline origin, in points.
struct TextBox {
    /// Advance width.
    var width: Double
    /// Height above the baseline (font ascent, more with superscripts).
    var ascent: Double
    /// Depth below the baseline, positive (font descent, more with subscripts).
    var descent: Double
}

/// Drawing on a Cairo context in figure points: text in DejaVu Sans, lines, shapes, markers.
final class Canvas {
    let cr: OpaquePointer
    static let fontFamily = "DejaVu Sans"
    /// Subscripts and superscripts are drawn at this fraction of the font size.
    static let scriptScale = 0.7

    /// A canvas drawing on `surface`, scaled so that one unit is `scale` device units.
    init(surface: OpaquePointer, scale: Double = 1) {
        cr = cairo_create(surface)
        cairo_scale(cr, scale, scale)
        let options = cairo_font_options_create()
        // Unhinted metrics: text has the same size in PNG, PDF and SVG, so one layout serves all.
        cairo_font_options_set_hint_metrics(options, CAIRO_HINT_METRICS_OFF)
        cairo_font_options_set_hint_style(options, CAIRO_HINT_STYLE_NONE)
        cairo_font_options_set_antialias(options, CAIRO_ANTIALIAS_GRAY)
        cairo_set_font_options(cr, options)
        cairo_font_options_destroy(options)
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND)
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT)
    }

    deinit { cairo_destroy(cr) }

    /// The Cairo status of the context, nil when all is well.
    var failure: String? {
        let status = cairo_status(cr)
        return status == CAIRO_STATUS_SUCCESS ? nil : String(cString: cairo_status_to_string(status))
    }

    // MARK: Text

    private func select(_ font: Font, scale: Double = 1) {
        cairo_select_font_face(
            cr, Self.fontFamily, CAIRO_FONT_SLANT_NORMAL,
            font.bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(cr, font.size * scale)
    }

    private func fontExtents(_ font: Font) -> (ascent: Double, descent: Double) {
        select(font)
        var e = cairo_font_extents_t()
        cairo_font_extents(cr, &e)
        return (e.ascent, e.descent)
    }

    private func advance(_ text: String, _ font: Font, scale: Double) -> Double {
        select(font, scale: scale)
        var e = cairo_text_extents_t()
        cairo_text_extents(cr, text, &e)
        return e.x_advance
    }

    private func baselineShift(_ shift: RichText.Shift, _ font: Font) -> Double {
        switch shift {
        case .none: return 0
        case .sub: return 0.22 * font.size
        case .sup: return -0.38 * font.size
        }
    }

    /// The extent of `text` in `font`, around its baseline.
    func measure(_ text: RichText, _ font: Font) -> TextBox {
        let (a, d) = fontExtents(font)
        var box = TextBox(width: 0, ascent: a, descent: d)
        for run in text.runs {
            let scale = run.shift == .none ? 1 : Self.scriptScale
            box.width += advance(run.text, font, scale: scale)
            let shift = baselineShift(run.shift, font)
            box.ascent = max(box.ascent, a * scale - shift)
            box.descent = max(box.descent, d * scale + shift)
        }
        return box
    }

    /// The baseline origin of a text of extent `box` placed at `anchor`, in the text's frame.
    private func origin(_ box: TextBox, _ font: Font, _ anchor: TextAnchor) -> Point {
        let x: Double
        switch anchor.horizontal {
        case .left: x = 0
        case .center: x = -box.width / 2
        case .right: x = -box.width
        }
        let y: Double
        switch anchor.vertical {
        case .top: y = box.ascent
        case .middle: y = 0.729 * font.size / 2  // half DejaVu Sans' cap height
        case .baseline: y = 0
        case .bottom: y = -box.descent
        }
        return Point(x: x, y: y)
    }

    /// The four corners, on the figure, of the box of `text` drawn at `point` with `anchor`,
    /// turned `rotation` degrees counter-clockwise about the anchor point (start of the baseline
    /// side first: top-left, top-right, bottom-right, bottom-left in the text's own frame).
    func corners(_ text: RichText, _ font: Font, at point: Point, anchor: TextAnchor, rotation: Double = 0) -> [Point] {
        let box = measure(text, font)
        let o = origin(box, font, anchor)
        let local = [
            (o.x, o.y - box.ascent), (o.x + box.width, o.y - box.ascent),
            (o.x + box.width, o.y + box.descent), (o.x, o.y + box.descent),
        ]
        let angle = -rotation * .pi / 180
        let (c, s) = (cos(angle), sin(angle))
        return local.map { Point(x: point.x + $0.0 * c - $0.1 * s, y: point.y + $0.0 * s + $0.1 * c) }
    }

    /// Draws `text` at `point` with `anchor`, turned `rotation` degrees counter-clockwise.
    func draw(_ text: RichText, _ font: Font, color: RGBColor, at point: Point, anchor: TextAnchor, rotation: Double = 0) {
        guard !text.runs.isEmpty else { return }
        let box = measure(text, font)
        let o = origin(box, font, anchor)
        cairo_save(cr)
        setColor(color)
        cairo_translate(cr, point.x, point.y)
        cairo_rotate(cr, -rotation * .pi / 180)
        var x = o.x
        for run in text.runs {
            let scale = run.shift == .none ? 1 : Self.scriptScale
            select(font, scale: scale)
            cairo_move_to(cr, x, o.y + baselineShift(run.shift, font))
            cairo_show_text(cr, run.text)
            var e = cairo_text_extents_t()
            cairo_text_extents(cr, run.text, &e)
            x += e.x_advance
        }
        cairo_restore(cr)
    }

    // MARK: Shapes

    func setColor(_ c: RGBColor) { cairo_set_source_rgba(cr, c.red, c.green, c.blue, c.alpha) }

    func setStroke(width: Double, dash: [Double] = []) {
        cairo_set_line_width(cr, width)
        cairo_set_dash(cr, dash, Int32(dash.count), 0)
    }

    /// Strokes the polyline through `points`, breaking it at non-finite points.
    func strokePolyline(_ points: [Point], color: RGBColor, width: Double, dash: [Double] = []) {
        setColor(color)
        setStroke(width: width, dash: dash)
        var pen = false
        for p in points {
            guard p.x.isFinite, p.y.isFinite else {
                pen = false
                continue
            }
            if pen { cairo_line_to(cr, p.x, p.y) } else { cairo_move_to(cr, p.x, p.y) }
            pen = true
        }
        cairo_stroke(cr)
    }

    func line(from a: Point, to b: Point, color: RGBColor, width: Double, dash: [Double] = []) {
        strokePolyline([a, b], color: color, width: width, dash: dash)
    }

    func fill(_ r: Rect, color: RGBColor) {
        setColor(color)
        cairo_rectangle(cr, r.x, r.y, r.width, r.height)
        cairo_fill(cr)
    }

    func stroke(_ r: Rect, color: RGBColor, width: Double) {
        setColor(color)
        setStroke(width: width)
        cairo_rectangle(cr, r.x, r.y, r.width, r.height)
        cairo_stroke(cr)
    }

    /// Fills the polygon through `points` (closed).
    func fillPolygon(_ points: [Point], color: RGBColor) {
        guard let first = points.first else { return }
        setColor(color)
        cairo_move_to(cr, first.x, first.y)
        for p in points.dropFirst() { cairo_line_to(cr, p.x, p.y) }
        cairo_close_path(cr)
        cairo_fill(cr)
    }

    func clip(to r: Rect) {
        cairo_save(cr)
        cairo_rectangle(cr, r.x, r.y, r.width, r.height)
        cairo_clip(cr)
    }

    func unclip() { cairo_restore(cr) }

    /// Draws a marker centred at `p`: filled with `fill` (if any), outlined with `edge` (if any).
    func marker(_ shape: MarkerShape, at p: Point, size: Double, fill: RGBColor?, edge: RGBColor?, edgeWidth: Double) {
        guard shape != .none, p.x.isFinite, p.y.isFinite else { return }
        markerPath(shape, at: p, radius: size / 2)
        if shape.isStrokedOnly {
            setColor(fill ?? edge ?? .black)
            setStroke(width: max(edgeWidth, size / 6))
            cairo_stroke(cr)
            return
        }
        if let fill {
            setColor(fill)
            if edge != nil && edgeWidth > 0 { cairo_fill_preserve(cr) } else { cairo_fill(cr) }
        }
        if let edge, edgeWidth > 0 {
            setColor(edge)
            setStroke(width: edgeWidth)
            cairo_stroke(cr)
        }
        cairo_new_path(cr)
    }

    private func markerPath(_ shape: MarkerShape, at p: Point, radius r: Double) {
        func polygon(_ vertices: [(Double, Double)]) {
            guard let f = vertices.first else { return }
            cairo_move_to(cr, p.x + f.0, p.y + f.1)
            for v in vertices.dropFirst() { cairo_line_to(cr, p.x + v.0, p.y + v.1) }
            cairo_close_path(cr)
        }
        func regular(_ n: Int, _ radius: Double, inner: Double? = nil, phase: Double = -.pi / 2) -> [(Double, Double)] {
            let count = inner == nil ? n : 2 * n
            return (0..<count).map { k in
                let rr = (inner != nil && k % 2 == 1) ? (inner ?? radius) : radius
                let a = phase + Double(k) * 2 * .pi / Double(count)
                return (rr * cos(a), rr * sin(a))
            }
        }
        switch shape {
        case .none: return
        case .circle: cairo_arc(cr, p.x, p.y, r, 0, 2 * .pi)
        case .square: cairo_rectangle(cr, p.x - 0.886 * r, p.y - 0.886 * r, 1.772 * r, 1.772 * r)
        case .diamond: polygon([(0, -1.2 * r), (0.85 * r, 0), (0, 1.2 * r), (-0.85 * r, 0)])
        case .triangleUp: polygon(regular(3, 1.2 * r))
        case .triangleDown: polygon(regular(3, 1.2 * r, phase: .pi / 2))
        case .star: polygon(regular(5, 1.35 * r, inner: 0.52 * r))
        case .plus:
            cairo_move_to(cr, p.x - r, p.y); cairo_line_to(cr, p.x + r, p.y)
            cairo_move_to(cr, p.x, p.y - r); cairo_line_to(cr, p.x, p.y + r)
        case .cross:
            let d = r * 0.8
            cairo_move_to(cr, p.x - d, p.y - d); cairo_line_to(cr, p.x + d, p.y + d)
            cairo_move_to(cr, p.x - d, p.y + d); cairo_line_to(cr, p.x + d, p.y - d)
        }
    }

    /// Paints a `columns x rows` grid of colours (row-major, row 0 on top) into `frame`, each
    /// cell a sharp-edged rectangle (nearest-neighbour scaling, no smoothing in PDF viewers).
    func paintCells(_ colors: [RGBColor], columns: Int, rows: Int, into frame: Rect) {
        guard columns > 0, rows > 0, colors.count == columns * rows,
            let image: OpaquePointer = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(columns), Int32(rows)),
            cairo_surface_status(image) == CAIRO_STATUS_SUCCESS,
            let data = cairo_image_surface_get_data(image)
        else { return }
        defer { cairo_surface_destroy(image) }
        cairo_surface_flush(image)
        let stride = Int(cairo_image_surface_get_stride(image))
        for r in 0..<rows {
            let row = UnsafeMutableRawPointer(data + r * stride).assumingMemoryBound(to: UInt32.self)
            for c in 0..<columns {
                let (red, green, blue) = colors[r * columns + c].bytes
                row[c] = UInt32(red) << 16 | UInt32(green) << 8 | UInt32(blue)
            }
        }
        cairo_surface_mark_dirty(image)
        paintImage(image, into: frame, filter: CAIRO_FILTER_NEAREST)
    }

    /// Paints the image surface `image` stretched over `frame`, sampled with `filter`.
    func paintImage(_ image: OpaquePointer, into frame: Rect, filter: cairo_filter_t) {
        let width = Double(cairo_image_surface_get_width(image)), height = Double(cairo_image_surface_get_height(image))
        guard width > 0, height > 0 else { return }
        cairo_save(cr)
        cairo_translate(cr, frame.x, frame.y)
        cairo_scale(cr, frame.width / width, frame.height / height)
        cairo_set_source_surface(cr, image, 0, 0)
        cairo_pattern_set_filter(cairo_get_source(cr), filter)
        cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD)
        cairo_rectangle(cr, 0, 0, width, height)
        cairo_fill(cr)
        cairo_restore(cr)
    }

    /// Draws with `body` on a transparent image covering `frame` at `scale` pixels per point,
    /// then paints that image into `frame` (a raster layer inside vector output).
    func rasterize(_ frame: Rect, scale: Double, _ body: (Canvas) -> Void) {
        let width = Int32(min(32_767, max(1, (frame.width * scale).rounded(.up))))
        let height = Int32(min(32_767, max(1, (frame.height * scale).rounded(.up))))
        guard let image: OpaquePointer = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height),
            cairo_surface_status(image) == CAIRO_STATUS_SUCCESS
        else { return }
        defer { cairo_surface_destroy(image) }
        do {
            let layer = Canvas(surface: image, scale: scale)
            cairo_translate(layer.cr, -frame.minX, -frame.minY)
            body(layer)
        }
        cairo_surface_flush(image)
        paintImage(
            image, into: Rect(x: frame.minX, y: frame.minY, width: Double(width) / scale, height: Double(height) / scale),
            filter: CAIRO_FILTER_GOOD)
    }
}

/// A context for measuring text before anything is drawn (a 1 x 1 image surface).
final class MeasuringCanvas {
    private let surface: OpaquePointer
    let canvas: Canvas

    init() {
        surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1)
        canvas = Canvas(surface: surface)
    }

    deinit { cairo_surface_destroy(surface) }
}

/// The markup of titles, axis labels, legend entries and colour bar labels.
///
/// `_x` or `_{...}` is a subscript, `^x` or `^{...}` a superscript: `"ε_i"` is ε with subscript i,
/// `"W_{g,e}"` is W with subscript "g,e", `"α^*"` is α with a superscript star. Greek letters and
/// other symbols are written as themselves in UTF-8 (the font is DejaVu Sans, which has them).
/// `\_`, `\^`, `\\`, `\{` and `\}` stand for the characters themselves. Tick labels, category
/// labels and cell numbers are plain text.
public enum TextMarkup {
    /// `text` with its markup characters escaped, to show it literally (for example a file name
    /// such as `router_norms.csv` in a title).
    public static func escaped(_ text: String) -> String {
        var out = ""
        for c in text {
            if "_^\\{}".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// The characters `markup` shows, without the markup (`"ε_i"` gives `"εi"`).
    public static func plainText(_ markup: String) -> String { RichText(markup: markup).plainText }
}
