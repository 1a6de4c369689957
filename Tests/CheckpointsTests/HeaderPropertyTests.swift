import Foundation
import PropertyBased
import TestSupport
import Testing

@testable import Checkpoints

/// Properties of the safetensors header parser and of CSV that must hold for every input, not
/// only for the hand-picked cases: shape arithmetic never overflows into a wrong size, a
/// damaged header is an error and never a trap, and CSV reads back what it wrote.
@Suite struct HeaderPropertyTests {
    static let dtypes: [(String, Int)] = [("F32", 4), ("BF16", 2), ("F16", 2), ("F64", 8), ("I64", 8), ("U8", 1), ("F8_E4M3", 1), ("BOOL", 1)]

    /// A file image: length, `header`, then `data` bytes.
    func image(_ header: String, data: Int) -> [UInt8] {
        let h = Array(header.utf8)
        var n = UInt64(h.count).littleEndian
        return withUnsafeBytes(of: &n) { Array($0) } + h + [UInt8](repeating: 0, count: data)
    }

    @Test func shapeArithmeticIsExactOrAnError() async {
        await propertyCheck(
            count: 400, input: Gen.int(in: 0...(Self.dtypes.count - 1)),
            Gen.int(in: 0...(1 << 62)).array(of: 0...5), Gen.int(in: 0...64)
        ) { d, dims, stored in
            let (dtype, width) = Self.dtypes[d]
            // The true byte count, or nil when it does not fit in 63 bits.
            var bytes: Int? = width
            for x in dims {
                bytes = bytes.flatMap { b in
                    let (p, o) = b.multipliedReportingOverflow(by: x); return o ? nil : p
                }
            }
            let end = min(bytes ?? stored, stored)
            let header = "{\"t\":{\"dtype\":\"\(dtype)\",\"shape\":[\(dims.map(String.init).joined(separator: ","))],\"data_offsets\":[0,\(end)]}}"
            let file = image(header, data: end)
            do {
                let parsed = try file.withUnsafeBytes { try SafetensorsHeader.parse($0, file: "p") }
                #expect(bytes == end, "accepted \(dims) \(dtype) spanning \(end) bytes; it needs \(String(describing: bytes))")
                #expect(parsed.entries.first?.shape == dims)
            } catch {
                #expect(bytes != end, "refused a valid header: \(error)")
            }
        }
    }

    @Test func damagedHeadersAreErrorsNeverTraps() async {
        let header =
            "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}"
        let good = image(header, data: 32)
        await propertyCheck(
            count: 1500, input: Gen.int(in: 0...(good.count - 1)).array(of: 1...6),
            Gen<UInt8>.value(in: 0...255).array(of: 6)
        ) { positions, values in
            var bad = good
            for (p, v) in zip(positions, values) { bad[p] = v }
            // Either a header (whose entries then lie inside the file) or a CheckpointError.
            if let parsed = try? bad.withUnsafeBytes({ try SafetensorsHeader.parse($0, file: "p") }) {
                for e in parsed.entries { #expect(parsed.dataStart + e.end <= bad.count) }
            }
        }
    }

    @Test func csvReadsBackWhatItWrote() async {
        let alphabet: [Character] = ["a", "Z", "0", ",", "\"", "\n", "\r", " ", "é", "\u{301}", "🙂", ";"]
        await propertyCheck(count: 500, input: Gen.element(of: alphabet).array(of: 0...8).array(of: 1...6).array(of: 1...4)) { rows in
            let records: [[String]] = rows.map { record in record.map { (field: [Character?]) in String(field.compactMap { $0 }) } }
            let text = records.map(CSV.record).joined()
            let parsed = try? CSV.parse(text, source: "p")
            #expect(parsed?.records == records, "\(records.map { $0.map { $0.debugDescription } })")
            #expect(parsed?.partial == nil)
        }
    }
}
