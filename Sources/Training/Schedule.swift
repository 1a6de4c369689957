import Foundation

/// Learning-rate schedules, evaluated at a 0-based step.
public enum LearningRateSchedule: Sendable, Equatable, Codable {
    /// `peak` after a linear warm-up of `warmup` steps.
    case constant(peak: Double, warmup: Int)
    /// Linear warm-up to `peak` over `warmup` steps, then cosine decay to `minimum` at `total`.
    case cosine(peak: Double, warmup: Int, total: Int, minimum: Double)

    /// The learning rate for step `step` (0-based): warm-up gives `peak * (step + 1) / warmup`.
    public func rate(at step: Int) -> Double {
        switch self {
        case let .constant(peak, warmup):
            return warmup > 0 && step < warmup ? peak * Double(step + 1) / Double(warmup) : peak
        case let .cosine(peak, warmup, total, minimum):
            if warmup > 0 && step < warmup { return peak * Double(step + 1) / Double(warmup) }
            let span = max(1, total - warmup)
            let progress = min(1, Double(step - warmup) / Double(span))
            return minimum + 0.5 * (peak - minimum) * (1 + Foundation.cos(Double.pi * progress))
        }
    }
}
