import Foundation

/// The decoder layers a command works on, as the user wrote them (`0,3-5`).
public struct LayerSelection: Sendable, Equatable, CustomStringConvertible {
    /// The selected decoder-layer indices.
    public let layers: Set<Int>

    /// Selects `layers` (must not be empty).
    public init?(_ layers: Set<Int>) {
        guard !layers.isEmpty, layers.allSatisfy({ $0 >= 0 }) else { return nil }
        self.layers = layers
    }

    /// Parses a comma-separated list of indices and inclusive ranges, such as `0,3-5`; nil when
    /// the text is not such a list (negative, reversed or empty parts, or a range wider than
    /// 100,000 layers).
    public init?(parsing text: String) {
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
                .map { Int($0.trimmingCharacters(in: .whitespaces)) }
            if bounds.count == 1, let a = bounds[0], a >= 0 {
                out.insert(a)
            } else if bounds.count == 2, let a = bounds[0], let b = bounds[1], a >= 0, b >= a, b - a <= 100_000 {
                out.formUnion(a...b)
            } else {
                return nil
            }
        }
        self.init(out)
    }

    /// The layers in increasing order, as `0, 3, 4, 5`.
    public var description: String { layers.sorted().map(String.init).joined(separator: ", ") }

    /// Whether decoder layer `index` is selected.
    public func contains(_ index: Int) -> Bool { layers.contains(index) }
}

extension MoECheckpoint {
    /// The MoE layers to work on: those in `selection`, or every MoE layer when it is nil.
    /// - Throws: `LayoutError.noMoELayers` when the checkpoint has none, and
    ///   `LayoutError.notMoELayers` when the selection names a layer that is not an MoE layer.
    public func moeLayers(in selection: LayerSelection?) throws(LayoutError) -> [MoELayer] {
        let all = moeLayers
        guard !all.isEmpty else { throw .noMoELayers(file: checkpoint.path, problems: problems) }
        guard let selection else { return all }
        let missing = selection.layers.subtracting(all.map(\.index))
        guard missing.isEmpty else {
            throw .notMoELayers(file: checkpoint.path, asked: missing.sorted(), available: all.map(\.index))
        }
        return all.filter { selection.contains($0.index) }
    }
}
