import Analysis
import Foundation

/// One input of a report as the provenance block lists it.
public struct InputRecord: Sendable {
    /// What it is: `checkpoint`, `table`, `log`.
    public var kind: String
    /// The path as given.
    public var path: String
    /// Total bytes, if known.
    public var bytes: Int?
    /// The content fingerprint (SHA-256 hex), if computed.
    public var sha256: String?
    /// Whether every byte went into the fingerprint (false: sampled, see `PageInfo.hashNote`).
    public var hashIsComplete: Bool

    /// A record of `path`.
    public init(kind: String, path: String, bytes: Int? = nil, sha256: String? = nil, hashIsComplete: Bool = true) {
        self.kind = kind; self.path = path; self.bytes = bytes; self.sha256 = sha256; self.hashIsComplete = hashIsComplete
    }
}

/// What the page says about how it was made.
public struct PageInfo: Sendable {
    /// `moe-inspect 0.1.0`.
    public var version: String
    /// The commit, and how it was found (e.g. "v0.1-3-gabc1234, from `git describe` of the checkout holding the binary at run time").
    public var commit: String?
    /// The full command line.
    public var command: String
    /// When the report was written.
    public var date: Date
    /// The inputs, with sizes and fingerprints.
    public var inputs: [InputRecord]
    /// What the fingerprints hash.
    public var hashNote: String
    /// Reload the page every this many seconds (a report that `watch` keeps rewriting), or nil.
    public var refreshSeconds: Int?

    /// Provenance of a report.
    public init(
        version: String = "moe-inspect", commit: String? = nil, command: String = "", date: Date = Date(),
        inputs: [InputRecord] = [], hashNote: String = "", refreshSeconds: Int? = nil
    ) {
        self.version = version; self.commit = commit; self.command = command; self.date = date
        self.inputs = inputs; self.hashNote = hashNote; self.refreshSeconds = refreshSeconds
    }
}

/// A section of the page: an anchor, a heading, HTML.
struct PageSection {
    var id: String
    var title: String
    var html: String
}

/// The static `index.html` of a report: works from the file system, no network. A small inline
/// script sorts tables on click, shows values under the pointer on heatmaps and t-SNE maps, and
/// sets `data-ready` on `<body>` once every image has loaded (`ok`, or `broken ` and the files).
enum ReportPage {
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A cell of an HTML table: numbers with four significant digits, sortable by their value.
    static func cell(_ c: Cell) -> String {
        switch c {
        case let .number(d) where d.isFinite: return "<td data-v=\"\(d)\">\(Readings.number(d))</td>"
        case let .int(i): return "<td data-v=\"\(i)\">\(i)</td>"
        case .empty: return "<td>–</td>"
        default: return "<td>\(escape(c.rendered))</td>"
        }
    }

    /// `table` as a scrolling, sortable HTML table.
    static func table(_ t: Table, caption: String? = nil, bad: ((Int) -> Bool)? = nil) -> String {
        var h = "<div class=\"scroll\"><table class=\"sortable\">"
        if let caption { h += "<caption>\(caption)</caption>" }
        h += "<thead><tr>" + t.columns.map { "<th title=\"click to sort\">\(escape($0))</th>" }.joined() + "</tr></thead><tbody>\n"
        for (i, r) in t.rows.enumerated() {
            h += "<tr\(bad?(i) == true ? " class=\"bad\"" : "")>" + r.map(cell).joined() + "</tr>\n"
        }
        return h + "</tbody></table></div>\n"
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

