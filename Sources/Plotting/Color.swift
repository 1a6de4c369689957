import Foundation

/// An sRGB colour with straight (not premultiplied) alpha; every component in 0...1.
public struct RGBColor: Sendable, Hashable, CustomStringConvertible {
    /// Red, green, blue and opacity, each in 0...1.
    public var red, green, blue, alpha: Double

    /// A colour from components in 0...1 (values outside are clamped when drawn).
    public init(red: Double, green: Double, blue: Double, alpha: Double = 1) {
        self.red = red
        self.green = green
        self.blue = blue
        self.alpha = alpha
    }

    /// A colour from a 24-bit `0xRRGGBB` code.
    public init(hex: UInt32, alpha: Double = 1) {
        self.init(
            red: Double((hex >> 16) & 0xFF) / 255, green: Double((hex >> 8) & 0xFF) / 255,
            blue: Double(hex & 0xFF) / 255, alpha: alpha)
    }

    /// The same colour with opacity `alpha` (0...1).
    public func withAlpha(_ alpha: Double) -> RGBColor {
        RGBColor(red: red, green: green, blue: blue, alpha: alpha)
    }

    /// The colour mixed with white: `amount` 0 keeps it, 1 gives white.
    public func lightened(by amount: Double) -> RGBColor {
        RGBColor(
            red: red + (1 - red) * amount, green: green + (1 - green) * amount,
            blue: blue + (1 - blue) * amount, alpha: alpha)
    }

    /// The colour mixed with black: `amount` 0 keeps it, 1 gives black.
    public func darkened(by amount: Double) -> RGBColor {
        RGBColor(red: red * (1 - amount), green: green * (1 - amount), blue: blue * (1 - amount), alpha: alpha)
    }

    /// The 8-bit components `(r, g, b)` this colour has in an 8-bit image (round to nearest).
    public var bytes: (red: UInt8, green: UInt8, blue: UInt8) {
        (Self.byte(red), Self.byte(green), Self.byte(blue))
    }

    /// WCAG 2 relative luminance in 0 (black) ... 1 (white), from the linearised sRGB components.
    public var relativeLuminance: Double {
        func linear(_ c: Double) -> Double {
            let c = min(max(c, 0), 1)
            return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4)
        }
        return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    }

    /// Black or white, whichever has the higher WCAG contrast ratio on this colour: the colour of
    /// text written on a cell of this colour.
    public var contrastingText: RGBColor {
        let l = relativeLuminance
        let onBlack = (l + 0.05) / 0.05
        let onWhite = 1.05 / (l + 0.05)
        return onBlack >= onWhite ? .black : .white
    }

    /// `#rrggbb` (and `aa` when not opaque).
    public var description: String {
        let (r, g, b) = bytes
        let hex = [r, g, b].map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
        return alpha < 1 ? "#\(hex)\(String(Self.byte(alpha), radix: 16))" : "#\(hex)"
    }

    private static func byte(_ c: Double) -> UInt8 { UInt8((min(max(c, 0), 1) * 255).rounded()) }

    /// Opaque black.
    public static let black = RGBColor(red: 0, green: 0, blue: 0)
    /// Opaque white.
    public static let white = RGBColor(red: 1, green: 1, blue: 1)
    /// The dark grey used for text, spines and ticks (`#262626`, as seaborn's and many journals').
    public static let ink = RGBColor(hex: 0x262626)
    /// The light grey of grid lines (`#e0e0e0`).
    public static let gridGrey = RGBColor(hex: 0xE0E0E0)
    /// The mid grey for cells whose value is not a number (`#bdbdbd`).
    public static let missingGrey = RGBColor(hex: 0xBDBDBD)
}
