import Foundation

#if canImport(_FoundationICU)
import _FoundationICU
#endif

/// The Unicode normalization forms, computed as the standard defines them.
///
/// On Linux, Foundation's compatibility forms are wrong for some characters (NFKC of `U+0385
/// U+0338` skips the canonical reordering; halfwidth Hangul letters are not recomposed), so the
/// ICU that ships inside the Swift toolchain (`_FoundationICU`) computes them, as the Rust
/// `unicode-normalization` crate of `tokenizers` does. Elsewhere Foundation's mappings are used.
enum UnicodeNormalization {
    enum Form: Sendable { case nfc, nfd, nfkc, nfkd }

    /// `bytes` (valid UTF-8) in normalization form `form`; ASCII text is returned as it is.
    static func apply(_ form: Form, _ bytes: [UInt8]) -> [UInt8] {
        if bytes.allSatisfy({ $0 < 0x80 }) { return bytes }
        let text = String(decoding: bytes, as: UTF8.self)
        #if canImport(_FoundationICU)
        if let r = icu(form, text) { return Array(r.utf8) }
        #endif
        switch form {
        case .nfc: return Array(text.precomposedStringWithCanonicalMapping.utf8)
        case .nfd: return Array(text.decomposedStringWithCanonicalMapping.utf8)
        case .nfkc: return Array(text.precomposedStringWithCompatibilityMapping.utf8)
        case .nfkd: return Array(text.decomposedStringWithCompatibilityMapping.utf8)
        }
    }

    #if canImport(_FoundationICU)
    /// The normalization through ICU's `unorm2_normalize`, or nil if ICU reports an error.
    private static func icu(_ form: Form, _ text: String) -> String? {
        var err = U_ZERO_ERROR
        let instance: OpaquePointer?
        switch form {
        case .nfc: instance = swift_unorm2_getNFCInstance(&err)
        case .nfd: instance = swift_unorm2_getNFDInstance(&err)
        case .nfkc: instance = swift_unorm2_getNFKCInstance(&err)
        case .nfkd: instance = swift_unorm2_getNFKDInstance(&err)
        }
        guard err.rawValue <= U_ZERO_ERROR.rawValue, let instance else { return nil }
        let source = Array(text.utf16)
        guard source.count < Int(Int32.max) / 4 else { return nil }
        // Compatibility decompositions grow text by at most 18 code units per unit (U+FDFA).
        var capacity = source.count * 3 + 16
        for _ in 0..<2 {
            var dest = [UInt16](repeating: 0, count: capacity)
            err = U_ZERO_ERROR
            let n = swift_unorm2_normalize(instance, source, Int32(source.count), &dest, Int32(capacity), &err)
            if err == U_BUFFER_OVERFLOW_ERROR, n > 0 { capacity = Int(n) + 16; continue }
            guard err.rawValue <= U_ZERO_ERROR.rawValue, n >= 0, Int(n) <= capacity else { return nil }
            return String(decoding: dest[0..<Int(n)], as: UTF16.self)
        }
        return nil
    }
    #endif
}
