import Foundation
import Testing

@testable import Plotting

@Test func heatmapCellsCarryTheColourOfTheirValue() throws {
    let values: [[Double]] = [[0, 0.25, 0.5, 1], [1, 0.5, .nan, 0], [0.75, 0, 1, 0.5]]
    let figure = Figure(width: 5, height: 4, dpi: 100)
    figure.title = "Cells"
    try figure.axes[0].heatmap(values, scale: ColorScale(colormap: .viridis, range: 0...1), diagonalOutline: .white)
    figure.axes[0].colorbar = Colorbar(label: "value")
    let path = temporaryFolder() + "/cells.png"
    let layout = try figure.save(to: path)
    let image = try #require(DecodedImage(png: path))
    #expect(image.width == 500 && image.height == 400)
    let ax = layout.axes[0]
    // Published viridis colours at 0 and 1, the missing-value grey, and the map at 0.25, 0.5, 0.75.
    let expected: [(row: Int, column: Int, hex: UInt32)] = [
        (0, 0, 0x440154), (0, 3, 0xFDE725), (1, 0, 0xFDE725), (2, 1, 0x440154), (1, 2, 0xBDBDBD),
        (0, 2, 0x21918C), (0, 1, 0x3B528B), (2, 0, 0x5EC962),
    ]
    for e in expected {
        let pixel = layout.pixel(ax.point(x: Double(e.column), y: Double(e.row)))
        let found = image.rgb(pixel)
        #expect(close(found, e.hex, tolerance: 3), "cell (\(e.row), \(e.column)) at \(pixel) is \(found), not \(String(e.hex, radix: 16))")
    }
    // Row 0 is on top, column 0 on the left.
    #expect(ax.point(x: 0, y: 0).y < ax.point(x: 0, y: 2).y)
    #expect(ax.point(x: 0, y: 0).x < ax.point(x: 3, y: 0).x)
}

@Test func colourBarSpansTheDataRangeAndIsLabelled() throws {
    let values: [[Double]] = [[0.1, 0.4], [0.87, 0.3]]
    let figure = Figure(dpi: 100)
    try figure.axes[0].heatmap(values, scale: .fitting(values.joined()))
    figure.axes[0].colorbar = Colorbar(label: "M[i,j]")
    let path = temporaryFolder() + "/bar.png"
    let layout = try figure.save(to: path)
    let bar = try #require(layout.axes[0].colorbar)
    #expect(bar.scale.range == 0.1...0.87)
    #expect(bar.ticks.first.map { $0 >= 0.1 } == true && bar.ticks.last.map { $0 <= 0.87 } == true)
    #expect(bar.ticks.count >= 3)
    #expect(bar.labels.contains("0.4") && bar.labels.contains("0.8"))
    #expect(layout.texts.contains { $0.role == .colorbarLabel && $0.text == "M[i,j]" })
    // The bar is as tall as the heatmap, dark at the bottom, yellow at the top.
    #expect(abs(bar.frame.height - layout.axes[0].frame.height) < 1e-9)
    let image = try #require(DecodedImage(png: path))
    let top = layout.pixel(Point(x: bar.frame.center.x, y: bar.frame.minY + 2))
    let bottom = layout.pixel(Point(x: bar.frame.center.x, y: bar.frame.maxY - 2))
    #expect(close(image.rgb(top), 0xFDE725, tolerance: 6))
    #expect(close(image.rgb(bottom), 0x440154, tolerance: 6))
}

@Test func axisTicksAreNiceNumbers() throws {
    let figure = Figure(width: 5, height: 4)
    let ax = figure.axes[0]
    try ax.plot(x: [0, 0.87], y: [-1, 1])
    ax.x.limits = 0...0.87
    ax.y.limits = -1...1
    let layout = figure.layout()
    #expect(layout.axes[0].x.labels == ["0.0", "0.2", "0.4", "0.6", "0.8"])
    #expect(layout.axes[0].y.labels == ["−1.0", "−0.5", "0.0", "0.5", "1.0"])
    #expect(layout.axes[0].x.ticks.map { ($0 * 10).rounded() } == [0, 2, 4, 6, 8])
}

