import CCairo
import CPNG
import Foundation
import Plotting

/// A fresh temporary folder.
func temporaryFolder() -> String {
    let p = NSTemporaryDirectory() + "moe-inspect-plotting-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

/// The pixels of a PNG file as decoded by Cairo (independently of the libpng writer).
struct DecodedImage {
    let width: Int
    let height: Int
    let pixels: [UInt32]

    init?(png path: String) {
        guard let surface = cairo_image_surface_create_from_png(path),
            cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS,
            let data = cairo_image_surface_get_data(surface)
        else { return nil }
        defer { cairo_surface_destroy(surface) }
        width = Int(cairo_image_surface_get_width(surface))
        height = Int(cairo_image_surface_get_height(surface))
        let stride = Int(cairo_image_surface_get_stride(surface))
        var pixels: [UInt32] = []
        pixels.reserveCapacity(width * height)
        for y in 0..<height {
            let row = UnsafeRawPointer(data + y * stride).assumingMemoryBound(to: UInt32.self)
            for x in 0..<width { pixels.append(row[x]) }
        }
        self.pixels = pixels
    }

    /// (red, green, blue) at column x, row y.
    func rgb(_ x: Int, _ y: Int) -> (Int, Int, Int) {
        let p = pixels[y * width + x]
        return (Int((p >> 16) & 0xFF), Int((p >> 8) & 0xFF), Int(p & 0xFF))
    }

    func rgb(_ pixel: (x: Int, y: Int)) -> (Int, Int, Int) { rgb(pixel.x, pixel.y) }
}

/// Whether two colours differ by at most `tolerance` in every 8-bit channel.
func close(_ a: (Int, Int, Int), _ hex: UInt32, tolerance: Int = 2) -> Bool {
    let b = (Int((hex >> 16) & 0xFF), Int((hex >> 8) & 0xFF), Int(hex & 0xFF))
    return abs(a.0 - b.0) <= tolerance && abs(a.1 - b.1) <= tolerance && abs(a.2 - b.2) <= tolerance
}

/// `0xRRGGBB` of a colour's 8-bit rendering.
func hex(_ c: RGBColor) -> UInt32 {
    let (r, g, b) = c.bytes
    return UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)
}

/// The text chunks of a PNG file, read back with libpng: key -> (value, was it iTXt).
func pngText(_ path: String) -> [String: (value: String, international: Bool)] {
    guard let file = fopen(path, "rb") else { return [:] }
    defer { fclose(file) }
    var png: png_structp? = png_create_read_struct(PNG_LIBPNG_VER_STRING, nil, nil, nil)
    var info: png_infop? = png.flatMap { png_create_info_struct($0) }
    defer { png_destroy_read_struct(&png, &info, nil) }
    guard png != nil, info != nil else { return [:] }
    png_init_io(png, file)
    png_read_info(png, info)
    var text: png_textp?
    var count: Int32 = 0
    png_get_text(png, info, &text, &count)
    var out: [String: (String, Bool)] = [:]
    for i in 0..<Int(count) {
        guard let chunk = text?[i], let key = chunk.key, let value = chunk.text else { continue }
        out[String(cString: key)] = (String(cString: value), chunk.compression >= 1)
    }
    return out
}

/// The bytes of a file.
func bytes(_ path: String) -> [UInt8] {
    (try? Data(contentsOf: URL(fileURLWithPath: path))).map { Array($0) } ?? []
}

/// Whether `needle` occurs in `haystack`.
func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
    let n = Array(needle.utf8)
    guard !n.isEmpty, haystack.count >= n.count else { return false }
    for i in 0...(haystack.count - n.count) where haystack[i] == n[0] && Array(haystack[i..<(i + n.count)]) == n { return true }
    return false
}

/// Whether two convex polygons share interior area deeper than `slack` points (separating axis
/// theorem: they are apart when their projections on some edge normal do not overlap).
func overlap(_ a: [Point], _ b: [Point], slack: Double = 0.01) -> Bool {
    for polygon in [a, b] {
        for i in polygon.indices {
            let p = polygon[i], q = polygon[(i + 1) % polygon.count]
            let nx = p.y - q.y, ny = q.x - p.x
            let length = (nx * nx + ny * ny).squareRoot()
            guard length > 0 else { continue }
            let pa = a.map { ($0.x * nx + $0.y * ny) / length }, pb = b.map { ($0.x * nx + $0.y * ny) / length }
            if (pa.max() ?? 0) <= (pb.min() ?? 0) + slack || (pb.max() ?? 0) <= (pa.min() ?? 0) + slack { return false }
        }
    }
    return true
}
