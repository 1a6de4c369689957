import Checkpoints
import Foundation

/// How a rotary embedding scales its frequencies for contexts longer than pre-training
/// (`rope_type` other than `default`), as transformers' `modeling_rope_utils.py` computes them.
public enum RopeScaling: Sendable, Equatable {
    /// `default`: `inv_freq[i] = 1 / theta^(2i / dim)`.
    case none
    /// `linear`: every inverse frequency divided by `factor` (position interpolation).
    case linear(factor: Double)
    /// `dynamic` (NTK): for a sequence of `L > maxPositions` positions the base becomes
    /// `theta * (factor * L / maxPositions - (factor - 1))^(dim / (dim - 2))`; shorter sequences
    /// use the default frequencies. L is the window length (each window is its own sequence).
    case dynamic(factor: Double, maxPositions: Int)
    /// `yarn`: frequencies blended between `1 / (factor * theta^(2i/dim))` (interpolated) and
    /// the default (extrapolated) by a linear ramp over the dimensions whose number of
    /// rotations within `originalMaxPositions` lies between `betaSlow` and `betaFast`; cos and
    /// sin multiplied by `attentionFactor`.
    case yarn(factor: Double, originalMaxPositions: Int, betaFast: Double, betaSlow: Double, truncate: Bool, attentionFactor: Double)
    /// `llama3`: wavelengths above `originalMaxPositions / lowFreqFactor` divided by `factor`,
    /// below `originalMaxPositions / highFreqFactor` kept, smoothly interpolated between.
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
    /// `longrope`: `inv_freq[i] = 1 / (ext[i] * theta^(2i/dim))`, ext = `longFactor` when the
    /// sequence is longer than `originalMaxPositions`, else `shortFactor`; cos and sin
    /// multiplied by `attentionFactor`.
    case longrope(shortFactor: [Double], longFactor: [Double], originalMaxPositions: Int, attentionFactor: Double)
}

extension RopeSpec {
    /// The inverse frequencies [dim / 2] and the factor on cos and sin for windows of
    /// `sequenceLength` positions, in Float32 where transformers computes in Float32 and in
    /// Float64 where it computes with Python floats.
    func frequencies(sequenceLength: Int) -> (inverse: [Float], attentionFactor: Float) {
        let half = dim / 2, fdim = Float(dim)
        // `torch.arange(0, dim, 2).float() / dim`, then `base ** that` in Float32
        func powers(_ base: Float) -> [Float] { (0..<half).map { Foundation.pow(base, Float(2 * $0) / fdim) } }
        let standard = powers(Float(theta)).map { 1 / $0 }
        switch scaling {
        case .none:
            return (standard, 1)
        case let .linear(factor):
            return (standard.map { $0 / Float(factor) }, 1)
        case let .dynamic(factor, maxPositions):
            guard sequenceLength > maxPositions else { return (standard, 1) }
            // seq_len is a tensor here, so the new base is Float32 arithmetic
            var b = Float(factor) * Float(sequenceLength)
            b = b / Float(maxPositions)
            b = b - Float(factor - 1)
            b = Foundation.pow(b, Float(Double(dim) / Double(dim - 2)))
            let base = Float(theta) * b
            return (powers(base).map { 1 / $0 }, 1)
        case let .yarn(factor, original, betaFast, betaSlow, truncate, attentionFactor):
            let pos = powers(Float(theta))
            let extrapolation = pos.map { 1 / $0 }
            let interpolation = pos.map { 1 / (Float(factor) * $0) }
            func correctionDim(_ rotations: Double) -> Double {
                Double(dim) * Foundation.log(Double(original) / (rotations * 2 * Double.pi)) / (2 * Foundation.log(theta))
            }
            var low = correctionDim(betaFast), high = correctionDim(betaSlow)
            if truncate { low = low.rounded(.down); high = high.rounded(.up) }
            low = max(low, 0); high = min(high, Double(dim - 1))
            if low == high { high += 0.001 }
            let span = Float(high - low)
            var out = [Float](repeating: 0, count: half)
            for i in 0..<half {
                let ramp = min(max((Float(i) - Float(low)) / span, 0), 1)
                let e: Float = 1 - ramp
                out[i] = interpolation[i] * (1 - e) + extrapolation[i] * e
            }
            return (out, Float(attentionFactor))
        case let .llama3(factor, lowFreqFactor, highFreqFactor, original):
            let old = Double(original)
            let lowWavelength = Float(old / lowFreqFactor), highWavelength = Float(old / highFreqFactor)
            let f = Float(factor), span = Float(highFreqFactor - lowFreqFactor)
            var out = standard
            for i in 0..<half {
                // `2 * pi / inv_freq` is `inv_freq.reciprocal() * (2 pi)` in torch
                let wavelength = (1 / standard[i]) * Float(2 * Double.pi)
                var v = wavelength > lowWavelength ? standard[i] / f : standard[i]
                if !(wavelength < highWavelength) && !(wavelength > lowWavelength) {
                    let smooth = ((1 / wavelength) * Float(old) - Float(lowFreqFactor)) / span
                    v = (1 - smooth) * v / f + smooth * v
                }
                out[i] = v
            }
            return (out, 1)
        case let .longrope(short, long, original, attentionFactor):
            let ext = sequenceLength > original ? long : short
            let pos = powers(Float(theta))
            return ((0..<half).map { 1 / (Float(ext[$0]) * pos[$0]) }, Float(attentionFactor))
        }
    }
}