@Test func automaticLimitsHaveMarginsButBarsStartAtZero() throws {
    let figure = Figure(rows: 1, columns: 2)
    try figure.axes[0].plot(x: [0, 10], y: [1, 3])
    try figure.axes[1].bars(categories: ["a", "b", "c"], series: [BarSeries(values: [1, 2, 4])])
    let layout = figure.layout()
    #expect(layout.axes[0].x.limits == -0.5...10.5)
    #expect(layout.axes[0].y.limits == 0.9...3.1)
    #expect(layout.axes[1].y.limits.lowerBound == 0)
    #expect(abs(layout.axes[1].y.limits.upperBound - 4.2) < 1e-12)
    #expect(layout.axes[1].x.labels == ["a", "b", "c"])
}

@Test func crowdedCategoryLabelsAreThinnedOrTurned() throws {
    let figure = Figure(width: 4, height: 4)
    let n = 64
    try figure.axes[0].heatmap((0..<n).map { i in (0..<n).map { Double($0 + i) } }, scale: ColorScale(range: 0...126))
    let layout = figure.layout()
    let x = layout.axes[0].x
    #expect(x.ticks.count < n && x.ticks.count >= 4)
    #expect(x.ticks.first == 0)
    #expect(x.labels == x.ticks.map { String(Int($0)) })
    #expect(layout.axes[0].y.ticks == x.ticks)  // the same experts are labelled on both axes

    let names = Figure(width: 4, height: 3)
    try names.axes[0].bars(categories: (0..<16).map { "layer \($0)" }, series: [BarSeries(values: (0..<16).map(Double.init))])
    let turned = names.layout().axes[0].x
    #expect(turned.labelRotation > 0)
    #expect(turned.ticks.count == 16)
}

@Test func noTwoTextsOverlapInTheSampleFigures() throws {
    for (name, figure) in try SampleFigures.all() {
        let layout = figure.layout()
        let texts = layout.texts.filter { $0.role != .cellAnnotation }
        for i in texts.indices {
            for j in texts.indices where j > i && overlap(texts[i].corners, texts[j].corners) {
                Issue.record("\(name): \"\(texts[i].text)\" \(texts[i].frame) overlaps \"\(texts[j].text)\" \(texts[j].frame)")
            }
        }
    }
}

@Test func legendAvoidsTheDataOrMovesOutside() throws {
    let rising = Figure()
    try rising.axes[0].plot(x: Array(0...20).map(Double.init), y: Array(0...20).map(Double.init), label: "y = x")
    let placed = try #require(rising.layout().axes[0].legend)
    #expect(placed.placement == .upperLeft)
    #expect(placed.labels == ["y = x"])

    var rng = SampleRandom(state: 9)
    let crowd = Figure()
    let xs = (0..<2000).map { _ in rng.next() }, ys = (0..<2000).map { _ in rng.next() }
    var s = ScatterSeries(x: xs, y: ys, label: "points")
    s.size = 3
    try crowd.axes[0].scatter(s)
    let layout = crowd.layout()
    let outside = try #require(layout.axes[0].legend)
    #expect(outside.placement == .outsideRight)
    #expect(outside.frame.minX > layout.axes[0].frame.maxX)
    #expect(outside.frame.maxX <= layout.width)
}

