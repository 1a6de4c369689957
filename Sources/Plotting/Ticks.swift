import Foundation

/// Tick positions and tick labels: "nice" numbers in steps of 1, 2 or 5 times a power of ten.
public enum Ticks {
    /// Nice linear ticks inside `range`: multiples of the smallest step `m * 10^k` (`m` in 1, 2, 5)
    /// that gives at most `maxCount` ticks in the closed range (ends included up to 1e-9 of a step).
    ///
    /// For example `0...0.87` gives `0, 0.2, 0.4, 0.6, 0.8` and `-1...1` gives
    /// `-1, -0.5, 0, 0.5, 1` (with the default `maxCount` of 6). A single-point range gives that point.
    /// - Parameters:
    ///   - range: the axis limits, in data units.
    ///   - maxCount: the most ticks wanted (at least 2).
    public static func linear(in range: ClosedRange<Double>, maxCount: Int = 6) -> [Double] {
        guard let step = linearStep(in: range, maxCount: maxCount) else {
            return range.lowerBound.isFinite ? [range.lowerBound] : []
        }
        return multiples(of: step, in: range)
    }

    /// The step `linear(in:maxCount:)` uses, or nil for an empty or non-finite range.
    public static func linearStep(in range: ClosedRange<Double>, maxCount: Int = 6) -> Double? {
        let lo = range.lowerBound, hi = range.upperBound
        guard lo.isFinite, hi.isFinite, hi > lo else { return nil }
        let limit = max(2, maxCount)
        var exponent = Int((log10((hi - lo) / Double(limit))).rounded(.down)) - 1
        while true {
            for m in [1.0, 2.0, 5.0] {
                let step = m * pow(10, Double(exponent))
                if let n = count(of: step, in: range), n <= limit { return step }
            }
            exponent += 1
        }
    }

    /// Ticks for a logarithmic axis over `range` (both ends > 0): powers of ten, every `k`-th one
    /// (k in 1, 2, 3, 5, 10, ...) so that at most `maxCount` remain; when fewer than two powers of ten
    /// fall inside, the values 1, 2 and 5 times a power of ten; failing that, linear ticks.
    public static func logarithmic(in range: ClosedRange<Double>, maxCount: Int = 6) -> [Double] {
        let lo = range.lowerBound, hi = range.upperBound
        guard lo > 0, hi.isFinite, hi > lo else { return linear(in: range, maxCount: maxCount) }
        let first = Int((log10(lo) - 1e-9).rounded(.up))
        let decades = (first...max(first, Int(log10(hi).rounded(.down)))).filter {
            let v = pow(10, Double($0))
            return v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)
        }
        if decades.count >= 2 {
            for k in [1, 2, 3, 5, 10, 20, 50, 100] where (decades.count + k - 1) / k <= max(2, maxCount) {
                return decades.filter { $0 % k == 0 }.map { pow(10, Double($0)) }
            }
        }
        var values: [Double] = []
        for e in (first - 1)...(first + 1) {
            for m in [1.0, 2.0, 5.0] {
                let v = m * pow(10, Double(e))
                if v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) { values.append(v) }
            }
        }
        return values.count >= 2 && values.count <= max(2, maxCount) ? values : linear(in: range, maxCount: maxCount)
    }

    /// Labels for ticks that were spaced evenly (linear ticks): all with the same number of decimals,
    /// enough to tell neighbours apart; scientific (`2.5×10⁻⁵`) for very small steps or values of a
    /// million and more. Negative numbers use the typographic minus sign U+2212.
    public static func labels(for ticks: [Double]) -> [String] {
        let step =
            zip(ticks, ticks.dropFirst()).map { abs($1 - $0) }.filter { $0 > 0 }.min()
            ?? max(abs(ticks.first ?? 1), 1e-300)
        let largest = ticks.map(abs).max() ?? 0
        if largest >= 1e6 || (step < 1e-4 && largest > 0) {
            let exponent = Int(log10(largest).rounded(.down))
            let scale = pow(10, Double(exponent))
            let digits = decimals(for: step / scale)
            return ticks.map { v in
                if abs(v) < step * 1e-9 { return "0" }
                return format(v / scale, decimals: digits) + "×10" + superscript(exponent)
            }
        }
        let digits = decimals(for: step)
        return ticks.map { format($0, decimals: digits) }
    }

    /// Labels for logarithmic ticks: powers of ten as `10ⁿ`, other values as plain numbers.
    public static func logarithmicLabels(for ticks: [Double]) -> [String] {
        ticks.map { v in
            let e = log10(v)
            if abs(e - e.rounded()) < 1e-9 { return "10" + superscript(Int(e.rounded())) }
            return format(v, decimals: max(0, decimals(for: v)))
        }
    }

    /// `value` with `decimals` digits after the point (round half away from zero), with the
    /// typographic minus U+2212, and without a minus on a value that rounds to zero.
    public static func format(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "NaN" : (value > 0 ? "∞" : "−∞") }
        let d = max(0, min(decimals, 15))
        var text = String(format: "%.\(d)f", value)
        if text.hasPrefix("-") {
            let digitsOnly = text.dropFirst()
            text = digitsOnly.allSatisfy { $0 == "0" || $0 == "." } ? String(digitsOnly) : "−" + digitsOnly
        }
        return text
    }

    /// The decimals that show a step of `step` exactly when it is 1, 2 or 5 times a power of ten.
    static func decimals(for step: Double) -> Int {
        guard step > 0, step.isFinite else { return 0 }
        return max(0, -Int((log10(step) + 1e-9).rounded(.down)))
    }

    /// `n` in Unicode superscript digits (`-5` -> `⁻⁵`).
    static func superscript(_ n: Int) -> String {
        let digits: [Character] = ["⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"]
        return (n < 0 ? "⁻" : "") + String(abs(n)).compactMap { $0.wholeNumberValue.map { digits[$0] } }
    }

    /// The first and last `k` with `k * step` inside `range` (1e-9 of a step tolerance).
    private static func bounds(of step: Double, in range: ClosedRange<Double>) -> (first: Double, last: Double) {
        ((range.lowerBound / step - 1e-9).rounded(.up), (range.upperBound / step + 1e-9).rounded(.down))
    }

    /// How many multiples of `step` lie inside `range`; nil when more than a million.
    private static func count(of step: Double, in range: ClosedRange<Double>) -> Int? {
        let (first, last) = bounds(of: step, in: range)
        return last - first < 1e6 ? max(0, Int(last - first) + 1) : nil
    }

    /// The multiples `k * step` inside `range`, computed as products (no accumulated error).
    static func multiples(of step: Double, in range: ClosedRange<Double>) -> [Double] {
        let (first, last) = bounds(of: step, in: range)
        guard first <= last, last - first < 1e6 else { return [] }
        return stride(from: first, through: last, by: 1).map { k in
            let v = k * step
            return abs(v) < step * 1e-9 ? 0 : v
        }
    }
}
