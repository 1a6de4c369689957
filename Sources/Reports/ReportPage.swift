import Analysis
import Foundation

/// The static `index.html` of a report: works from the file system, no scripts, no network.
enum ReportPage {
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func html(title: String, runs: [CheckpointCoupling], options: CouplingOptions, figures: [ReportFigure]) -> String {
        var body = ""
        for r in runs.suffix(1) {
            body += "<h2>Layers of \(escape(r.checkpoint))</h2>\n<table><tr><th>layer</th><th>experts</th>"
            for a in options.alphas { body += "<th>ERC loss α=\(String(format: "%g", a))</th>" }
            body += "<th>α*</th><th>mean ε</th><th>mean |cos|</th><th>status</th></tr>\n"
            for l in r.layers {
                body += "<tr><td>\(l.layer)</td><td>\(l.experts)</td>"
                for a in l.ercLosses { body += String(format: "<td>%.4g</td>", a.loss.mean) }
                if l.ercLosses.isEmpty { body += String(repeating: "<td>–</td>", count: options.alphas.count) }
                let eps = l.eps.isEmpty ? "–" : String(format: "%.4f", l.eps.reduce(0, +) / Double(l.eps.count))
                body += l.isOK ? String(format: "<td>%.3f</td>", l.couplingAlpha) : "<td>–</td>"
                body += "<td>\(eps)</td><td>\(l.geometry.map { String(format: "%.3f", $0.meanAbsCosine) } ?? "–")</td>"
                body += "<td\(l.isOK ? "" : " class=\"bad\"")>\(escape(l.status.description))</td></tr>\n"
            }
            body += "</table>\n"
        }
        body += "<p>Tables: <a href=\"tables/erc.csv\">erc.csv</a> · <a href=\"tables/epsilon.csv\">epsilon.csv</a> · <a href=\"tables/similarity.csv\">similarity.csv</a> · <a href=\"tables/matrices/\">matrices/</a> · <a href=\"summary.json\">summary.json</a></p>\n"
        return page(title: title, lede: lede(options), body: body, figures: figures)
    }

    /// What the numbers are, in one paragraph.
    static func lede(_ options: CouplingOptions) -> String {
        """
        Expert-router coupling (Lv et al., ICLR 2026). M[i,j] = ‖R̃[i] W<sub>g</sub><sup>j</sup>ᵀ‖ with proxies R̃ = δ ⊙ R;
        ERC loss at α = \(options.alphas.map { String(format: "%g", $0) }.joined(separator: ", ")); probe feature <code>\(options.feature.rawValue)</code>;
        \(options.noise ? "\(max(1, options.samples)) noise sample(s), seed \(options.seed)" : "no noise").
        α* is the smallest α at which the noise-free ERC loss is zero.
        """
    }

    /// A whole page: title, lede paragraph, body HTML, then the figures with their readings.
    static func page(title: String, lede: String, body: String, figures: [ReportFigure]) -> String {
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>
        body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 24px; color: #222; line-height: 1.45; }
        h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        .lede { color: #555; margin-top: 0; }
        table { border-collapse: collapse; font-size: 0.88em; margin: 8px 0 4px; }
        th, td { padding: 3px 9px; border-bottom: 1px solid #eee; text-align: right; } th { background: #f6f6f6; } td:first-child, th:first-child { text-align: left; }
        .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 18px; }
        figure { margin: 0; border: 1px solid #e5e5e5; border-radius: 6px; padding: 10px; background: #fff; }
        figure img { width: 100%; height: auto; } figcaption { font-size: 0.9em; color: #333; margin-top: 6px; }
        figcaption .files { color: #888; font-size: 0.85em; } a { color: #1f5fa8; }
        .bad { color: #b00020; }
        .wide { grid-column: 1 / -1; } .wide img { max-width: 980px; display: block; margin: 0 auto; }
        .scroll { overflow-x: auto; }
        </style></head><body>
        <h1>\(escape(title))</h1>
        <p class="lede">\(lede)</p>

        """
        h += body
        h += "<h2>Figures</h2>\n<div class=\"grid\">\n"
        for f in figures {
            let img = f.files.first { $0.hasSuffix(".png") } ?? f.files.first { $0.hasSuffix(".svg") } ?? f.files.first ?? ""
            h += "<figure\(f.wide ? " class=\"wide\"" : "")><a href=\"\(escape(img))\"><img src=\"\(escape(img))\" alt=\"\(escape(f.title))\" loading=\"lazy\"></a>"
            h += "<figcaption><strong>\(escape(f.title)).</strong> \(escape(f.reading))"
            h += " <span class=\"files\">" + f.files.map { "<a href=\"\(escape($0))\">\(escape(($0 as NSString).pathExtension))</a>" }.joined(separator: " · ") + "</span></figcaption></figure>\n"
        }
        h += "</div>\n<p class=\"lede\">Written by moe-inspect.</p>\n</body></html>\n"
        return h
    }
}
