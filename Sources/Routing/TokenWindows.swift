import Tensors

/// The tokens a routing analysis runs: consecutive windows of `windowLength` tokens, each its own
/// causal sequence from position 0 (no BOS added), grouped into named domains.
public struct TokenWindows: Sendable, Equatable {
    /// A named part of the data: whole windows `windows` of the token stream.
    public struct Domain: Sendable, Equatable {
        /// The domain's name (`NAME=FILE` on the command line, else the file name).
        public var name: String
        /// Its windows, as indices into the windows of all domains.
        public var windows: Range<Int>
    }

    /// Tokens of all windows, domain after domain [windowCount * windowLength].
    public private(set) var tokens: [Int32]
    /// Tokens per window.
    public let windowLength: Int
    /// The domains in order.
    public private(set) var domains: [Domain]

    /// Number of windows.
    public var windowCount: Int { tokens.count / windowLength }
    /// Number of tokens T.
    public var tokenCount: Int { tokens.count }

    /// No windows yet.
    /// - Throws: `RoutingError.data` for a window length below 1.
    public init(windowLength: Int) throws(RoutingError) {
        guard windowLength >= 1, windowLength <= 1 << 20 else {
            throw .setting("\(Setting.windowLength) \(windowLength) must be between 1 and 1048576")
        }
        self.windowLength = windowLength
        tokens = []
        domains = []
    }

    /// Appends the domain `name` from `stream`: its first `min(count, maxTokens)` tokens cut into
    /// whole windows, a last partial window dropped.
    /// - Throws: `RoutingError.data` when not one whole window fits.
    public mutating func append(
        domain name: String, count: Int, maxTokens: Int? = nil, source: String,
        token: (Int) -> Int32
    ) throws(RoutingError) {
        let usable = min(count, maxTokens ?? count)
        let w = usable / windowLength
        guard w > 0 else {
            throw .data(source: source, reason: "\(usable) tokens do not fill one window of \(windowLength) (lower \(Setting.windowLength))")
        }
        let first = windowCount
        tokens.reserveCapacity(tokens.count + w * windowLength)
        for i in 0..<(w * windowLength) { tokens.append(token(i)) }
        domains.append(Domain(name: name, windows: first..<(first + w)))
    }

    /// The domain index of every token [T].
    public var domainOfToken: [Int] {
        var out = [Int](repeating: 0, count: tokens.count)
        for (i, d) in domains.enumerated() {
            for t in (d.windows.lowerBound * windowLength)..<(d.windows.upperBound * windowLength) { out[t] = i }
        }
        return out
    }
}
