import Foundation
import Plotting
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

private func titledFigure(_ title: String) throws(PlotError) -> Figure {
    let figure = Figure(width: 4, height: 3)
    figure.title = title
    try figure.axes[0].plot(x: [0, 1, 2], y: [2, 1, 3], label: "series")
    return figure
}

@Test func pngTextChunksCarryTheProvenance() throws {
    let path = temporaryFolder() + "/provenance.png"
    let provenance = [
        "Software": "moe-inspect 0.1.0",
        "moe-inspect:command": #"moe-inspect report ckpt --alpha 1.5 --labels "MoE,MoE+ERC""#,
        "moe-inspect:checkpoint": "/data/run-α/model.safetensors",
    ]
    try titledFigure("ERC loss per layer").save(to: path, provenance: provenance)
    let chunks = pngText(path)
    for (key, value) in provenance { #expect(chunks[key]?.value == value, "\(key)") }
    #expect(chunks["moe-inspect:checkpoint"]?.international == true)  // UTF-8 goes in iTXt
    #expect(chunks["moe-inspect:command"]?.international == false)  // ASCII in tEXt
    #expect(chunks["Title"]?.value == "ERC loss per layer")
    let image = try #require(DecodedImage(png: path))
    #expect(image.width == 600 && image.height == 450)  // 4 x 3 inches at 150 dpi
}

@Test func pdfStartsRightAndNamesItsTitle() throws {
    let path = temporaryFolder() + "/figure.pdf"
    try titledFigure("Router cosine similarity").save(to: path, provenance: ["Software": "moe-inspect 0.1.0"])
    let data = bytes(path)
    #expect(Array(data.prefix(5)) == Array("%PDF-".utf8))
    // Cairo writes ASCII metadata as a literal string, anything else as UTF-16BE hex.
    let utf16 = "FEFF" + "Router cosine similarity".utf16.map { String(format: "%04X", $0) }.joined()
    #expect(contains(data, "/Title (Router cosine similarity)") || contains(data, utf16))
    #expect(contains(data, "/Creator (moe-inspect 0.1.0)"))
    #expect(contains(data, "%%EOF"))
}

/// Collects element names and the text of `<title>`.
private final class SVGReader: NSObject, XMLParserDelegate {
    var elements: [String] = []
    var title = ""
    private var inTitle = false
    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        elements.append(name)
        inTitle = name == "title"
    }
    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "title" { inTitle = false }
    }
    func parser(_ parser: XMLParser, foundCharacters string: String) { if inTitle { title += string } }
}

@Test func svgIsXMLWithTheTitle() throws {
    let path = temporaryFolder() + "/figure.svg"
    try titledFigure("ε per layer & <expert>").save(to: path, provenance: ["Software": "moe-inspect 0.1.0"])
    let parser = try #require(XMLParser(contentsOf: URL(fileURLWithPath: path)))
    let reader = SVGReader()
    parser.delegate = reader
    #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
    #expect(reader.elements.first == "svg")
    #expect(reader.title == "ε per layer & <expert>")
    #expect(reader.elements.contains("desc"))
    #expect(reader.elements.contains("path"))
}

@Test func formatsComeFromTheExtension() throws {
    #expect(OutputFormat(path: "a/b.PNG") == .png)
    #expect(OutputFormat(path: "fig.svg") == .svg)
    #expect(OutputFormat(path: "dir.v2/figure") == nil)
    let path = temporaryFolder() + "/figure.jpg"
    #expect(throws: PlotError.unsupportedFormat(file: path)) { try titledFigure("t").save(to: path) }
}

@Test func badInputIsAnErrorNamingWhatIsWrong() throws {
    let figure = Figure()
    #expect(throws: PlotError.self) { try figure.axes[0].heatmap([[1, 2], [3]], scale: ColorScale(range: 0...1)) }
    #expect(throws: PlotError.self) { try figure.axes[0].plot(x: [1, 2, 3], y: [1, 2]) }
    #expect(throws: PlotError.self) { try figure.axes[0].bars(categories: ["a"], series: [BarSeries(values: [1, 2])]) }
    do {
        try figure.axes[0].plot(x: [1, 2, 3], y: [1, 2], label: "eps")
    } catch {
        #expect(error.description.contains("eps") && error.description.contains("3 x values but 2 y values"))
    }
    let folder = temporaryFolder()
    #expect(throws: PlotError.invalidProvenance(file: folder + "/a.png", key: " padded")) {
        try titledFigure("t").save(to: folder + "/a.png", provenance: [" padded": "x"])
    }
    let missing = folder + "/no/such/folder/a.pdf"
    do {
        try titledFigure("t").save(to: missing)
        Issue.record("writing into a missing folder succeeded")
    } catch {
        #expect(error.description.hasPrefix(missing))
    }
}

@Test func filesAreReplacedAtomically() throws {
    let folder = temporaryFolder()
    let path = folder + "/figure.png"
    try Data("old".utf8).write(to: URL(fileURLWithPath: path))
    try titledFigure("new").save(to: path)
    #expect(Array(bytes(path).prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["figure.png"])
}

@Test func crowdsOfPointsBecomeOneImageInVectorFiles() throws {
    var rng = SampleRandom(state: 11)
    let n = Axes.rasterThreshold + 1000
    let figure = Figure()
    try figure.axes[0].scatter(ScatterSeries(x: (0..<n).map { _ in rng.normal() }, y: (0..<n).map { _ in rng.normal() }))
    let folder = temporaryFolder()
    try figure.save(to: folder + "/crowd.pdf")
    let rasterized = bytes(folder + "/crowd.pdf")
    #expect(contains(rasterized, "/Subtype /Image"))
    figure.axes[0].rasterizesPoints = false
    try figure.save(to: folder + "/vector.pdf")
    let vector = bytes(folder + "/vector.pdf")
    #expect(!contains(vector, "/Subtype /Image"))
    #expect(rasterized.count < vector.count / 2)
}
