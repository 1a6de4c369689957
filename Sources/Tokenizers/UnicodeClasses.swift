/// Character classes as the regular expressions of Hugging Face `tokenizers` see them, and UTF-8
/// helpers for working on bytes.
///
/// `tokenizers` compiles its splitting patterns with Oniguruma: `\p{L}` is the Unicode general
/// category Letter (Lu, Ll, Lt, Lm, Lo), `\p{N}` is Number (Nd, Nl, No), and `\s` is U+0009-U+000D,
/// U+0085 and the categories Zs, Zl, Zp (the same set as the White_Space property that Rust's
/// `char::is_whitespace` and its `regex` crate use). Added tokens' `single_word` test uses the
/// Rust `regex` crate's `\w`: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
/// The categories come from the Swift standard library's Unicode tables; they agree with the
/// peer's for every character assigned in both Unicode versions.
enum CharClass {
    /// Bit set in a class byte: the scalar is a letter (`\p{L}`).
    static let letter: UInt8 = 1
    /// The scalar is a number (`\p{N}`).
    static let number: UInt8 = 2
    /// The scalar is white space (`\s`).
    static let space: UInt8 = 4
    /// The scalar is a word character (Rust regex `\w`).
    static let word: UInt8 = 8
    /// The scalar is a decimal digit (`\p{Nd}`).
    static let digit: UInt8 = 16

    /// Classes of the Basic Multilingual Plane, computed once.
    static let bmp: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 0x10000)
        for v in 0..<0x10000 {
            guard let s = Unicode.Scalar(UInt32(v)) else { continue }  // surrogates stay 0
            t[v] = compute(s)
        }
        return t
    }()

    /// The class bits of `s`, from the Unicode tables.
    static func compute(_ s: Unicode.Scalar) -> UInt8 {
        let p = s.properties
        var c: UInt8 = 0
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            c |= letter
        case .decimalNumber:
            c |= number | digit
        case .letterNumber, .otherNumber:
            c |= number
        case .spaceSeparator, .lineSeparator, .paragraphSeparator:
            c |= space
        default: break
        }
        switch s.value {
        case 0x09...0x0D, 0x85: c |= space
        default: break
        }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: c |= word
        default: break
        }
        if p.isAlphabetic || p.isJoinControl { c |= word }
        return c
    }

    /// The class bits of the scalar with value `v`.
    @inline(__always)
    static func of(_ v: UInt32) -> UInt8 {
        if v < 0x10000 { return bmp[Int(v)] }
        guard let s = Unicode.Scalar(v) else { return 0 }
        return compute(s)
    }
}

/// UTF-8 decoding on validated buffers.
enum UTF8Bytes {
    /// Decodes the scalar starting at `i` of `p` (which must hold valid UTF-8 up to `end`).
    /// Returns the scalar value and its length in bytes; a malformed byte reads as U+FFFD of
    /// length 1, so a bad buffer can never make the caller loop or trap.
    @inline(__always)
    static func decode(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> (UInt32, Int) {
        let b0 = UInt32(p[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 >= 0xC2 && b0 < 0xE0 && i + 1 < end {
            return (((b0 & 0x1F) << 6) | (UInt32(p[i + 1]) & 0x3F), 2)
        }
        if b0 >= 0xE0 && b0 < 0xF0 && i + 2 < end {
            return (((b0 & 0x0F) << 12) | ((UInt32(p[i + 1]) & 0x3F) << 6) | (UInt32(p[i + 2]) & 0x3F), 3)
        }
        if b0 >= 0xF0 && b0 < 0xF5 && i + 3 < end {
            return (
                ((b0 & 0x07) << 18) | ((UInt32(p[i + 1]) & 0x3F) << 12) | ((UInt32(p[i + 2]) & 0x3F) << 6)
                    | (UInt32(p[i + 3]) & 0x3F), 4
            )
        }
        return (0xFFFD, 1)
    }

    /// The length of the scalar whose first byte is `b` (1 for a stray continuation byte).
    @inline(__always)
    static func length(_ b: UInt8) -> Int {
        if b < 0xC0 { return 1 }
        if b < 0xE0 { return 2 }
        if b < 0xF0 { return 3 }
        return 4
    }

    /// The UTF-8 bytes of scalar value `v`.
    static func encode(_ v: UInt32) -> [UInt8] {
        guard let s = Unicode.Scalar(v) else { return [0xEF, 0xBF, 0xBD] }
        return Array(String(Character(s)).utf8)
    }

    /// The byte offset of the first malformed UTF-8 sequence in `bytes`, or nil when valid.
    static func firstInvalidOffset(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let p = bytes.baseAddress else { return nil }
        let n = bytes.count
        var i = 0
        while i < n {
            let b0 = p[i]
            if b0 < 0x80 { i += 1; continue }
            func cont(_ k: Int) -> Bool { i + k < n && p[i + k] & 0xC0 == 0x80 }
            if b0 >= 0xC2 && b0 < 0xE0 {
                guard cont(1) else { return i }
                i += 2
            } else if b0 >= 0xE0 && b0 < 0xF0 {
                guard cont(1), cont(2) else { return i }
                let b1 = p[i + 1]
                if b0 == 0xE0 && b1 < 0xA0 { return i }  // overlong
                if b0 == 0xED && b1 >= 0xA0 { return i }  // surrogate
                i += 3
            } else if b0 >= 0xF0 && b0 < 0xF5 {
                guard cont(1), cont(2), cont(3) else { return i }
                let b1 = p[i + 1]
                if b0 == 0xF0 && b1 < 0x90 { return i }  // overlong
                if b0 == 0xF4 && b1 >= 0x90 { return i }  // above U+10FFFF
                i += 4
            } else {
                return i
            }
        }
        return nil
    }
}
