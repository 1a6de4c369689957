import CCairo
import CPNG
import Foundation

/// Bytes gathered from a C writer (Cairo's or libpng's write callback).
private final class ByteSink {
    var bytes: [UInt8] = []
}

/// Cairo's write callback: appends to the `ByteSink` passed as closure.
private let cairoWrite: cairo_write_func_t = { closure, data, length in
    guard let closure, let data else { return CAIRO_STATUS_WRITE_ERROR }
    Unmanaged<ByteSink>.fromOpaque(closure).takeUnretainedValue().bytes
        .append(contentsOf: UnsafeBufferPointer(start: data, count: Int(length)))
    return CAIRO_STATUS_SUCCESS
}

/// libpng's write callback: appends to the `ByteSink` set as io pointer.
private let pngWrite: @convention(c) (png_structp?, png_bytep?, Int) -> Void = { png, data, length in
    guard let data, let io = png_get_io_ptr(png) else { return }
    Unmanaged<ByteSink>.fromOpaque(io).takeUnretainedValue().bytes
        .append(contentsOf: UnsafeBufferPointer(start: data, count: length))
}

private let pngFlush: @convention(c) (png_structp?) -> Void = { _ in }

/// Encoding a laid-out figure as PNG, PDF or SVG bytes, and writing files atomically.
enum Output {
    static func encode(
        _ figure: Figure, layout: FigureLayout, format: OutputFormat,
        provenance: [String: String], file: String
    ) throws(PlotError) -> [UInt8] {
        switch format {
        case .png: return try png(figure, layout, provenance, file)
        case .pdf: return try vector(figure, layout, provenance, file, pdf: true)
        case .svg: return try svg(figure, layout, provenance, file)
        }
    }

    /// Draws the figure on `surface` (`scale` device units per point); the Cairo failure, if any.
    private static func draw(
        _ figure: Figure, _ layout: FigureLayout, on surface: OpaquePointer, scale: Double,
        vector: Bool
    ) -> String? {
        let canvas = Canvas(surface: surface, scale: scale)
        Renderer(figure: figure, layout: layout, canvas: canvas, isVector: vector).draw()
        return canvas.failure
    }

    // MARK: PNG

