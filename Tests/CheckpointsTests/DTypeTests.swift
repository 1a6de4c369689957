import Foundation
import Tensors
import TestSupport
import Testing

@testable import Checkpoints

/// Decoding and encoding of every dtype against files written by the Python safetensors and h5py packages.
@Suite struct DTypeTests {
    @Test func safetensorsDTypesDecodeLikeTorch() throws {
        let expected = try loadJSON("dtypes/expected.json")
        let tensors = try #require(expected["tensors"] as? [String: [String: Any]])
        let ckpt = try Checkpoint.open(fixtures + "/dtypes/all-dtypes.safetensors")
        #expect(tensors.count == 17)
        for (name, e) in tensors {
            let info = try #require(ckpt.info(name), "missing \(name)")
            #expect(info.dtype.rawValue == e["dtype"] as? String, "\(name)")
            let want = flatten(e["values"] as Any)
            let got = try ckpt.tensor(name, dequantize: false).storage
            #expect(got.count == want.count, "\(name)")
            for (g, w) in zip(got, want) {
                // Values are printed by Python as decimals; Foundation parses them to the nearest
                // Double only approximately, so compare after rounding to Float32.
                if w.isNaN { #expect(g.isNaN, "\(name)") } else { #expect(g == Float(w), "\(name): \(g) vs \(w)") }
            }
        }
    }

    @Test func bf16AndF16EncodingMatchesTorchRounding() throws {
        let expected = try loadJSON("dtypes/expected.json")
        let tensors = try #require(expected["tensors"] as? [String: [String: Any]])
        for (name, dtype) in [("bf16", DType.bf16), ("f16", .f16)] {
            let e = try #require(tensors[name])
            let source = flatten(e["source"] as Any).map { Float($0) }
            let raw = hexBytes(try #require(e["raw_hex"] as? String))
            var out = [UInt8](repeating: 0, count: source.count * 2)
            source.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBytes { Conversion.encode(dtype, from: s.baseAddress!, count: s.count, into: $0.baseAddress!) }
            }
            // NaN payloads may differ; compare everything else bit for bit.
            for i in 0..<source.count where !source[i].isNaN {
                #expect(out[2 * i] == raw[2 * i] && out[2 * i + 1] == raw[2 * i + 1], "\(name)[\(i)] = \(source[i])")
            }
        }
    }

    @Test func fp8TablesMatchTorchForAll256Codes() throws {
        let expected = try loadJSON("dtypes/expected.json")
        let tensors = try #require(expected["tensors"] as? [String: [String: Any]])
        for (name, table) in [("f8_e4m3", Conversion.f8e4m3Table), ("f8_e5m2", Conversion.f8e5m2Table)] {
            let want = flatten(try #require(tensors[name])["values"] as Any)
            #expect(want.count == 256)
            for code in 0..<256 {
                if want[code].isNaN { #expect(table[code].isNaN, "\(name) \(code)") } else { #expect(Double(table[code]) == want[code], "\(name) \(code)") }
            }
        }
    }

    @Test func fp8E4M3EncodingMatchesTorchRounding() throws {
        // fixtures/fp8/make_encode_fixture.py: codes, signed zeros, ties and their neighbours,
        // random magnitudes, each with the code PyTorch's float8_e4m3fn conversion gives.
        let expected = try loadJSON("fp8/encode-e4m3.json")
        let bits = try #require(expected["float32_bits"] as? [NSNumber]).map { UInt32(truncating: $0) }
        let codes = try #require(expected["codes"] as? [NSNumber]).map { UInt8(truncating: $0) }
        #expect(bits.count == codes.count && bits.count > 1000)
        for (b, code) in zip(bits, codes) {
            let x = Float(bitPattern: b)
            #expect(Conversion.f8e4m3Code(x) == code, "\(x) (bits \(b))")
        }
        // Beyond the range PyTorch gives NaN; DeepSeek's quantiser clamps first, and so do we.
        #expect(Conversion.f8e4m3Code(1000) == 0x7E && Conversion.f8e4m3Code(-.infinity) == 0xFE && Conversion.f8e4m3Code(.nan) == 0x7F)
    }

    @Test func h5pyDTypesDecode() throws {
        let expected = try loadJSON("dtypes/h5py-expected.json")
        let datasets = try #require((expected["datasets"] ?? expected["tensors"]) as? [String: [String: Any]])
        let ckpt = try Checkpoint.open(fixtures + "/dtypes/h5py-dtypes.h5")
        #expect(ckpt.format == .hdf5)
        for (name, e) in datasets {
            let got = try ckpt.tensor(name).storage
            let want = flatten(e["values"] as Any)
            #expect(got.count == want.count, "\(name)")
            for (g, w) in zip(got, want) { #expect(g == Float(w) || (g.isNaN && w.isNaN), "\(name): \(g) vs \(w)") }
        }
    }

    @Test func deepSeekFP8BlockDequantisation() throws {
        let expected = try loadJSON("fp8/expected.json")
        let ckpt = try Checkpoint.open(fixtures + "/fp8/fp8-block.safetensors")
        let w = try ckpt.tensor("w.weight")
        #expect(w.shape == [200, 300])
        let samples = try #require(expected["samples"] as? [[String: Any]])
        #expect(!samples.isEmpty)
        for s in samples {
            let r = try #require(s["row"] as? Int), c = try #require(s["col"] as? Int)
            let v = try #require((s["value_f32"] ?? s["value"]) as? Double)
            #expect(abs(Double(w[r, c]) - v) <= 1e-6 * max(1, abs(v)), "(\(r), \(c))")
        }
        let sum = try #require((expected["sum_float64"] ?? expected["sum"]) as? Double)
        #expect(abs(w.storage.reduce(0.0) { $0 + Double($1) } - sum) < 1e-3)
        // Without dequantisation the raw FP8 values come back.
        let raw = try ckpt.tensor("w.weight", dequantize: false)
        #expect(raw.storage != w.storage)
    }
}