/// The rotary embedding settings of a config: transformers v4 writes `rope_theta` at the top level
/// and the scaling in `rope_scaling` (`type` or `rope_type`), v5 writes `rope_parameters:
/// {rope_theta, rope_type, ...}`. As transformers reads them: a non-empty `rope_scaling` replaces
/// `rope_parameters`; `rope_theta` inside the object wins over the top-level one; a top-level
/// `original_max_position_embeddings` wins over the object's (the scaled types fall back to
/// `max_position_embeddings`).
public struct RopeParameters: Sendable, Equatable {
    /// The base theta.
    public var theta: Double
    /// `default`, or a scaled variant (`linear`, `dynamic`, `yarn`, `llama3`, `longrope`).
    public var type: String
    /// `max_position_embeddings` of the config (the family's default when absent).
    public var maxPositions: Int
    /// The other numbers of the object, by key.
    var numbers: [String: Double] = [:]
    /// `short_factor`, `long_factor` (longrope).
    var shortFactor: [Double]?, longFactor: [Double]?
    /// `truncate` (yarn).
    var truncate: Bool?
    /// Per-layer-type RoPE objects (not supported).
    var nested = false
    /// A top-level `original_max_position_embeddings`.
    var topLevelOriginal: Double?
    /// A top-level `partial_rotary_factor`.
    var topLevelPartial: Double?

    /// Reads both spellings from a config container.
    /// - Parameters:
    ///   - defaultTheta: the family's `default_theta`.
    ///   - defaultMaxPositions: the family's default `max_position_embeddings`.
    init(_ c: KeyedDecodingContainer<ConfigKey>, defaultTheta: Double, defaultMaxPositions: Int) throws {
        var object: KeyedDecodingContainer<ConfigKey>?
        for k in ["rope_scaling", "rope_parameters"] {
            let key = ConfigKey(k)
            guard c.contains(key), try !c.decodeNil(forKey: key) else { continue }
            let p = try c.nestedContainer(keyedBy: ConfigKey.self, forKey: key)
            if p.allKeys.isEmpty { continue }  // `rope_scaling or rope_parameters`: an empty object counts as absent
            object = p
            break
        }
        var theta: Double?
        type = "default"
        if let p = object {
            theta = try p.first(Double.self, "rope_theta")
            if let t = try p.first(String.self, "rope_type", "type") { type = t }
            for key in p.allKeys {
                switch key.stringValue {
                case "rope_theta", "rope_type", "type": continue
                case "short_factor": shortFactor = try p.first([Double].self, "short_factor")
                case "long_factor": longFactor = try p.first([Double].self, "long_factor")
                case "truncate": truncate = try p.decodeNil(forKey: key) ? false : p.decode(Bool.self, forKey: key)  // Python: null is falsy
                default:
                    if try p.decodeNil(forKey: key) { continue }
                    if let v = try? p.decode(Double.self, forKey: key) {
                        numbers[key.stringValue] = v
                    } else if (try? p.nestedContainer(keyedBy: ConfigKey.self, forKey: key)) != nil {
                        nested = true
                    }
                }
            }
        }
        self.theta = try theta ?? c.first(Double.self, "rope_theta") ?? defaultTheta
        // a number of any spelling (4096, 4096.0); one out of range fails where a scaling uses it
        maxPositions = try c.first(Double.self, "max_position_embeddings").map { $0.isFinite && abs($0) <= 1e12 ? Int($0) : -1 } ?? defaultMaxPositions
        topLevelOriginal = try c.first(Double.self, "original_max_position_embeddings")
        topLevelPartial = try c.first(Double.self, "partial_rotary_factor")
    }

