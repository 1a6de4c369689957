import Foundation

/// A continuous colour map: a table of evenly spaced colours read with linear interpolation.
///
/// `color(at: 0)` is the first entry, `color(at: 1)` the last; `t` outside 0...1 is clamped and a
/// NaN `t` gives `badColor` (what a heatmap shows for a missing value).
public struct Colormap: Sendable {
    /// The name, as matplotlib spells it (`viridis`, `cividis`, `RdBu_r`).
    public let name: String
    /// The table, evenly spaced over 0...1; at least two entries.
    public let entries: [RGBColor]
    /// The colour of a value that is not a number.
    public var badColor: RGBColor = .missingGrey

    /// A map through `entries` (evenly spaced over 0...1; a single entry is used as both ends).
    public init(name: String, entries: [RGBColor]) {
        self.name = name
        self.entries = entries.count >= 2 ? entries : Array(repeating: entries.first ?? .black, count: 2)
    }

    /// The colour at position `t` in 0...1 (clamped), linearly interpolated between table entries.
    public func color(at t: Double) -> RGBColor {
        guard !t.isNaN else { return badColor }
        let position = min(max(t, 0), 1) * Double(entries.count - 1)
        let i = min(Int(position), entries.count - 2)
        let f = position - Double(i)
        let a = entries[i], b = entries[i + 1]
        return RGBColor(
            red: a.red + (b.red - a.red) * f, green: a.green + (b.green - a.green) * f,
            blue: a.blue + (b.blue - a.blue) * f, alpha: a.alpha + (b.alpha - a.alpha) * f)
    }

    /// The same map run from high to low (name suffixed `_r`, or the suffix removed).
    public func reversed() -> Colormap {
        let reversedName = name.hasSuffix("_r") ? String(name.dropLast(2)) : name + "_r"
        var map = Colormap(name: reversedName, entries: entries.reversed())
        map.badColor = badColor
        return map
    }

    private static func table(_ name: String, _ flat: [Double]) -> Colormap {
        let entries = stride(from: 0, to: flat.count - 2, by: 3).map {
            RGBColor(red: flat[$0], green: flat[$0 + 1], blue: flat[$0 + 2])
        }
        return Colormap(name: name, entries: entries)
    }

    /// Sequential, perceptually uniform, dark purple (low) to yellow (high): matplotlib's 256-entry
    /// table. The default for non-negative quantities such as the activation matrix.
    public static let viridis = table("viridis", ColormapTables.viridis)

    /// Sequential, perceptually uniform and readable with red-green colour-vision deficiency, dark
    /// blue (low) to yellow (high): matplotlib's 256-entry table.
    public static let cividis = table("cividis", ColormapTables.cividis)

    /// Diverging, blue (low) through near-white `#f7f7f7` (middle) to red (high): ColorBrewer's
    /// 11-class RdBu reversed, as matplotlib's `RdBu_r`. Pair it with a `ColorScale` symmetric about
    /// 0 (e.g. `ColorScale.symmetric(limit: 1)` for cosine similarity) so that 0 is the white middle.
    public static let diverging = Colormap(
        name: "RdBu",
        entries: [
            0x67001F, 0xB2182B, 0xD6604D, 0xF4A582, 0xFDDBC7, 0xF7F7F7, 0xD1E5F0, 0x92C5DE, 0x4393C3, 0x2166AC, 0x053061,
        ].map { RGBColor(hex: $0) }
    ).reversed()
}

/// A colour map together with the data range it spans: values map linearly from
/// `range.lowerBound` (colour at 0) to `range.upperBound` (colour at 1), clamped outside.
public struct ColorScale: Sendable {
    /// The colour map.
    public var colormap: Colormap
    /// The data values at the two ends of the map (`vmin...vmax`, in data units).
    public var range: ClosedRange<Double>

    /// A scale from `range.lowerBound` to `range.upperBound`. An empty range (`vmin == vmax`) is
    /// widened by 0.5 either side so that every value still gets the middle colour.
    public init(colormap: Colormap = .viridis, range: ClosedRange<Double>) {
        self.colormap = colormap
        self.range = range.lowerBound < range.upperBound ? range : (range.lowerBound - 0.5)...(range.upperBound + 0.5)
    }

    /// A scale spanning `-limit...limit` (so that 0 sits at the centre of a diverging map).
    public static func symmetric(limit: Double, colormap: Colormap = .diverging) -> ColorScale {
        let l = abs(limit)
        return ColorScale(colormap: colormap, range: -l...l)
    }

