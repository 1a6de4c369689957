import Checkpoints
import Foundation

/// A tokenizer read from a Hugging Face `tokenizer.json`, encoding text to the same ids as the
/// `tokenizers` library (version 0.23) with `add_special_tokens=False`, and decoding ids back.
///
/// Supported: the BPE model (`byte_fallback`, `unk_token`, `fuse_unk`, `ignore_merges`, merges in
/// both forms); normalizers NFC, NFD, NFKC, NFKD, Lowercase, Nmt, Strip, Replace, Prepend and
/// Sequence; pre-tokenizers ByteLevel, Split, Metaspace and Sequence; decoders ByteLevel,
/// ByteFallback, Fuse, Strip, Replace, Metaspace and Sequence; added and special tokens with all
/// their flags. This covers GPT-2/GPT-NeoX/OLMo/OLMoE, Qwen2/Qwen3, Llama 2/Mistral/Mixtral,
/// Llama 3 and DeepSeek-V3 tokenizers. Anything else is refused with `TokenizerError.unsupported`.
///
/// Not applied: the post-processor (the ids carry no BOS/EOS: `add_special_tokens=False`),
/// truncation and padding. Those act on a finished encoding, not on how text becomes tokens.
public final class Tokenizer: Sendable {
    /// The file it was read from.
    public let source: String
    /// One more than the largest id (model and added tokens).
    public let vocabularySize: Int
    /// The added tokens (special and not), by id.
    public let addedTokens: [AddedToken]
    /// The post-processor's type, if the file has one (never applied; see the type's notes).
    public let postProcessorType: String?

    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer
    let model: BPEModel
    let added: AddedVocabulary
    let decoder: Decoder?
    /// Token text (UTF-8, as written in the file) of each model id; empty arrays for holes.
    private let modelTokens: [[UInt8]]
    private let hasModelToken: [Bool]
    /// Token text -> id for the model vocabulary (as written in the file).
    private let textVocab: ByteStringMap
    /// Contents of special tokens.
    private let specialContents: Set<[UInt8]>

    /// Reads the tokenizer of `path`: a `tokenizer.json` file, a checkpoint folder holding one, a
    /// checkpoint file beside one, or a Hugging Face hub name `org/name[@revision]` found in the
    /// local cache (see `HubCache`).
    /// - Throws: `TokenizerError` naming the file and what is wrong or unsupported.
    public static func load(_ path: String) throws(TokenizerError) -> Tokenizer {
        try Tokenizer(contentsOf: try locate(path))
    }

    /// The checkpoint's own tokenizer, for reading text data: the `tokenizer.json` that `load`
    /// would read for `checkpoint`, or nil when there is none. A tokenizer that is there but
    /// malformed or unsupported is an error, never a silent fall-back to bytes.
    public static func of(checkpoint: String) throws(TokenizerError) -> Tokenizer? {
        guard let path = locate(besideCheckpoint: checkpoint) else { return nil }
        return try Tokenizer(contentsOf: path)
    }

