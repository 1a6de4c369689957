import Checkpoints
import Foundation
import Testing

@testable import Tokenizers

/// The hand-written matchers against the generic regex path (ICU after translation), on every
/// fixture text: two independent implementations of the same Oniguruma pattern must agree (and
/// the matchers agree with the peer through PeerTests).
@Suite struct PatternTests {
    static func matches(_ p: SplitPattern, _ text: String) -> [[Int]] {
        var out: [[Int]] = []
        var s = text
        s.withUTF8 { b in
            guard let base = b.baseAddress else { return }
            p.matches(base, 0, b.count) { out.append([$0, $1]) }
        }
        return out
    }

    @Test(arguments: [KnownPattern.gpt2Text, KnownPattern.qwen2Text, KnownPattern.llama3Text])
    func scannersAgreeWithTheGenericRegexPath(pattern: String) throws {
        let json = JSONValue.object([("Regex", .string(pattern))])
        let known = try SplitPattern.from(json, component: "test", file: "t")
        let generic = try SplitPattern.from(json, component: "test", file: "t", forceGeneric: true)
        guard case .known = known, case .regex = generic else { Issue.record("wrong paths"); return }
        let shared = try #require(FixtureTexts.shared)
        var failures = 0
        for text in shared.texts + shared.pretokenTexts + ["'S 'ſ 'ſt 'K", "a\u{0B}\u{0B}b", "\u{85}\u{85}x"] {
            let a = Self.matches(known, text), b = Self.matches(generic, text)
            if a != b {
                failures += 1
                if failures <= 5 { Issue.record("\(show(text)): scanner \(a.prefix(12)), regex \(b.prefix(12))") }
            }
        }
        #expect(failures == 0)
    }

    @Test func literalPatternsFindNonOverlappingMatches() throws {
        let p = try SplitPattern.from(.object([("String", .string("aa"))]), component: "t", file: "t")
        #expect(Self.matches(p, "aaaxaa") == [[0, 2], [4, 6]])
        #expect(Self.matches(p, "") == [])
    }

    @Test func characterClassesMatchTheRegexEngines() {
        // Oniguruma \s: U+0009-000D, U+0085, Zs, Zl, Zp; not U+001C-001F, U+200B, U+FEFF, U+180E.
        for v: UInt32 in [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000] {
            #expect(CharClass.of(v) & CharClass.space != 0, "U+\(String(v, radix: 16))")
        }
        for v: UInt32 in [0x1C, 0x1F, 0x200B, 0xFEFF, 0x180E, 0x41] {
            #expect(CharClass.of(v) & CharClass.space == 0, "U+\(String(v, radix: 16))")
        }
        #expect(CharClass.of(0x01C5) & CharClass.letter != 0)  // ǅ, Lt
        #expect(CharClass.of(0x02B0) & CharClass.letter != 0)  // ʰ, Lm
        #expect(CharClass.of(0x0301) & (CharClass.letter | CharClass.number) == 0)  // combining acute, Mn
        #expect(CharClass.of(0x2167) & CharClass.number != 0)  // Ⅷ, Nl
        #expect(CharClass.of(0x00BD) & CharClass.number != 0)  // ½, No
        #expect(CharClass.of(0x1F600) & (CharClass.letter | CharClass.number | CharClass.space) == 0)  // 😀
        #expect(CharClass.of(0x20000) & CharClass.letter != 0)  // CJK extension B
    }
}

/// Unicode normalization as the standard defines it (expected values from Python's unicodedata).
@Suite struct NormalizationTests {
    static func scalars(_ b: [UInt8]) -> [UInt32] { String(decoding: b, as: UTF8.self).unicodeScalars.map(\.value) }

    @Test func compatibilityFormsReorderAndRecompose() {
        // Foundation on Linux leaves these unordered / uncomposed.
        #expect(Self.scalars(Normalizer.nfkc.apply(Array("\u{0385}\u{0338}".utf8))) == [0x20, 0x338, 0x308, 0x301])
        #expect(Self.scalars(Normalizer.nfkc.apply(Array("\u{FFBB}\u{FFDA}".utf8))) == [0xD06C])
        #expect(Self.scalars(Normalizer.nfkc.apply(Array("\u{0952}\u{FF9F}\u{0306}".utf8))) == [0x309A, 0x952, 0x306])
        #expect(Self.scalars(Normalizer.nfkd.apply(Array("\u{FFBB}\u{FFDA}".utf8))) == [0x110F, 0x1173])
        #expect(Self.scalars(Normalizer.nfc.apply(Array("a\u{0952}\u{309A}\u{0306}".utf8))) == [0x103, 0x309A, 0x952])
        #expect(Self.scalars(Normalizer.nfd.apply(Array("\u{AC01}".utf8))) == [0x1100, 0x1161, 0x11A8])
        #expect(Self.scalars(Normalizer.lowercase.apply(Array("\u{0130}ΣA".utf8))) == [0x69, 0x307, 0x3C3, 0x61])
    }
}
