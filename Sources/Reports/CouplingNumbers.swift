import Analysis
import Checkpoints
import Foundation

/// The ERC loss of one layer at one alpha, as the `erc` table carries it.
public struct ERCNumbers: Sendable, Equatable {
    /// alpha.
    public var alpha: Double
    /// Mean ERC loss over the noise samples (the noise-free loss with `--no-noise`).
    public var loss: Double
    /// Standard deviation over the noise samples (NaN with fewer than two samples).
    public var lossStd: Double
    /// The specialization (rows of M) and precision (columns of M) parts.
    public var specialization: Double, precision: Double

    /// The numbers at `alpha`.
    public init(alpha: Double, loss: Double, lossStd: Double = .nan, specialization: Double = .nan, precision: Double = .nan) {
        self.alpha = alpha; self.loss = loss; self.lossStd = lossStd; self.specialization = specialization; self.precision = precision
    }
}

/// What the tables say of one MoE layer: the numbers series figures, captions and verdicts are
/// computed from (a report from tables alone has nothing more). NaN where unknown.
public struct LayerNumbers: Sendable, Equatable {
    /// Decoder layer index.
    public var layer: Int
    /// Routed experts n.
    public var experts: Int
    /// Whether the layer was analysed, as a table's `status` cell says.
    public enum Status: Sendable, Equatable, CustomStringConvertible {
        /// Every measure was computed (`ok`, or an empty cell).
        case ok
        /// Why the layer could not be analysed, in the analysis's words.
        case failed(String)

        /// The status of a table cell.
        public init(cell: String) { self = cell.isEmpty || cell == "ok" ? .ok : .failed(cell) }

        public var description: String {
            switch self {
            case .ok: return "ok"
            case let .failed(why): return why
            }
        }
    }

    /// `ok`, or why the layer could not be analysed.
    public var status: Status
    /// The ERC loss at each alpha asked.
    public var erc: [ERCNumbers]
    /// Noise bound eps over the experts: mean, min, max.
    public var epsMean: Double, epsMin: Double, epsMax: Double
    /// Mean |cos(R[i], R[j])| over i != j.
    public var cosineMeanAbs: Double
    /// Mean of M's diagonal and off-diagonal entries.
    public var mDiagonalMean: Double, mOffDiagonalMean: Double
    /// alpha*: the smallest alpha at which the noise-free ERC loss is zero.
    public var couplingAlpha: Double

    /// Whether every measure was computed.
    public var isOK: Bool { status == .ok }

    /// A layer with every measure unknown.
    public init(layer: Int, experts: Int, status: Status = .ok) {
        self.layer = layer; self.experts = experts; self.status = status; erc = []
        epsMean = .nan; epsMin = .nan; epsMax = .nan; cosineMeanAbs = .nan
        mDiagonalMean = .nan; mOffDiagonalMean = .nan; couplingAlpha = .nan
    }

    /// The numbers of an analysed layer; the loss std only when `samples` > 1.
    public init(_ l: LayerCoupling, samples: Int) {
        self.init(layer: l.layer, experts: l.experts, status: l.isOK ? .ok : .failed(l.status.description))
        guard l.isOK else { return }
        erc = l.ercLosses.map { a in
            ERCNumbers(
                alpha: a.alpha, loss: a.loss.mean, lossStd: samples > 1 ? a.loss.std : .nan,
                specialization: a.specialization.mean, precision: a.precision.mean)
        }
        if !l.eps.isEmpty {
            epsMean = l.eps.reduce(0, +) / Double(l.eps.count)
            epsMin = l.eps.min() ?? .nan
            epsMax = l.eps.max() ?? .nan
        }
        cosineMeanAbs = l.geometry?.meanAbsCosine ?? .nan
        mDiagonalMean = l.mDiagonalMean.mean
        mOffDiagonalMean = l.mOffDiagonalMean.mean
        couplingAlpha = l.couplingAlpha
    }

    /// The ERC loss at `alpha`, if it was measured.
    public func erc(at alpha: Double) -> ERCNumbers? { erc.first { $0.alpha == alpha } }
}

/// One checkpoint's numbers, with the run it belongs to.
public struct CheckpointNumbers: Sendable, Equatable {
    /// The checkpoint path as the user gave it.
    public var checkpoint: String
    /// The training step parsed from the path, if any.
    public var step: Int?
    /// The run's label.
    public var run: String
    /// Probe feature and noise samples (0: no noise) of the measurement.
    public var feature: String, noiseSamples: Int
    /// Per-layer numbers.
    public var layers: [LayerNumbers]

    /// The numbers of `checkpoint`.
    public init(checkpoint: String, step: Int?, run: String, feature: String = "gate", noiseSamples: Int = 0, layers: [LayerNumbers]) {
        self.checkpoint = checkpoint; self.step = step; self.run = run; self.feature = feature; self.noiseSamples = noiseSamples; self.layers = layers
    }

    /// The numbers of an analysed checkpoint.
    public init(_ c: CheckpointCoupling, run: String, options: CouplingOptions) {
        let samples = options.noise ? max(1, options.samples) : 0
        self.init(
            checkpoint: c.checkpoint, step: c.step, run: run, feature: options.feature.rawValue, noiseSamples: samples,
            layers: c.layers.map { LayerNumbers($0, samples: samples) })
    }

    /// The layers whose measures were computed.
    public var okLayers: [LayerNumbers] { layers.filter(\.isOK) }

    /// The mean over the computed layers of `value` (finite values only), or nil.
    public func mean(_ value: (LayerNumbers) -> Double?) -> Double? {
        let v = okLayers.compactMap(value).filter(\.isFinite)
        return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
    }

    /// The smallest and largest over the computed layers of `value`, or nil.
    public func range(_ value: (LayerNumbers) -> Double?) -> ClosedRange<Double>? {
        let v = okLayers.compactMap(value).filter(\.isFinite)
        guard let lo = v.min(), let hi = v.max() else { return nil }
        return lo...hi
    }
}

/// A run's checkpoints in step order: one line of a series figure.
public struct RunSeries: Sendable {
    /// The run's label.
    public var label: String
    /// Its checkpoints, in increasing step.
    public var checkpoints: [CheckpointNumbers]

    /// A run `label` of `checkpoints` (already in step order).
    public init(label: String, checkpoints: [CheckpointNumbers]) { self.label = label; self.checkpoints = checkpoints }

    /// The runs of `checkpoints`, in order of first appearance, each sorted by step (those without one last, in order).
    public static func gather(_ checkpoints: [CheckpointNumbers]) -> [RunSeries] {
        var order: [String] = []
        var members: [String: [CheckpointNumbers]] = [:]
        for c in checkpoints {
            if members[c.run] == nil { order.append(c.run) }
            members[c.run, default: []].append(c)
        }
        return order.map { r in
            let all = members[r] ?? []
            let stepped = all.filter { $0.step != nil }.sorted { ($0.step ?? 0) < ($1.step ?? 0) }
            return RunSeries(label: r, checkpoints: stepped + all.filter { $0.step == nil })
        }
    }

    /// Where checkpoint `k` goes along the x axis: its step, or its position when it has none.
    public func x(_ k: Int) -> Double { Double(checkpoints[k].step ?? k) }

    /// "step 400", or "checkpoint 3" when the path names no step.
    public func place(_ k: Int) -> String {
        checkpoints[k].step.map { "step \($0)" } ?? "checkpoint \(k + 1)"
    }
}
