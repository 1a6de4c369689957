import Foundation
import Testing

@testable import Tokenizers

/// Encoding and decoding against the ids Hugging Face `tokenizers` wrote
/// (fixtures/tokenizers/make_tokenizer_fixtures.py).
@Suite struct PeerTests {
    @Test(arguments: styles)
    func encodesIdForId(style: String) throws {
        let tok = try Tokenizer(contentsOf: tokenizerFixtures + "/\(style).json")
        let expected = try Expected(style: style)
        let texts = try #require(FixtureTexts.shared).texts
        #expect(texts.count == expected.ids.count)
        #expect(tok.vocabularySize == expected.vocabSize)
        var failures = 0
        for (k, text) in texts.enumerated() where k < expected.ids.count {
            let ids = tok.encode(text)
            if ids != expected.ids[k] {
                failures += 1
                if failures <= 5 {
                    Issue.record("\(style) text \(k) \"\(show(text))\": got \(ids.prefix(40)), expected \(expected.ids[k].prefix(40))")
                }
            }
        }
        #expect(failures == 0, "\(style): \(failures) of \(texts.count) texts encode differently")
    }

    @Test(arguments: styles)
    func decodesAsThePeer(style: String) throws {
        let tok = try Tokenizer(contentsOf: tokenizerFixtures + "/\(style).json")
        let expected = try Expected(style: style)
        let texts = try #require(FixtureTexts.shared).texts
        var failures = 0
        for (k, ids) in expected.ids.enumerated() {
            let want = expected.decoded[k] ?? texts[k]
            let got = try tok.decode(ids)
            let wantSkip = expected.decodedSkip[k] ?? want
            let gotSkip = try tok.decode(ids, skipSpecialTokens: true)
            if !same(got, want) || !same(gotSkip, wantSkip) {
                failures += 1
                if failures <= 5 {
                    Issue.record("\(style) text \(k): decoded \"\(show(got))\" / skip \"\(show(gotSkip))\", expected \"\(show(want))\" / \"\(show(wantSkip))\"")
                }
            }
        }
        for (ids, want) in expected.decodeOnly {
            let got = try tok.decode(ids)
            if !same(got, want) {
                failures += 1
                if failures <= 10 { Issue.record("\(style) ids \(ids): decoded \"\(show(got))\", expected \"\(show(want))\"") }
            }
        }
        #expect(failures == 0, "\(style): \(failures) decodings differ")
    }

    @Test(arguments: styles)
    func preTokenizesAsThePeer(style: String) throws {
        let tok = try Tokenizer(contentsOf: tokenizerFixtures + "/\(style).json")
        let expected = try Expected(style: style)
        let texts = try #require(FixtureTexts.shared).pretokenTexts
        guard !expected.pretokens.isEmpty else { return }
        var failures = 0
        for (k, text) in texts.enumerated() where k < expected.pretokens.count {
            let got = tok.preTokenize(text)
            let want = expected.pretokens[k]
            if got.count != want.count || !zip(got, want).allSatisfy(same) {
                failures += 1
                if failures <= 5 {
                    Issue.record("\(style) text \(k) \"\(show(text))\": pieces \(got.map(show)), expected \(want.map(show))")
                }
            }
        }
        #expect(failures == 0, "\(style): \(failures) of \(texts.count) texts pre-tokenize differently")
    }
}