    /// The glossary: the quantities on the page, with their formulas.
    static let glossary = """
        <dl class="glossary">
        <dt id="g-m">M (activation matrix)</dt><dd>For router R [n × d] and expert j's gate projection W<sub>g</sub><sup>j</sup> [D × d]:
        M[i,j] = ‖R̃[i] W<sub>g</sub><sup>j</sup>ᵀ‖<sub>2</sub>, how strongly proxy token R̃[i] (router row i, perturbed) excites expert j.
        A coupled layer has a bright diagonal: each router row excites its own expert most.</dd>
        <dt id="g-eps">ε (noise bound)</dt><dd>ε<sub>i</sub> = min<sub>j≠i</sub> ‖R[i] − R[j]‖ / (2‖R[i]‖); the proxies are
        R̃[i] = δ<sub>i</sub> ⊙ R[i] with δ<sub>i</sub> ~ U(1 − ε<sub>i</sub>, 1 + ε<sub>i</sub>)<sup>d</sup>, so a proxy never crosses into another row's cell.
        Larger ε: router rows farther apart relative to their length.</dd>
        <dt id="g-erc">ERC loss</dt><dd>L = (1/n²) Σ<sub>i</sub> Σ<sub>j≠i</sub> [max(M[i,j] − α M[i,i], 0) + max(M[j,i] − α M[i,i], 0)]:
        the first term is <em>specialization</em> (proxy i must excite expert i most, rows of M), the second <em>precision</em>
        (expert i must respond most to its own proxy, columns of M). The paper uses α = 1 at 64 experts, 0.5 at 256.</dd>
        <dt id="g-alpha">α* (coupling threshold)</dt><dd>The smallest α at which the noise-free ERC loss is zero:
        max over i ≠ j of max(M[i,j], M[j,i]) / M[i,i]. Below 1: every expert already responds most to its own router row;
        the paper's vanilla MoE needed α = 5.</dd>
        <dt id="g-agree">agreement</dt><dd>On tokens: the mean over tokens t of |TopK<sub>router</sub>(t) ∩ TopK<sub>a</sub>(t)| / k, where
        a<sub>tj</sub> = ‖W<sub>g</sub><sup>j</sup> x<sub>t</sub>‖ is expert j's gate response to the token's MoE input x<sub>t</sub>; chance is k/n.
        It asks whether the router picks the experts that respond most (measured by the routing analyses, not on this page).</dd>
        <dt id="g-cos">router similarity</dt><dd>mean over i ≠ j of |cos(R[i], R[j])|; vanilla routers sit near 0.15.</dd>
        </dl>
        """

    /// The provenance block.
    static func provenance(_ info: PageInfo) -> String {
        let date = ISO8601DateFormatter().string(from: info.date)
        var h = "<table class=\"prov\">"
        h += "<tr><th>tool</th><td>\(escape(info.version))</td></tr>"
        h += "<tr><th>commit</th><td>\(escape(info.commit ?? "unknown (the binary does not sit in a git checkout)"))</td></tr>"
        h += "<tr><th>command</th><td><code>\(escape(info.command))</code></td></tr>"
        h += "<tr><th>written</th><td>\(date)</td></tr></table>\n"
        if !info.inputs.isEmpty {
            h +=
                "<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>input</th><th>path</th><th>bytes</th><th>SHA-256 fingerprint</th></tr></thead><tbody>\n"
            for i in info.inputs {
                let hash = i.sha256.map { "<code>\($0)</code>" + (i.hashIsComplete ? "" : " (sampled)") } ?? "–"
                h += "<tr><td>\(escape(i.kind))</td><td><code>\(escape(i.path))</code></td>"
                h += i.bytes.map { "<td data-v=\"\($0)\">\($0)</td>" } ?? "<td>–</td>"
                h += "<td>\(hash)</td></tr>\n"
            }
            h += "</tbody></table></div>\n"
            if !info.hashNote.isEmpty { h += "<p class=\"note\">Fingerprint: \(escape(info.hashNote)).</p>\n" }
        }
        return h
    }

    /// A page whose body is ready-made HTML (the routing report): no verdict, the body as one section.
    static func page(title: String, lede: String, body: String, figures: [ReportFigure], info: PageInfo = PageInfo()) -> String {
        page(title: title, lede: lede, verdict: [], sections: [PageSection(id: "results", title: "Results", html: body)], figures: figures, info: info)
    }

