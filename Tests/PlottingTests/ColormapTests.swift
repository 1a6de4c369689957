import Plotting
import Testing

// Reference colours are the published ones (matplotlib's documentation and ColorBrewer), not
// values computed by the code under test.

@Test func viridisEndsAndMiddle() {
    #expect(hex(Colormap.viridis.color(at: 0)) == 0x440154)
    #expect(hex(Colormap.viridis.color(at: 1)) == 0xFDE725)
    let mid = Colormap.viridis.color(at: 0.5).bytes
    #expect(close((Int(mid.red), Int(mid.green), Int(mid.blue)), 0x21918C, tolerance: 2))
    #expect(Colormap.viridis.entries.count == 256)
}

@Test func cividisEnds() {
    #expect(hex(Colormap.cividis.color(at: 0)) == 0x00224E)
    #expect(hex(Colormap.cividis.color(at: 1)) == 0xFEE838)
    #expect(Colormap.cividis.entries.count == 256)
}

@Test func divergingMapIsWhiteAtZeroOfASymmetricScale() {
    let scale = ColorScale.symmetric(limit: 1)
    #expect(scale.range == -1...1)
    #expect(hex(scale.color(for: 0)) == 0xF7F7F7)
    #expect(hex(scale.color(for: -1)) == 0x053061)  // dark blue
    #expect(hex(scale.color(for: 1)) == 0x67001F)  // dark red
    #expect(hex(scale.color(for: 5)) == 0x67001F)  // clamped
    #expect(Colormap.diverging.name == "RdBu_r")
}

@Test func scalesFitFiniteDataAndShowMissingValuesInGrey() {
    let scale = ColorScale.fitting([0.3, .nan, -0.2, 0.9, .infinity])
    #expect(scale.range == -0.2...0.9)
    #expect(hex(scale.color(for: .nan)) == 0xBDBDBD)
    #expect(ColorScale(range: 2...2).range == 1.5...2.5)
}

@Test func categoricalPaletteStartsWithTab10AndKeepsManyCategoriesApart() {
    let tab10: [UInt32] = [0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD, 0x8C564B, 0xE377C2, 0x7F7F7F, 0xBCBD22, 0x17BECF]
    #expect((0..<10).map { hex(CategoricalPalette.color($0)) } == tab10)
    // 64 experts: all distinct, and no two closer than 0.1 in sRGB (Euclidean, channels 0...1;
    // 0.1 is about 25 of 255 steps in one channel, plainly visible side by side).
    let colors = (0..<64).map(CategoricalPalette.color)
    var nearest = Double.infinity
    for i in colors.indices {
        for j in colors.indices where j > i {
            let (a, b) = (colors[i], colors[j])
            let d =
                ((a.red - b.red) * (a.red - b.red) + (a.green - b.green) * (a.green - b.green)
                + (a.blue - b.blue) * (a.blue - b.blue)).squareRoot()
            nearest = min(nearest, d)
        }
    }
    #expect(nearest > 0.1, "closest pair of the first 64 colours is \(nearest) apart")
    #expect(Set(colors.map(hex)).count == 64)
    // Stable: category 70 has the same colour whatever else is drawn, and indices wrap.
    #expect(CategoricalPalette.color(70) == CategoricalPalette.colors[70])
    #expect(CategoricalPalette.color(CategoricalPalette.count + 3) == CategoricalPalette.color(3))
}

@Test func textOnCellsContrasts() {
    #expect(Colormap.viridis.color(at: 0).contrastingText == .white)
    #expect(Colormap.viridis.color(at: 1).contrastingText == .black)
    #expect(RGBColor(hex: 0xF7F7F7).contrastingText == .black)
}
