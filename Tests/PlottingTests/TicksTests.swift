import Plotting
import Testing

/// Compares tick values to expected ones within 1e-12.
private func same(_ a: [Double], _ b: [Double]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-12 }
}

@Test func niceLinearTicksOfTheUnitInterval() {
    #expect(same(Ticks.linear(in: 0...0.87), [0, 0.2, 0.4, 0.6, 0.8]))
    #expect(same(Ticks.linear(in: -1...1), [-1, -0.5, 0, 0.5, 1]))
    #expect(same(Ticks.linear(in: 0...1), [0, 0.2, 0.4, 0.6, 0.8, 1]))
}

@Test func niceLinearTicksAtOtherScales() {
    #expect(same(Ticks.linear(in: 0...3), [0, 1, 2, 3]))
    #expect(same(Ticks.linear(in: 0...100), [0, 20, 40, 60, 80, 100]))
    #expect(same(Ticks.linear(in: 15_003...16_497, maxCount: 8), [15_200, 15_400, 15_600, 15_800, 16_000, 16_200, 16_400]))
    #expect(same(Ticks.linear(in: 0.013...0.047, maxCount: 4), [0.02, 0.03, 0.04]))
    #expect(same(Ticks.linear(in: -3e-5...7e-5, maxCount: 6), [-2e-5, 0, 2e-5, 4e-5, 6e-5]))
    #expect(same(Ticks.linear(in: 0...0.87, maxCount: 10), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]))
    #expect(Ticks.linear(in: 2...2) == [2])
}

@Test func ticksAreExactMultiplesWithoutAccumulatedError() {
    // 0.1 * 3 is 0.30000000000000004 in binary; the labels must still read 0.3.
    let ticks = Ticks.linear(in: 0...0.9, maxCount: 10)
    #expect(Ticks.labels(for: ticks) == ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"])
}

@Test func tickLabelsShareTheirDecimalsAndUseTheMinusSign() {
    #expect(Ticks.labels(for: [-1, -0.5, 0, 0.5, 1]) == ["−1.0", "−0.5", "0.0", "0.5", "1.0"])
    #expect(Ticks.labels(for: [0, 0.2, 0.4, 0.6, 0.8]) == ["0.0", "0.2", "0.4", "0.6", "0.8"])
    #expect(Ticks.labels(for: [0, 5000, 10_000]) == ["0", "5000", "10000"])
    #expect(Ticks.labels(for: [0.02, 0.03, 0.04]) == ["0.02", "0.03", "0.04"])
    #expect(Ticks.labels(for: [0, 2e-5, 4e-5]) == ["0", "2×10⁻⁵", "4×10⁻⁵"])
    #expect(Ticks.labels(for: [0, 2e6, 4e6]) == ["0", "2×10⁶", "4×10⁶"])
    #expect(Ticks.format(-0.0001, decimals: 2) == "0.00")
}

@Test func logarithmicTicksArePowersOfTen() {
    #expect(same(Ticks.logarithmic(in: 1...1000), [1, 10, 100, 1000]))
    #expect(Ticks.logarithmicLabels(for: [0.01, 1, 100]) == ["10⁻²", "10⁰", "10²"])
    #expect(same(Ticks.logarithmic(in: 1e-8...1, maxCount: 5), [1e-8, 1e-6, 1e-4, 1e-2, 1]))
    #expect(same(Ticks.logarithmic(in: 3...40), [5, 10, 20]))
}
