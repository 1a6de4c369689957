import Foundation

/// A test hook that simulates a kill at a chosen file-system step: with the environment
/// variable `MOE_INSPECT_FAULT_AT=N`, the N-th call of `point()` in the process ends it at
/// once with exit code 77, as `kill -9` would (no clean-up runs). Every write, rename and
/// removal of an output calls `point()` first, so a test can stop a run at each of them in
/// turn and check that nothing is lost and that resume is exact. Without the variable it
/// does nothing.
public enum FaultInjection {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var remaining: Int? = {
        ProcessInfo.processInfo.environment["MOE_INSPECT_FAULT_AT"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
    }()

    /// Counts one file-system step; ends the process at the chosen one.
    public static func point() {
        lock.lock()
        defer { lock.unlock() }
        guard let r = remaining else { return }
        if r <= 1 { _exit(77) }
        remaining = r - 1
    }
}