    /// Renders on a Cairo ARGB32 image surface at `dpi`, then encodes 8-bit RGB through libpng
    /// with a pHYs chunk (the resolution) and one text chunk per provenance record.
    private static func png(
        _ figure: Figure, _ layout: FigureLayout, _ provenance: [String: String],
        _ file: String
    ) throws(PlotError) -> [UInt8] {
        var records = provenance
        if records["Title"] == nil, let title = figure.title, !title.isEmpty {
            records["Title"] = RichText(markup: title).plainText
        }
        for key in records.keys where !validKey(key) { throw .invalidProvenance(file: file, key: key) }
        let width = Int((layout.width * figure.dpi / 72).rounded()), height = Int((layout.height * figure.dpi / 72).rounded())
        guard width > 0, height > 0, width <= 32_767, height <= 32_767 else {
            throw .renderFailed(file: file, reason: "\(width) x \(height) pixels is outside 1...32767 (lower the dpi)")
        }
        guard let surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(width), Int32(height)),
            cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS
        else {
            throw .renderFailed(file: file, reason: "cannot create a \(width) x \(height) image")
        }
        defer { cairo_surface_destroy(surface) }
        if let failure = draw(figure, layout, on: surface, scale: figure.dpi / 72, vector: false) {
            throw .renderFailed(file: file, reason: failure)
        }
        cairo_surface_flush(surface)
        guard let data = cairo_image_surface_get_data(surface) else {
            throw .renderFailed(file: file, reason: "the image has no pixels")
        }
        let stride = Int(cairo_image_surface_get_stride(surface))
        // Cairo stores premultiplied 0xAARRGGBB words; the page is opaque white, so alpha is 255.
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let row = UnsafeRawPointer(data + y * stride).assumingMemoryBound(to: UInt32.self)
            for x in 0..<width {
                let p = row[x], o = (y * width + x) * 3
                rgb[o] = UInt8((p >> 16) & 0xFF)
                rgb[o + 1] = UInt8((p >> 8) & 0xFF)
                rgb[o + 2] = UInt8(p & 0xFF)
            }
        }
        return try encodePNG(rgb: rgb, width: width, height: height, dpi: figure.dpi, text: records, file: file)
    }

    /// Whether `key` can be a PNG text keyword: 1-79 printable ASCII characters, no leading,
    /// trailing or double spaces.
    static func validKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        return (1...79).contains(bytes.count) && bytes.allSatisfy { (32...126).contains($0) }
            && bytes.first != 32 && bytes.last != 32 && !key.contains("  ")
    }

    /// 8-bit RGB rows to PNG bytes. Values in printable ASCII go in tEXt chunks, others in
    /// uncompressed iTXt (UTF-8). All chunks precede the image data.
    static func encodePNG(
        rgb: [UInt8], width: Int, height: Int, dpi: Double, text: [String: String],
        file: String
    ) throws(PlotError) -> [UInt8] {
        var png: png_structp? = png_create_write_struct(PNG_LIBPNG_VER_STRING, nil, nil, nil)
        var info: png_infop? = png.flatMap { png_create_info_struct($0) }
        defer { png_destroy_write_struct(&png, &info) }
        guard png != nil, info != nil else { throw .renderFailed(file: file, reason: "libpng cannot start") }
        let sink = ByteSink()
        let io = Unmanaged.passUnretained(sink).toOpaque()
        png_set_write_fn(png, io, pngWrite, pngFlush)
        // PNG_COLOR_TYPE_RGB = 2, PNG_INTERLACE_NONE = 0, default compression and filter = 0.
        png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), 8, 2, 0, 0, 0)
        let perMetre = png_uint_32((dpi / 0.0254).rounded())
        png_set_pHYs(png, info, perMetre, perMetre, 1)  // PNG_RESOLUTION_METER

        var allocations: [UnsafeMutablePointer<CChar>] = []
        defer { allocations.forEach { free($0) } }
        func cString(_ s: String) -> UnsafeMutablePointer<CChar>? {
            guard let p = strdup(s) else { return nil }
            allocations.append(p)
            return p
        }
        var chunks: [png_text] = []
        for (key, value) in text.sorted(by: { $0.key < $1.key }) {
            var chunk = png_text()
            let ascii = value.utf8.allSatisfy { (32...126).contains($0) || $0 == 10 }
            chunk.compression = ascii ? -1 : 1  // PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE
            chunk.key = cString(key)
            chunk.text = cString(value)
            chunk.text_length = ascii ? value.utf8.count : 0
            chunk.itxt_length = ascii ? 0 : value.utf8.count
            chunks.append(chunk)
        }
        if !chunks.isEmpty { png_set_text(png, info, &chunks, Int32(chunks.count)) }
        png_write_info(png, info)
        rgb.withUnsafeBufferPointer { pixels in
            guard let base = pixels.baseAddress else { return }
            for y in 0..<height { png_write_row(png, base + y * width * 3) }
        }
        png_write_end(png, nil)
        return sink.bytes
    }

    // MARK: PDF and SVG

    /// Renders on a Cairo PDF or SVG surface (units: points) into memory.
    private static func vector(
        _ figure: Figure, _ layout: FigureLayout, _ provenance: [String: String],
        _ file: String, pdf: Bool
    ) throws(PlotError) -> [UInt8] {
        let sink = ByteSink()
        let closure = Unmanaged.passUnretained(sink).toOpaque()
        let surface =
            pdf
            ? cairo_pdf_surface_create_for_stream(cairoWrite, closure, layout.width, layout.height)
            : cairo_svg_surface_create_for_stream(cairoWrite, closure, layout.width, layout.height)
        guard let surface, cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS else {
            throw .renderFailed(file: file, reason: "cannot create a \(pdf ? "PDF" : "SVG") surface")
        }
        if pdf {
            let title = provenance["Title"] ?? figure.title.map { RichText(markup: $0).plainText } ?? ""
            if !title.isEmpty { cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, title) }
            if let software = provenance["Software"] { cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, software) }
            let keywords = provenance.filter { $0.key != "Software" && $0.key != "Title" }.sorted { $0.key < $1.key }
                .map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            if !keywords.isEmpty { cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_KEYWORDS, keywords) }
        }
        let failure = draw(figure, layout, on: surface, scale: 1, vector: true)
        cairo_surface_finish(surface)
        let status = cairo_surface_status(surface)
        cairo_surface_destroy(surface)
        if let failure { throw .renderFailed(file: file, reason: failure) }
        guard status == CAIRO_STATUS_SUCCESS else {
            throw .renderFailed(file: file, reason: String(cString: cairo_status_to_string(status)))
        }
        return sink.bytes
    }

    /// The SVG with a `<title>` (the figure title) and a `<desc>` (the provenance, one
    /// `key: value` line each) inserted as the first children of the root element; Cairo draws
    /// text as glyph outlines, so these are where the words can be found.
    private static func svg(
        _ figure: Figure, _ layout: FigureLayout, _ provenance: [String: String],
        _ file: String
    ) throws(PlotError) -> [UInt8] {
        let bytes = try vector(figure, layout, provenance, file, pdf: false)
        guard var text = String(validating: bytes, as: UTF8.self),
            let open = text.range(of: "<svg"), let close = text[open.upperBound...].firstIndex(of: ">")
        else {
            throw .renderFailed(file: file, reason: "Cairo wrote no SVG root element")
        }
        var head = ""
        let title = provenance["Title"] ?? figure.title.map { RichText(markup: $0).plainText } ?? ""
        if !title.isEmpty { head += "\n<title>\(xmlEscaped(title))</title>" }
        if !provenance.isEmpty {
            let lines = provenance.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "\n")
            head += "\n<desc>\(xmlEscaped(lines))</desc>"
        }
        text.insert(contentsOf: head, at: text.index(after: close))
        return Array(text.utf8)
    }

    static func xmlEscaped(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    // MARK: Files

    /// Writes `bytes` to a temporary file beside `path` and renames it onto `path`.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(PlotError) {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw .writeFailed(file: path, reason: String(cString: strerror(errno))) }
        var written = 0
        let failure: String? = bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return nil }
            while written < raw.count {
                let n = write(fd, base + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                written += n
            }
            return nil
        }
        if close(fd) != 0 || failure != nil {
            let reason = failure ?? String(cString: strerror(errno))
            unlink(temporary)
            throw .writeFailed(file: path, reason: reason)
        }
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .writeFailed(file: path, reason: "cannot rename into place: \(reason)")
        }
    }
}
