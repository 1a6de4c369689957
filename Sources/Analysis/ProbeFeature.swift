/// Which expert response the activation matrix M measures on each proxy token (the paper's
/// ablation, Section 5): `M[i, j] = || f_j(R~[i]) ||_2`.
public enum ProbeFeature: String, Sendable, CaseIterable, Codable {
    /// `R~ W_g^T`: the gate projection's pre-activation (the paper's choice, default).
    case gate
    /// `R~ W_p^T`: the up projection.
    case up
    /// `SiLU(R~ W_g^T)`.
    case siluGate = "silu-gate"
    /// `SiLU(R~ W_g^T) * (R~ W_p^T)`: the SwiGLU hidden activation.
    case swiglu
    /// `W_o (SiLU(R~ W_g^T) * R~ W_p^T)`: the whole expert's output (norm over d).
    case output

    /// True when the feature needs the up projection W_p.
    public var needsUp: Bool { self == .up || self == .swiglu || self == .output }
    /// True when the feature needs the gate projection W_g.
    public var needsGate: Bool { self != .up }
    /// M is linear in the router for these features (gate, up): scaling R scales M alike.
    public var isLinearInRouter: Bool { self == .gate || self == .up }
    /// True when the feature needs the down projection W_o.
    public var needsDown: Bool { self == .output }
}