@Test func smallMultiplesShareOneColourScaleAndAlign() throws {
    let figure = Figure(width: 8, height: 6, rows: 2, columns: 2)
    let scale = ColorScale(colormap: .cividis, range: 0...2)
    for (k, ax) in figure.axes.enumerated() {
        try ax.heatmap([[Double(k) * 0.5, 1], [0, 2]], scale: scale)
        ax.title = "layer \(k)"
    }
    figure.colorbar = Colorbar(label: "M[i,j]")
    figure.sharesY = true
    let layout = figure.layout()
    let bar = try #require(layout.colorbar)
    #expect(bar.scale.range == 0...2)
    #expect(bar.scale.colormap.name == "cividis")
    let frames = layout.axes.map(\.frame)
    #expect(abs(frames[0].minY - frames[1].minY) < 1e-9 && abs(frames[2].minY - frames[3].minY) < 1e-9)
    #expect(abs(frames[0].minX - frames[2].minX) < 1e-9 && abs(frames[1].minX - frames[3].minX) < 1e-9)
    #expect(abs(frames[0].width - frames[3].width) < 1e-9)
    #expect(bar.frame.minX > frames[1].maxX && bar.frame.minY <= frames[0].minY + 1e-9 && bar.frame.maxY >= frames[2].maxY - 1e-9)
    #expect(layout.axes[1].y.labels.allSatisfy { $0.isEmpty })  // shared y: labels in the left column only
    #expect(!layout.axes[0].y.labels.allSatisfy { $0.isEmpty })
}

@Test func subscriptsAndGreekLettersAreParsed() {
    #expect(RichText(markup: "ε_i").runs == [.init(text: "ε", shift: .none), .init(text: "i", shift: .sub)])
    #expect(RichText(markup: "α^{*} at 10^{-3}").runs.map(\.shift) == [.none, .sup, .none, .sup])
    #expect(RichText(markup: "W_g norm").plainText == "Wg norm")
    #expect(RichText(markup: #"layer\_3"#).plainText == "layer_3")
    #expect(RichText(markup: "trailing_").plainText == "trailing_")
    #expect(TextMarkup.plainText(TextMarkup.escaped(#"router_norms^2 {a\b}"#)) == #"router_norms^2 {a\b}"#)
    let figure = Figure()
    try? figure.axes[0].plot(x: [0, 1], y: [0, 1])
    figure.axes[0].yLabel = "ε_i"
    #expect(figure.layout().texts.contains { $0.role == .axisLabel && $0.text == "εi" })
}

@Test func emptyAxesOfAGridAreNotDrawn() throws {
    let figure = Figure(rows: 2, columns: 2)
    for ax in figure.axes.prefix(3) { try ax.plot(x: [0, 1], y: [1, 0]) }
    let layout = figure.layout()
    #expect(layout.axes.map(\.isVisible) == [true, true, true, false])
}

@Test func tinyFiguresStillRenderWithoutCrashing() throws {
    let figure = Figure(width: 1, height: 0.8, dpi: 72, rows: 2, columns: 2)
    figure.title = "A title far too long for a figure one inch wide"
    for ax in figure.axes {
        try ax.heatmap(
            (0..<64).map { i in (0..<64).map { Double(i - $0) } }, scale: .symmetric(limit: 63),
            annotation: CellAnnotation())
        ax.colorbar = Colorbar(label: "cos")
        ax.xLabel = "expert j"
    }
    let folder = temporaryFolder()
    for format in OutputFormat.allCases { try figure.save(to: "\(folder)/tiny.\(format.rawValue)") }
    #expect(DecodedImage(png: folder + "/tiny.png")?.width == 72)
}

@Test func pointsCanBeColouredByValue() throws {
    let figure = Figure(width: 3, height: 3, dpi: 100)
    let scale = ColorScale(colormap: .viridis, range: 0...1)
    var s = ScatterSeries(x: [0, 1], y: [0, 1])
    s.pointColors = [scale.color(for: 0), scale.color(for: 1)]
    s.size = 12
    try figure.axes[0].scatter(s)
    figure.axes[0].colorbar = Colorbar(label: "value", scale: scale)
    let path = temporaryFolder() + "/points.png"
    let layout = try figure.save(to: path)
    let image = try #require(DecodedImage(png: path))
    #expect(close(image.rgb(layout.pixel(layout.axes[0].point(x: 0, y: 0))), 0x440154, tolerance: 3))
    #expect(close(image.rgb(layout.pixel(layout.axes[0].point(x: 1, y: 1))), 0xFDE725, tolerance: 3))
}
