/// Decoding of stored elements to Float32 and encoding back, for every `DType`.
///
/// All routines work on raw little-endian bytes (safetensors and HDF5 little-endian files) and
/// never allocate per element. BF16 and F16 rounding is round-to-nearest-even, as PyTorch does.
public enum Conversion {
    /// Float32 value of each of the 256 F8_E4M3 (fn: no infinities, 0x7F/0xFF are NaN) codes.
    public static let f8e4m3Table: [Float] = (0..<256).map { code in
        let sign: Float = (code & 0x80) != 0 ? -1 : 1
        let exponent = (code >> 3) & 0xF
        let mantissa = code & 0x7
        if exponent == 0xF && mantissa == 0x7 { return .nan }
        if exponent == 0 { return sign * Float(mantissa) / 8 * Float(sign: .plus, exponent: -6, significand: 1) }
        return sign * (1 + Float(mantissa) / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    /// Float32 value of each of the 256 F8_E5M2 codes (IEEE-like, with infinities and NaNs).
    public static let f8e5m2Table: [Float] = (0..<256).map { code in
        let sign: Float = (code & 0x80) != 0 ? -1 : 1
        let exponent = (code >> 2) & 0x1F
        let mantissa = code & 0x3
        if exponent == 0x1F { return mantissa == 0 ? sign * .infinity : .nan }
        if exponent == 0 { return sign * Float(mantissa) / 4 * Float(sign: .plus, exponent: -14, significand: 1) }
        return sign * (1 + Float(mantissa) / 4) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
    }

    /// Decodes `count` elements of `dtype` from `source` into `destination`.
    /// - Parameters:
    ///   - source: raw bytes, at least `count * dtype.byteSize` long; any alignment.
    ///   - destination: room for `count` floats.
    public static func decode(
        _ dtype: DType, from source: UnsafeRawPointer, count: Int,
        into destination: UnsafeMutablePointer<Float>
    ) {
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        case .bf16:
            decodeBF16(source, count: count, into: destination)
        case .f16:
            for i in 0..<count {
                destination[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .f64:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .f8e4m3:
            f8e4m3Table.withUnsafeBufferPointer { t in
                let b = source.assumingMemoryBound(to: UInt8.self)
                for i in 0..<count { destination[i] = t[Int(b[i])] }
            }
        case .f8e5m2:
            f8e5m2Table.withUnsafeBufferPointer { t in
                let b = source.assumingMemoryBound(to: UInt8.self)
                for i in 0..<count { destination[i] = t[Int(b[i])] }
            }
        case .bool, .u8:
            let b = source.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { destination[i] = Float(b[i]) }
        case .i8:
            let b = source.assumingMemoryBound(to: Int8.self)
            for i in 0..<count { destination[i] = Float(b[i]) }
        case .u16:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .i16:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .u32:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
        case .i32:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .u64:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
        case .i64:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        }
    }

    /// BF16 -> Float32: the 16 stored bits are the high half of the float. Vectorises in release.
    @inline(__always)
    static func decodeBF16(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        if Int(bitPattern: source) & 1 == 0 {
            let s = source.assumingMemoryBound(to: UInt16.self)
            let d = UnsafeMutableRawPointer(destination).assumingMemoryBound(to: UInt32.self)
            for i in 0..<count { d[i] = UInt32(s[i]) << 16 }
        } else {
            for i in 0..<count {
                destination[i] = Float(bitPattern: UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        }
    }

    /// Float32 -> BF16 bits with round-to-nearest-even; NaN stays a (quiet) NaN.
    @inline(__always) public static func bf16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// Float32 -> BF16 bits for `count` elements, 16 at a time: the same bits as `bf16Bits` per
    /// element (round to nearest even, NaN stays a quiet NaN). For the bf16 operands of matrix
    /// products, so it must run at memory speed.
    public static func roundToBF16(_ source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutablePointer<UInt16>) {
        typealias U = SIMD16<UInt32>
        let exponentMask = U(repeating: 0x7FFF_FFFF), infinity = U(repeating: 0x7F80_0000)
        let half = U(repeating: 0x7FFF), one = U(repeating: 1), quiet = U(repeating: 0x40)
        var i = 0
        while i + 16 <= count {
            let bits = UnsafeRawPointer(source + i).loadUnaligned(as: U.self)
            var rounded = (bits &+ half &+ ((bits &>> 16) & one)) &>> 16
            rounded.replace(with: (bits &>> 16) | quiet, where: (bits & exponentMask) .> infinity)
            UnsafeMutableRawPointer(destination + i).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: rounded), as: SIMD16<UInt16>.self)
            i += 16
        }
        while i < count { destination[i] = bf16Bits(source[i]); i += 1 }
    }

    /// Nearest F8_E4M3 (fn) code for `x`, ties to even, as PyTorch's `float8_e4m3fn` conversion
    /// below 464; larger magnitudes saturate to ±448 (0x7E/0xFE; PyTorch gives NaN there), NaN
    /// gives 0x7F. Bit arithmetic, no table search: synthetic FP8 checkpoints encode billions.
    @inline(__always) public static func f8e4m3Code(_ x: Float) -> UInt8 {
        let bits = x.bitPattern
        let sign = UInt8(truncatingIfNeeded: (bits >> 24) & 0x80)
        let magnitude = bits & 0x7FFF_FFFF
        let a = Float(bitPattern: magnitude)
        guard a < 448 else { return a.isNaN ? 0x7F : sign | 0x7E }
        if a < 0x1p-6 {
            // subnormals: multiples of 2^-9 (8 * 2^-9 is the smallest normal, code 8)
            return sign | UInt8((a * 512).rounded(.toNearestOrEven))
        }
        // normals: the 23-bit mantissa rounded to 3 bits, ties to even; a carry moves the exponent
        let rounded = magnitude &+ 0x7FFFF &+ ((magnitude >> 20) & 1)
        let exponent = (rounded >> 23) &- 120  // re-biased from 127 to 7
        return sign | UInt8(truncatingIfNeeded: min(exponent << 3 | (rounded >> 20) & 7, 0x7E))
    }
    /// Nearest F8_E5M2 code for `x`, saturating to ±57344, NaN to 0x7F.
    public static func f8e5m2Code(_ x: Float) -> UInt8 { nearestCode(x, table: f8e5m2Table, saturate: 57344) }

    private static func nearestCode(_ x: Float, table: [Float], saturate: Float) -> UInt8 {
        if x.isNaN { return 0x7F }
        let v = min(max(x, -saturate), saturate)
        var best = 0, bestErr = Float.infinity
        for c in 0..<256 where table[c].isFinite {
            let e = abs(table[c] - v)
            // ties to the even code (mantissa LSB 0), as IEEE rounding does
            if e < bestErr || (e == bestErr && c & 1 == 0 && best & 1 == 1) { best = c; bestErr = e }
        }
        if v == 0 { return x.sign == .minus ? 0x80 : 0 }
        return UInt8(best)
    }

    /// Encodes `count` floats as `dtype` into `destination` (little-endian bytes).
    /// Integer kinds round to nearest and clamp to their range; BOOL stores `x != 0`.
    public static func encode(
        _ dtype: DType, from source: UnsafePointer<Float>, count: Int,
        into destination: UnsafeMutableRawPointer
    ) {
        switch dtype {
        case .f32:
            destination.copyMemory(from: source, byteCount: count * 4)
        case .bf16:
            for i in 0..<count { destination.storeBytes(of: bf16Bits(source[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .f16:
            for i in 0..<count { destination.storeBytes(of: Float16(source[i]).bitPattern, toByteOffset: 2 * i, as: UInt16.self) }
        case .f64:
            for i in 0..<count { destination.storeBytes(of: Double(source[i]), toByteOffset: 8 * i, as: Double.self) }
        case .f8e4m3:
            for i in 0..<count { destination.storeBytes(of: f8e4m3Code(source[i]), toByteOffset: i, as: UInt8.self) }
        case .f8e5m2:
            for i in 0..<count { destination.storeBytes(of: f8e5m2Code(source[i]), toByteOffset: i, as: UInt8.self) }
        case .bool:
            for i in 0..<count { destination.storeBytes(of: UInt8(source[i] != 0 ? 1 : 0), toByteOffset: i, as: UInt8.self) }
        case .u8: storeInts(source, count, destination, UInt8.self)
        case .i8: storeInts(source, count, destination, Int8.self)
        case .u16: storeInts(source, count, destination, UInt16.self)
        case .i16: storeInts(source, count, destination, Int16.self)
        case .u32: storeInts(source, count, destination, UInt32.self)
        case .i32: storeInts(source, count, destination, Int32.self)
        case .u64: storeInts(source, count, destination, UInt64.self)
        case .i64: storeInts(source, count, destination, Int64.self)
        }
    }

    private static func storeInts<I: FixedWidthInteger>(
        _ s: UnsafePointer<Float>, _ n: Int,
        _ d: UnsafeMutableRawPointer, _: I.Type
    ) {
        let lo = Double(I.min), hi = Double(I.max)
        for i in 0..<n {
            let v = Double(s[i]).rounded()
            let c: I = v.isNaN ? 0 : (v <= lo ? I.min : (v >= hi ? I.max : I(v)))
            d.storeBytes(of: c, toByteOffset: i * MemoryLayout<I>.size, as: I.self)
        }
    }

    /// Rounds every element through `dtype` and back, as storing then loading would.
    public static func roundTrip(_ values: inout [Float], through dtype: DType) {
        guard dtype != .f32, !values.isEmpty else { return }
        var bytes = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
        values.withUnsafeMutableBufferPointer { v in
            bytes.withUnsafeMutableBytes { b in
                encode(dtype, from: v.baseAddress!, count: v.count, into: b.baseAddress!)
                decode(dtype, from: b.baseAddress!, count: v.count, into: v.baseAddress!)
            }
        }
    }
}
