/// Element types of tensors on disk, with the safetensors spelling as raw value.
public enum DType: String, Sendable, CaseIterable, Codable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8", u16 = "U16", i16 = "I16", u32 = "U32", i32 = "I32", u64 = "U64", i64 = "I64"
    case f16 = "F16", bf16 = "BF16", f32 = "F32", f64 = "F64"
    case f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e4m3, .f8e5m2: return 1
        case .u16, .i16, .f16, .bf16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        }
    }

    /// True for floating-point kinds.
    public var isFloatingPoint: Bool {
        switch self {
        case .f16, .bf16, .f32, .f64, .f8e4m3, .f8e5m2: return true
        default: return false
        }
    }

    /// Parses a user spelling such as `bf16`, `float32` or `F8_E4M3`.
    public init?(userSpelling s: String) {
        let k = String(s.lowercased().filter { $0 != "_" })
        switch k {
        case "bf16", "bfloat16": self = .bf16
        case "f16", "fp16", "float16", "half": self = .f16
        case "f32", "fp32", "float32", "float": self = .f32
        case "f64", "fp64", "float64", "double": self = .f64
        case "f8e4m3", "float8e4m3", "float8e4m3fn": self = .f8e4m3
        case "f8e5m2", "float8e5m2": self = .f8e5m2
        default:
            if let d = DType(rawValue: s.uppercased()) { self = d } else { return nil }
        }
    }
}