    /// The rotary embedding of `dim` dimensions these parameters describe.
    /// - Throws: `ModelsError` for a type this tool does not implement or values transformers
    ///   could not use either.
    func spec(dim: Int, interleaved: Bool, source: String) throws(ModelsError) -> RopeSpec {
        func fail(_ r: String) -> ModelsError { .config(file: source, reason: "rope_type '\(type)': \(r)") }
        if nested { throw .unsupported(file: source, reason: "RoPE parameters per layer type are not supported") }
        if let p = numbers["partial_rotary_factor"] ?? topLevelPartial, p != 1 {
            throw .unsupported(file: source, reason: "partial_rotary_factor \(p) is not supported (the whole head rotates in this family)")
        }
        func number(_ k: String) -> Double? { numbers[k] }
        func positive(_ k: String, _ v: Double?) throws(ModelsError) -> Double {
            guard let v else { throw fail("'\(k)' is missing") }
            guard v > 0, v.isFinite else { throw fail("'\(k)' must be a positive number, got \(v)") }
            return v
        }
        func positions(_ v: Double, _ k: String) throws(ModelsError) -> Int {
            guard v >= 1, v <= 1e12, v == v.rounded() else { throw fail("'\(k)' must be a positive integer, got \(v)") }
            return Int(v)
        }
        /// What llama3, yarn and longrope use: the top-level value, the object's, else max_position_embeddings.
        func original() throws(ModelsError) -> Int {
            if let t = topLevelOriginal { return try positions(t, "original_max_position_embeddings") }
            if let o = number("original_max_position_embeddings") { return try positions(o, "original_max_position_embeddings") }
            return try positions(Double(maxPositions), "max_position_embeddings")
        }
        let scaling: RopeScaling
        switch type {
        case "default":
            scaling = .none
        case "linear":
            scaling = .linear(factor: try positive("factor", number("factor")))
        case "dynamic":
            guard dim > 2 else { throw fail("needs more than 2 rotary dimensions") }
            scaling = .dynamic(factor: try positive("factor", number("factor")), maxPositions: try positions(Double(maxPositions), "max_position_embeddings"))
        case "yarn":
            let o = try original()
            let factor = try number("factor").map { v throws(ModelsError) in try positive("factor", v) } ?? Double(maxPositions) / Double(o)
            guard factor > 0, factor.isFinite else { throw fail("the factor max_position_embeddings / original_max_position_embeddings is \(factor)") }
            func mscale(_ scale: Double, _ m: Double) -> Double { scale <= 1 ? 1 : 0.1 * m * Foundation.log(scale) + 1 }
            var attention = number("attention_factor")
            if attention == nil {
                if let m = number("mscale"), m != 0, let a = number("mscale_all_dim"), a != 0 {
                    attention = mscale(factor, m) / mscale(factor, a)
                } else {
                    attention = mscale(factor, 1)
                }
            }
            let fast = number("beta_fast").flatMap { $0 == 0 ? nil : $0 } ?? 32
            let slow = number("beta_slow").flatMap { $0 == 0 ? nil : $0 } ?? 1
            guard let a = attention, a.isFinite, fast.isFinite, slow.isFinite, fast > 0, slow > 0 else {
                throw fail("attention_factor, beta_fast and beta_slow must be finite and the betas positive")
            }
            scaling = .yarn(factor: factor, originalMaxPositions: o, betaFast: fast, betaSlow: slow, truncate: truncate ?? true, attentionFactor: a)
        case "llama3":
            let low = try positive("low_freq_factor", number("low_freq_factor")), high = try positive("high_freq_factor", number("high_freq_factor"))
            guard high != low else { throw fail("high_freq_factor must differ from low_freq_factor") }
            scaling = .llama3(factor: try positive("factor", number("factor")), lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: try original())
        case "longrope":
            guard let s = shortFactor, let l = longFactor else { throw fail("'short_factor' and 'long_factor' are required") }
            guard s.count == dim / 2, l.count == dim / 2 else {
                throw fail("short_factor and long_factor need \(dim / 2) values each (got \(s.count), \(l.count))")
            }
            guard (s + l).allSatisfy({ $0 > 0 && $0.isFinite }) else { throw fail("short_factor and long_factor must be positive numbers") }
            let o = try original()
            let factor = try number("factor").map { v throws(ModelsError) in try positive("factor", v) } ?? Double(maxPositions) / Double(o)
            var attention = number("attention_factor")
            if attention == nil {
                attention = factor <= 1 ? 1 : (1 + Foundation.log(factor) / Foundation.log(Double(o))).squareRoot()
            }
            guard let a = attention, a.isFinite else { throw fail("attention_factor must be a finite number") }
            scaling = .longrope(shortFactor: s, longFactor: l, originalMaxPositions: o, attentionFactor: a)
        default:
            throw .unsupported(file: source, reason: "rope_type '\(type)' is not supported (default, linear, dynamic, yarn, llama3, longrope)")
        }
        return RopeSpec(theta: theta, dim: dim, interleaved: interleaved, scaling: scaling)
    }

    /// DeepSeek's multi-head latent attention multiplies its softmax scale by `mscale * mscale`,
    /// `mscale = 0.1 * mscale_all_dim * ln(factor) + 1` (1 for factor <= 1), whenever the RoPE is
    /// scaled and `mscale_all_dim` is set and not 0 (transformers' `yarn_apply_mscale`).
    var latentSoftmaxMScale: Double {
        guard type != "default", let all = numbers["mscale_all_dim"], all != 0 else { return 1 }
        let factor = numbers["factor"] ?? 1
        return factor <= 1 ? 1 : 0.1 * all * Foundation.log(factor) + 1
    }
}