    /// A scale spanning the finite values of `values` (min...max); `fallback` when there are none.
    public static func fitting<S: Sequence<Double>>(
        _ values: S, colormap: Colormap = .viridis,
        fallback: ClosedRange<Double> = 0...1
    ) -> ColorScale {
        ColorScale(colormap: colormap, range: finiteRange(values) ?? fallback)
    }

    /// The position `(value - vmin) / (vmax - vmin)` of `value` on the map (not clamped; NaN stays NaN).
    public func position(of value: Double) -> Double {
        (value - range.lowerBound) / (range.upperBound - range.lowerBound)
    }

    /// The colour of `value` (clamped to the range; NaN gives the map's `badColor`).
    public func color(for value: Double) -> RGBColor { colormap.color(at: position(of: value)) }
}

/// min...max of the finite elements of `values`, or nil when there are none.
func finiteRange<S: Sequence<Double>>(_ values: S) -> ClosedRange<Double>? {
    var lo = Double.infinity, hi = -Double.infinity
    for v in values where v.isFinite {
        lo = min(lo, v)
        hi = max(hi, v)
    }
    return lo <= hi ? lo...hi : nil
}

/// Colours for categories (experts, layers, runs) that stay tellable apart for 64 and more.
///
/// The first ten are matplotlib's `tab10` (the colours readers know). Each further colour is the
/// candidate farthest (Euclidean distance in CIELAB, i.e. CIE76 delta E) from all colours chosen
/// before it: greedy farthest-point sampling in the manner of Glasbey et al. (2007), "Colour
/// displays for categorical images". Candidates are the sRGB grid with 16 levels per channel,
/// restricted to CIELAB lightness 35...82 (visible on white, distinct from black outlines) and
/// chroma 20...75 (no greys besides tab10's, and no glaring primaries beside tab10's muted tones). The sequence is fixed, so category `i` has the
/// same colour in every figure, whatever the number of categories. Beyond `count` colours repeat.
///
/// Past about twenty categories colour alone gets weak; pair it with `MarkerShape.forCategory(_:)`
/// in scatter plots.
public enum CategoricalPalette {
    /// How many distinct colours the palette holds before it repeats.
    public static let count = 128

    /// matplotlib's `tab10`, the first ten categorical colours.
    public static let tab10: [RGBColor] = [
        0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD, 0x8C564B, 0xE377C2, 0x7F7F7F, 0xBCBD22, 0x17BECF,
    ].map { RGBColor(hex: $0) }

    /// The colour of category `index` (any integer; negative indices wrap too).
    public static func color(_ index: Int) -> RGBColor {
        let n = colors.count
        return colors[((index % n) + n) % n]
    }

    /// The whole sequence of `count` colours.
    public static let colors: [RGBColor] = {
        var chosen = tab10
        var candidates: [(color: RGBColor, lab: Lab)] = []
        for r in 0..<16 {
            for g in 0..<16 {
                for b in 0..<16 {
                    let c = RGBColor(red: Double(r) / 15, green: Double(g) / 15, blue: Double(b) / 15)
                    let lab = Lab(c)
                    let chroma = (lab.a * lab.a + lab.b * lab.b).squareRoot()
                    if lab.l >= 35 && lab.l <= 82 && chroma >= 20 && chroma <= 75 {
                        candidates.append((c, lab))
                    }
                }
            }
        }
        var nearest = candidates.map { cand in chosen.map { Lab($0).distance(to: cand.lab) }.min() ?? .infinity }
        while chosen.count < count, !candidates.isEmpty {
            var best = 0
            for i in candidates.indices where nearest[i] > nearest[best] { best = i }
            let pick = candidates[best]
            chosen.append(pick.color)
            for i in candidates.indices { nearest[i] = min(nearest[i], pick.lab.distance(to: candidates[i].lab)) }
        }
        return chosen
    }()
}

/// A colour in CIELAB (D65 white), for perceptual distances.
struct Lab {
    var l, a, b: Double

    init(_ c: RGBColor) {
        func linear(_ v: Double) -> Double { v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4) }
        let r = linear(c.red), g = linear(c.green), bl = linear(c.blue)
        let x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * bl) / 0.95047
        let y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * bl
        let z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * bl) / 1.08883
        func f(_ t: Double) -> Double { t > 216.0 / 24389 ? cbrt(t) : (24389.0 / 27 * t + 16) / 116 }
        l = 116 * f(y) - 16
        a = 500 * (f(x) - f(y))
        b = 200 * (f(y) - f(z))
    }

    /// CIE76 colour difference (delta E).
    func distance(to o: Lab) -> Double { ((l - o.l) * (l - o.l) + (a - o.a) * (a - o.a) + (b - o.b) * (b - o.b)).squareRoot() }
}