    /// The `tokenizer.json` of a checkpoint: in its folder, beside its file (a weights file, an
    /// index or a `config.json` of any name), or in its hub-cache snapshot; nil when there is none.
    public static func locate(besideCheckpoint checkpoint: String) -> String? {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDir), !isDir.boolValue {
            let folder = (checkpoint as NSString).deletingLastPathComponent
            return try? locate(folder.isEmpty ? "." : folder)
        }
        return try? locate(checkpoint)
    }

    /// The `tokenizer.json` that `load` would read for `path`.
    public static func locate(_ path: String) throws(TokenizerError) -> String {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        var target = path
        if !fm.fileExists(atPath: path, isDirectory: &isDir) {
            let snapshot: String?
            do { snapshot = try HubCache.resolve(path) } catch { throw TokenizerError(error) }
            guard let snapshot else { throw .io(file: path, reason: "no such file or folder") }
            target = snapshot
            _ = fm.fileExists(atPath: target, isDirectory: &isDir)
        }
        if isDir.boolValue {
            let t = (target as NSString).appendingPathComponent("tokenizer.json")
            guard fm.fileExists(atPath: t) else {
                throw .io(file: target, reason: "no tokenizer.json in this folder")
            }
            return t
        }
        if target.hasSuffix(".json") && !target.hasSuffix(".index.json") && (target as NSString).lastPathComponent != "config.json" {
            return target
        }
        let sibling = ((target as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer.json")
        guard fm.fileExists(atPath: sibling) else {
            throw .io(file: target, reason: "no tokenizer.json beside this file")
        }
        return sibling
    }

    /// Reads a `tokenizer.json` file.
    public convenience init(contentsOf path: String) throws(TokenizerError) {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = attrs?[.size] as? Int, size > TokenizerFile.maxFileBytes {
            throw .malformed(file: path, reason: "is \(size) bytes; a tokenizer.json of at most \(TokenizerFile.maxFileBytes) bytes is accepted")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(file: path, reason: "cannot read") }
        try self.init(json: [UInt8](data), source: path)
    }

    /// Reads a tokenizer from the bytes of a `tokenizer.json`; `source` names it in errors.
    public init(json bytes: [UInt8], source: String) throws(TokenizerError) {
        self.source = source
        let f = TokenizerFile(file: source)
        guard bytes.count <= TokenizerFile.maxFileBytes else { throw f.malformed("is larger than \(TokenizerFile.maxFileBytes) bytes") }
        let root: JSONValue
        do { root = try JSONParser.parse(bytes, rejectDuplicateKeys: false) } catch {
            throw f.malformed("not valid JSON: \(error)")
        }
        guard root.objectPairs != nil else { throw f.malformed("is not a JSON object") }
        if let v = root["version"], v != .null {
            guard v.stringValue == "1.0" else { throw f.malformed("unknown tokenizer version \(v.serialized())") }
        }

        // Components.
        let normalizer = try f.normalizer(root["normalizer"])
        let preTokenizer = try f.preTokenizer(root["pre_tokenizer"])
        decoder = try f.decoder(root["decoder"])
        if let pp = root["post_processor"], pp != .null { postProcessorType = pp["type"]?.stringValue ?? "(untyped)" } else { postProcessorType = nil }
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer

        // The model.
        let m = try f.object(root["model"], "model")
        let modelType = m["type"]?.stringValue
        guard modelType == "BPE" else {
            throw .unsupported(file: source, component: "model", reason: "'\(modelType ?? "(no type)")' (only BPE is supported)")
        }
        if let d = m["dropout"], d != .null, d.doubleValue != 0 {
            throw .unsupported(file: source, component: "BPE option", reason: "dropout \(d.serialized()) (random merges)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = try f.optionalString(m, key, "BPE model"), !s.isEmpty {
                throw .unsupported(file: source, component: "BPE option", reason: "\(key) '\(s)'")
            }
        }
        let entries = try f.vocabulary(m)
        var twice: [UInt8]? = nil
        let text = ByteStringMap(entries) { twice = $0 }
        if let twice { throw f.malformed("the vocabulary lists the token '\(String(decoding: twice, as: UTF8.self))' twice") }
        textVocab = text
        let byteLevel = preTokenizer.isByteLevel
        let vocab: ByteStringMap
        if byteLevel {
            var raw: [([UInt8], Int32)] = []
            raw.reserveCapacity(entries.count)
            for (token, id) in entries {
                var bytes: [UInt8] = []
                var ok = true
                for u in String(decoding: token, as: UTF8.self).unicodeScalars {
                    guard let b = byteAlphabetInverse[u.value] else { ok = false; break }
                    bytes.append(b)
                }
                if ok { raw.append((bytes, id)) }
            }
            vocab = ByteStringMap(raw)
        } else {
            vocab = text
        }
        let mergeList = try f.merges(m)
        guard mergeList.count <= TokenizerFile.maxId else { throw f.malformed("has \(mergeList.count) merges; at most \(TokenizerFile.maxId) are supported") }
        var merges = PairTable(capacity: mergeList.count)
        for (rank, (a, b)) in mergeList.enumerated() {
            let ab = Array(a.utf8), bb = Array(b.utf8)
            guard let ia = text.get(ab) else { throw f.malformed("merge \(rank + 1) names '\(a)', which is not in the vocabulary") }
            guard let ib = text.get(bb) else { throw f.malformed("merge \(rank + 1) names '\(b)', which is not in the vocabulary") }
            guard let merged = text.get(ab + bb) else { throw f.malformed("merge \(rank + 1) makes '\(a + b)', which is not in the vocabulary") }
            merges.set(ia, ib, rank: Int32(rank), merged: merged)
        }
        var unkId: Int32? = nil
        if let unk = try f.optionalString(m, "unk_token", "BPE model") {
            guard let id = text.get(Array(unk.utf8)) else { throw f.malformed("unk_token '\(unk)' is not in the vocabulary") }
            unkId = id
        }
        let byteFallback = try f.bool(m, "byte_fallback", default: false, "BPE model")
        var fallbackIds = [Int32](repeating: -1, count: 256)
        var byteIds = [Int32](repeating: -1, count: 256)
        var byteChars = [[UInt8]](repeating: [], count: 256)
        for b in 0..<256 {
            fallbackIds[b] = text.get(Array(String(format: "<0x%02X>", b).utf8)) ?? -1
            byteChars[b] = UTF8Bytes.encode(byteAlphabet[b])
            byteIds[b] = text.get(byteChars[b]) ?? -1
        }
        var asciiIds = [Int32](repeating: -1, count: 128)
        var scalarIds: [UInt32: Int32] = [:]
        for (token, id) in entries {
            token.withUnsafeBufferPointer { t in
                guard let p = t.baseAddress, t.count > 0 else { return }
                let (v, l) = UTF8Bytes.decode(p, 0, t.count)
                guard l == t.count else { return }
                if v < 0x80 { asciiIds[Int(v)] = id } else { scalarIds[v] = id }
            }
        }
        var adjacent: PairTable? = nil
        if !byteLevel {
            var table = PairTable(capacity: entries.count * 4)
            for (token, _) in entries {
                var previous: Int32 = -1
                for u in String(decoding: token, as: UTF8.self).unicodeScalars {
                    let v = Int32(bitPattern: u.value)
                    if previous >= 0 { table.set(previous, v, rank: 0, merged: 0) }
                    previous = v
                }
            }
            adjacent = table
        }
        model = BPEModel(
            byteLevel: byteLevel, vocab: vocab, merges: merges, unkId: unkId,
            fuseUnk: try f.bool(m, "fuse_unk", default: false, "BPE model"),
            byteFallback: byteFallback,
            ignoreMerges: try f.bool(m, "ignore_merges", default: false, "BPE model"),
            byteIds: byteIds, byteChars: byteChars, fallbackIds: fallbackIds,
            asciiIds: asciiIds, scalarIds: scalarIds, adjacentPairs: adjacent)

        // Model tokens by id, for decoding.
        var maxId = -1
        for (_, id) in entries { maxId = max(maxId, Int(id)) }
        var tokens = [[UInt8]](repeating: [], count: maxId + 1)
        var has = [Bool](repeating: false, count: maxId + 1)
        for (token, id) in entries { tokens[Int(id)] = token; has[Int(id)] = true }

        // Added tokens, given ids as `AddedVocabulary::add_tokens` gives them.
        var addedByContent: [[UInt8]: Int32] = [:]
        var addedById: [Int32: AddedToken] = [:]
        var normalizedText: [Int32: [UInt8]] = [:]
        var special = Set<[UInt8]>()
        var nextId = Int32(entries.count)
        for (k, t) in (root["added_tokens"]?.arrayValue ?? []).enumerated() {
            let what = "added token \(k + 1)"
            let o = try f.object(t, what)
            let content = try f.string(o, "content", what)
            let declared = try f.int(o, "id", what)
            let bytes = Array(content.utf8)
            if bytes.isEmpty { continue }
            let token0 = AddedToken(
                content: content, id: 0,
                singleWord: try f.bool(o, "single_word", default: false, what),
                lstrip: try f.bool(o, "lstrip", default: false, what),
                rstrip: try f.bool(o, "rstrip", default: false, what),
                normalized: try f.bool(o, "normalized", default: true, what),
                special: try f.bool(o, "special", default: false, what))
            if let id = addedByContent[bytes], let old = addedById[id],
                old.singleWord == token0.singleWord, old.lstrip == token0.lstrip, old.rstrip == token0.rstrip,
                old.normalized == token0.normalized, old.special == token0.special
            {
                continue
            }
            let id: Int32
            if let a = addedByContent[bytes] {
                id = a
            } else if let v = text.get(bytes) {
                id = v
            } else {
                guard Int(nextId) <= TokenizerFile.maxId else { throw f.malformed("too many added tokens") }
                id = nextId
                nextId += 1
            }
            guard Int(id) == declared else {
                throw f.malformed("\(what) '\(content)' declares id \(declared), but tokenizers gives it id \(id)")
            }
            let token = AddedToken(
                content: content, id: id, singleWord: token0.singleWord, lstrip: token0.lstrip,
                rstrip: token0.rstrip, normalized: token0.normalized, special: token0.special)
            if token.normalized, let n = normalizer {
                let normed = n.apply(bytes)
                if normed != bytes { normalizedText[id] = normed } else { normalizedText[id] = nil }
            }
            addedByContent[bytes] = id
            addedById[id] = token
            if token.special { special.insert(bytes) }
        }
        let addedList = addedById.values.sorted { $0.id < $1.id }
        var rawPatterns: [([UInt8], AddedToken)] = []
        var normalizedPatterns: [([UInt8], AddedToken)] = []
        for t in addedList {
            if t.normalized {
                normalizedPatterns.append((normalizedText[t.id] ?? Array(t.content.utf8), t))
            } else {
                rawPatterns.append((Array(t.content.utf8), t))
            }
        }
        var decodeText: [Int32: [UInt8]] = [:]
        for t in addedList { decodeText[t.id] = normalizedText[t.id] ?? Array(t.content.utf8) }
        added = AddedVocabulary(
            tokens: addedList, raw: try TokenTrie(rawPatterns, file: source),
            normalized: try TokenTrie(normalizedPatterns, file: source), decodeText: decodeText,
            idByContent: addedByContent, byId: addedById)
        addedTokens = addedList
        specialContents = special
        modelTokens = tokens
        hasModelToken = has
        vocabularySize = max(maxId + 1, Int(addedList.last?.id ?? -1) + 1)
    }

    // MARK: - Encoding

    /// The ids of `text`, as `tokenizers`' `encode(text, add_special_tokens=False).ids`.
    public func encode(_ text: String) -> [Int32] {
        var state = EncoderState()
        var out: [Int32] = []
        var s = text
        s.withUTF8 { encode($0, state: &state, into: &out) }
        return out
    }

    /// The ids of the UTF-8 `bytes`; `source` names them in the error for invalid UTF-8.
    public func encode(utf8 bytes: [UInt8], source: String) throws(TokenizerError) -> [Int32] {
        try bytes.withUnsafeBufferPointer { b throws(TokenizerError) in try encode(validating: b, source: source) }
    }

    /// The ids of the UTF-8 text file at `path` (its bytes as they are: no newline translation,
    /// a byte-order mark is text), for `train` and `routing` to read `.txt` data through the
    /// checkpoint's own tokenizer.
    /// - Throws: `TokenizerError.io` if unreadable, `.input` if the file is not UTF-8.
    public func encodeFile(_ path: String) throws(TokenizerError) -> [Int32] {
        // read, never mapped: a file cut short by another process is an error, not a signal
        let bytes: [UInt8]
        do throws(CheckpointError) {
            let f = try ReadOnlyFile(path: path)
            let limit = Int(min(UInt64(Int.max), ProcessInfo.processInfo.physicalMemory / 4))
            guard f.size <= limit else {
                throw .io(file: path, reason: "is \(f.size) bytes, more than a quarter of this machine's memory; cut it into smaller files")
            }
            bytes = try f.read(at: 0, count: f.size)
        } catch { throw TokenizerError(error) }
        let r = bytes.withUnsafeBufferPointer { b -> Result<[Int32], TokenizerError> in
            do throws(TokenizerError) { return .success(try encode(validating: b, source: path)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    private func encode(validating b: UnsafeBufferPointer<UInt8>, source: String) throws(TokenizerError) -> [Int32] {
        if let bad = UTF8Bytes.firstInvalidOffset(b) {
            throw .input(file: source, reason: "is not UTF-8 text (invalid byte 0x\(String(b[bad], radix: 16, uppercase: true)) at offset \(bad))")
        }
        var state = EncoderState()
        var out: [Int32] = []
        out.reserveCapacity(b.count / 3)
        encode(b, state: &state, into: &out)
        return out
    }

    /// The pipeline: added tokens in the raw text; normalization of each stretch between them;
    /// normalized added tokens; pre-tokenization; the model.
    func encode(_ text: UnsafeBufferPointer<UInt8>, state: inout EncoderState, into out: inout [Int32]) {
        guard let p = text.baseAddress, text.count > 0 else { return }
        added.raw.split(p, 0, text.count) { s, e, id in
            if let id { out.append(id); return }
            guard e > s else { return }
            if let normalizer {
                let normed = normalizer.apply(Array(UnsafeBufferPointer(start: p + s, count: e - s)))
                normed.withUnsafeBufferPointer { nb in
                    guard let q = nb.baseAddress else { return }
                    encodeNormalized(q, 0, nb.count, atStart: s == 0, &state, &out)
                }
            } else {
                encodeNormalized(p, s, e, atStart: s == 0, &state, &out)
            }
        }
    }

    private func encodeNormalized(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, atStart: Bool,
        _ state: inout EncoderState, _ out: inout [Int32]
    ) {
        added.normalized.split(p, start, end) { s, e, id in
            if let id { out.append(id); return }
            guard e > s else { return }
            preTokenizer.run(UnsafeBufferPointer(start: p + s, count: e - s), atStart: atStart && s == start) { q, a, b in
                model.encode(q + a, b - a, &state, into: &out)
            }
        }
    }

    /// The pieces the pre-tokenizer cuts `text` into (after added tokens and normalization), for
    /// tests against `pre_tokenize_str`.
    func preTokenize(_ text: String) -> [String] {
        var out: [String] = []
        var s = text
        s.withUTF8 { b in
            preTokenizer.run(b, atStart: true) { q, a, e in
                out.append(String(decoding: UnsafeBufferPointer(start: q + a, count: e - a), as: UTF8.self))
            }
        }
        return out
    }

    // MARK: - Decoding and look-ups

    /// The text of `ids`, as `tokenizers`' `decode(ids, skip_special_tokens=...)`.
    /// - Throws: `TokenizerError.input` for an id outside the vocabulary.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) throws(TokenizerError) -> String {
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let t = tokenBytes(id) else { throw .input(file: source, reason: "id \(id) is not in the vocabulary") }
            if skipSpecialTokens && specialContents.contains(t) { continue }
            tokens.append(t)
        }
        guard let decoder else {
            var out: [UInt8] = []
            for (i, t) in tokens.enumerated() { if i > 0 { out.append(0x20) }; out += t }
            return String(decoding: out, as: UTF8.self)
        }
        return String(decoding: decoder.chain(tokens).flatMap { $0 }, as: UTF8.self)
    }

    /// The token text of `id` as decoding sees it (an added token's normalized form if it has one).
    private func tokenBytes(_ id: Int32) -> [UInt8]? {
        if let t = added.decodeText[id] { return t }
        guard id >= 0, Int(id) < modelTokens.count, hasModelToken[Int(id)] else { return nil }
        return modelTokens[Int(id)]
    }

    /// The token text of `id` (added tokens first, then the model's vocabulary), or nil.
    public func token(for id: Int32) -> String? {
        if let t = added.byId[id] { return t.content }
        guard id >= 0, Int(id) < modelTokens.count, hasModelToken[Int(id)] else { return nil }
        return String(decoding: modelTokens[Int(id)], as: UTF8.self)
    }

    /// The id of the token whose text is `token` (added tokens first), or nil.
    public func id(for token: String) -> Int32? {
        let b = Array(token.utf8)
        if let id = added.idByContent[b] { return id }
        return textVocab.get(b)
    }

    /// The id of the unknown token, if the model has one.
    public var unknownId: Int32? { model.unkId }

    /// Whether the model writes characters missing from its vocabulary as `<0xNN>` byte tokens.
    public var usesByteFallback: Bool { model.byteFallback }
}

extension TokenizerError {
    /// The same error from the checkpoint layer (the hub cache), keeping the file it names.
    init(_ e: CheckpointError) {
        switch e {
        case let .io(f, r): self = .io(file: f, reason: r.description)
        case let .malformed(f, r): self = .malformed(file: f, reason: r)
        case let .unsupported(f, r): self = .unsupported(file: f, component: "input", reason: r.description)
        case let .missingTensor(f, n): self = .io(file: f, reason: "no tensor named '\(n)'")
        }
    }
}