    /// A whole page: title, lede, verdict, sections, figures with their readings, glossary, provenance.
    static func page(
        title: String, lede: String, verdict: [String], sections: [PageSection], figures: [ReportFigure],
        info: PageInfo
    ) -> String {
        var all: [PageSection] =
            verdict.isEmpty
            ? []
            : [PageSection(id: "verdict", title: "Verdict", html: "<ul class=\"verdict\">" + verdict.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n")]
        all += sections
        var figs = ""
        if !figures.isEmpty {
            figs = "<div class=\"grid\">\n"
            for f in figures {
                let img = f.files.first { $0.hasSuffix(".png") } ?? f.files.first { $0.hasSuffix(".svg") } ?? f.files.first ?? ""
                let hover = f.hover.map { " data-hover=\"\(escape($0))\"" } ?? ""
                figs +=
                    "<figure id=\"fig-\(escape(f.stem))\"\(f.wide ? " class=\"wide\"" : "")><a href=\"\(escape(img))\"><img src=\"\(escape(img))\" alt=\"\(escape(f.title))\"\(hover)></a>"
                figs += "<figcaption><a class=\"anchor\" href=\"#fig-\(escape(f.stem))\">¶</a> <strong>\(escape(f.title)).</strong> \(escape(f.reading))"
                if f.hover != nil { figs += " <span class=\"files\">(values under the pointer)</span>" }
                figs +=
                    " <span class=\"files\">"
                    + f.files.map { "<a href=\"\(escape($0))\">\(escape(($0 as NSString).pathExtension))</a>" }.joined(separator: " · ")
                    + "</span></figcaption></figure>\n"
            }
            figs += "</div>\n"
            all.append(PageSection(id: "figures", title: "Figures", html: figs))
        }
        all.append(PageSection(id: "glossary", title: "Glossary", html: glossary))
        all.append(PageSection(id: "provenance", title: "Provenance", html: provenance(info)))

        var toc = "<nav class=\"toc\"><strong>Contents</strong><ol>"
        for s in all {
            toc += "<li><a href=\"#\(s.id)\">\(escape(s.title))</a>"
            if s.id == "figures" {
                toc += "<ol class=\"figs\">" + figures.map { "<li><a href=\"#fig-\(escape($0.stem))\">\(escape($0.title))</a></li>" }.joined() + "</ol>"
            }
            toc += "</li>"
        }
        toc += "</ol></nav>\n"

        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            \(info.refreshSeconds.map { "<meta http-equiv=\"refresh\" content=\"\($0)\">\n" } ?? "")<title>\(escape(title))</title>
            <style>
            body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 24px; color: #222; line-height: 1.45; }
            h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
            .lede { color: #555; margin-top: 0; } .note { color: #666; font-size: 0.85em; }
            .toc { background: #f7f7f7; border: 1px solid #e5e5e5; border-radius: 6px; padding: 8px 14px; font-size: 0.9em; }
            .toc ol { margin: 4px 0; padding-left: 1.4em; } .toc ol.figs { columns: 2; font-size: 0.92em; }
            .verdict li { margin: 3px 0; font-size: 1.05em; }
            .scroll { overflow: auto; max-height: 30em; border: 1px solid #eee; margin: 8px 0 4px; }
            table { border-collapse: collapse; font-size: 0.88em; }
            th, td { padding: 3px 9px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
            thead th { background: #f6f6f6; position: sticky; top: 0; cursor: pointer; user-select: none; }
            th.asc::after { content: " ▲"; } th.desc::after { content: " ▼"; }
            td:first-child, th:first-child { text-align: left; } caption { text-align: left; padding: 4px; color: #555; }
            table.prov th { text-align: left; background: none; cursor: default; position: static; vertical-align: top; } table.prov td { text-align: left; white-space: normal; }
            .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 18px; }
            figure { margin: 0; border: 1px solid #e5e5e5; border-radius: 6px; padding: 10px; background: #fff; position: relative; }
            figure img { width: 100%; height: auto; } figcaption { font-size: 0.9em; color: #333; margin-top: 6px; }
            figcaption .files { color: #888; font-size: 0.85em; } a { color: #1f5fa8; } a.anchor { color: #bbb; text-decoration: none; }
            .bad, tr.bad td { color: #b00020; }
            .wide { grid-column: 1 / -1; } .wide img { max-width: 980px; display: block; margin: 0 auto; }
            dl.glossary dt { font-weight: bold; margin-top: 8px; } dl.glossary dd { margin-left: 1.4em; }
            #tip { position: absolute; pointer-events: none; background: rgba(20,20,20,0.88); color: #fff; font-size: 12px; padding: 3px 7px; border-radius: 4px; display: none; z-index: 10; white-space: nowrap; }
            </style></head><body>
            <h1>\(escape(title))</h1>
            <p class="lede">\(lede)</p>

            """
        h += toc
        for s in all { h += "<h2 id=\"\(s.id)\">\(escape(s.title))</h2>\n" + s.html }
        h += "<p class=\"note\">Written by \(escape(info.version)).</p>\n<div id=\"tip\"></div>\n<script>\n" + script + "</script>\n</body></html>\n"
        return h
    }

    /// Sorting, hover values and the ready marker. No network, no libraries.
    static let script = #"""
        (function () {
          // Tables sort on a click on their heading (numbers by value, text alphabetically; again: reversed).
          document.querySelectorAll('table.sortable').forEach(function (table) {
            table.querySelectorAll('thead th').forEach(function (th, col) {
              th.addEventListener('click', function () {
                var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
                var asc = !th.classList.contains('asc');
                table.querySelectorAll('thead th').forEach(function (o) { o.classList.remove('asc', 'desc'); });
                th.classList.add(asc ? 'asc' : 'desc');
                function key(r) { var c = r.cells[col]; if (!c) return ''; var v = c.getAttribute('data-v'); return v === null ? c.textContent : parseFloat(v); }
                rows.sort(function (a, b) {
                  var x = key(a), y = key(b), d;
                  if (typeof x === 'number' && typeof y === 'number') d = x - y;
                  else if (typeof x === 'number') d = -1; else if (typeof y === 'number') d = 1;
                  else d = String(x).localeCompare(String(y));
                  return asc ? d : -d;
                });
                rows.forEach(function (r) { body.appendChild(r); });
              });
            });
          });
          // Values under the pointer: heatmap cells and t-SNE points.
          var tip = document.getElementById('tip');
          function fmt(v) { return (v === null || v === undefined) ? '–' : (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : +v.toPrecision(4)); }
          document.querySelectorAll('img[data-hover]').forEach(function (img) {
            var data; try { data = JSON.parse(img.getAttribute('data-hover')); } catch (e) { return; }
            img.addEventListener('mousemove', function (ev) {
              var r = img.getBoundingClientRect(), fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height, text = null;
              data.forEach(function (d) {
                if (text !== null) return;
                if (d.k === 'h') {
                  var b = d.box; if (fx < b[0] || fy < b[1] || fx > b[0] + b[2] || fy > b[1] + b[3]) return;
                  var j = Math.min(d.cols - 1, Math.floor((fx - b[0]) / b[2] * d.cols)), i = Math.min(d.rows - 1, Math.floor((fy - b[1]) / b[3] * d.rows));
                  text = (d.t ? d.t + ': ' : '') + d.r + ' ' + (d.rl ? d.rl[i] : i) + ', ' + d.c + ' ' + (d.cl ? d.cl[j] : j) + ': ' + d.n + ' = ' + fmt(d.v[i * d.cols + j]);
                } else if (d.k === 'p') {
                  var best = -1, bd = 1e9, ar = r.width / r.height;
                  for (var q = 0; q < d.p.length; q++) { var dx = (d.p[q][0] - fx) * ar, dy = d.p[q][1] - fy, dd = dx * dx + dy * dy; if (dd < bd) { bd = dd; best = q; } }
                  if (best >= 0 && Math.sqrt(bd) * r.height < 10) text = d.p[best][2];
                }
              });
              if (text === null) { tip.style.display = 'none'; return; }
              tip.textContent = text; tip.style.display = 'block';
              tip.style.left = (ev.pageX + 14) + 'px'; tip.style.top = (ev.pageY + 10) + 'px';
            });
            img.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
          });
          // The ready marker: every image loaded (or failed), then data-ready on <body>.
          var imgs = Array.prototype.slice.call(document.images);
          Promise.all(imgs.map(function (i) {
            return (i.complete) ? Promise.resolve() : new Promise(function (ok) { i.addEventListener('load', ok); i.addEventListener('error', ok); });
          })).then(function () {
            var broken = imgs.filter(function (i) { return !i.naturalWidth; }).map(function (i) { return i.getAttribute('src'); });
            var missing = Array.prototype.slice.call(document.querySelectorAll('a[href^="#"]')).map(function (a) { return a.getAttribute('href').slice(1); })
              .filter(function (id) { return !document.getElementById(id); });
            document.body.setAttribute('data-images', String(imgs.length));
            document.body.setAttribute('data-missing-anchors', missing.join(' '));
            document.body.setAttribute('data-ready', broken.length ? 'broken ' + broken.join(' ') : 'ok');
          });
        })();
        """#
}
