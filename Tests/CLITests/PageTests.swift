import Foundation
import Testing

/// The report pages opened in a real browser: headless Chromium loads index.html from the file
/// system, the page's script marks `<body data-ready="ok">` once every image has loaded (or
/// `broken FILES`), and every `#anchor` of the page resolves.
@Suite struct PageTests {
    let cli = CLITests()

    /// Debian's `chromium` (installed by `make deps`), or another Chromium/Chrome on PATH.
    static let chromium: String? = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
                let p = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
        }
        return nil
    }()

    /// The DOM of `page` after its scripts ran and its images loaded (Chromium waits for the
    /// virtual time budget or until the page is idle).
    func dumpDOM(_ page: String) throws -> String {
        let bin = try #require(Self.chromium)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + cli.temporaryFolder(),
            "--virtual-time-budget=20000", "--dump-dom", URL(fileURLWithPath: page).absoluteString,
        ]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: d, as: UTF8.self)
    }

    /// The value of attribute `name` on the `<body>` tag of `dom`.
    func bodyAttribute(_ dom: String, _ name: String) -> String? {
        guard let start = dom.range(of: "<body"), let end = dom[start.upperBound...].firstIndex(of: ">") else { return nil }
        let tag = dom[start.upperBound..<end]
        guard let a = tag.range(of: name + "=\"") else { return nil }
        return String(tag[a.upperBound...].prefix { $0 != "\"" })
    }

    /// Every `href="#x"` of `html` and every `id="x"`.
    func anchors(_ html: String) -> (links: Set<String>, ids: Set<String>) {
        func values(_ prefix: String) -> Set<String> {
            var out = Set<String>()
            var rest = html[...]
            while let r = rest.range(of: prefix) {
                let v = rest[r.upperBound...].prefix { $0 != "\"" }
                out.insert(String(v))
                rest = rest[r.upperBound...]
            }
            return out
        }
        return (values("href=\"#"), values(" id=\""))
    }

    func check(_ page: String) throws {
        let dom = try dumpDOM(page)
        #expect(
            bodyAttribute(dom, "data-ready") == "ok",
            "\(page): images did not all load: \(bodyAttribute(dom, "data-ready") ?? "no marker: the script did not finish")")
        #expect(bodyAttribute(dom, "data-missing-anchors") == "", "\(page): \(bodyAttribute(dom, "data-missing-anchors") ?? "")")
        #expect((Int(bodyAttribute(dom, "data-images") ?? "") ?? 0) >= 5)
        let (links, ids) = anchors(dom)
        #expect(!links.isEmpty)
        #expect(links.subtracting(ids).isEmpty, "anchors without a target: \(links.subtracting(ids))")
        for must in ["verdict", "provenance", "glossary", "figures"] { #expect(ids.contains(must), "\(must)") }
        // Tables sort and heatmaps show values: the script and its data are in the page.
        #expect(dom.contains("class=\"sortable\"") && dom.contains("data-hover="))
    }

    @Test(.enabled(if: PageTests.chromium != nil, "chromium is not installed: apt-get install -y chromium (make deps installs it)"))
    func reportAndComparisonPagesLoadInChromium() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = try cli.run(["report", CLITests.fixtures + "/olmoe-tiny", "--out", root + "/rep", "--dpi", "50", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        try check(root + "/rep/index.html")
        let c = try cli.run([
            "compare", CLITests.fixtures + "/olmoe-tiny", CLITests.fixtures + "/olmoe-tiny-flat", CLITests.fixtures + "/qwen3-moe-tiny",
            "--out", root + "/cmp", "--format", "svg", "--dpi", "50", "-q",
        ])
        #expect(c.status == 0, "\(c.stderr)")
        try check(root + "/cmp/index.html")
        // A page whose figure is missing says so.
        try FileManager.default.removeItem(atPath: root + "/rep/figures/coupling_alpha.png")
        let dom = try dumpDOM(root + "/rep/index.html")
        #expect(bodyAttribute(dom, "data-ready")?.hasPrefix("broken figures/coupling_alpha.png") == true)
    }

    @Test func thePageCarriesProvenanceAndAGlossary() throws {
        let root = cli.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = try cli.run(["report", CLITests.fixtures + "/olmoe-tiny", "--out", root + "/rep", "--no-tsne", "--dpi", "40", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let html = try String(contentsOfFile: root + "/rep/index.html", encoding: .utf8)
        for s in ["SHA-256", "olmoe-tiny", "report", "α*", "ERC loss", "agreement", "specialization", "Contents"] {
            #expect(html.contains(s), "\(s)")
        }
        // The fingerprint of a fixture whose bytes do not change (files hashed whole: name, size, bytes).
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/rep/summary.json"))) as? [String: Any]
        let inputs = (summary?["inputs"] as? [[String: Any]]) ?? []
        #expect(inputs.first?["sha256_complete"] as? Bool == true)
        #expect((inputs.first?["sha256"] as? String)?.count == 64)
        #expect(inputs.first?["bytes"] as? Int == 174400 + 819 + 199 || inputs.first?["bytes"] as? Int == 174400 + 819)
    }
}
