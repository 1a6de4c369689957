import Checkpoints

/// Refuses to run when one of `outputs` (files or folders the command writes; nil and `-` are
/// skipped) would replace one of the files `inputs` stand for.
func protectInputs(_ outputs: [String?], from inputs: [String]) throws {
    for case let o? in outputs where o != "-" { try InputProtection.check(output: o, inputs: inputs) }
}
