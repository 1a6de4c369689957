/// A 2-D quadtree over the embedding for Barnes-Hut repulsion, rebuilt every iteration.
///
/// Points are sorted along a Morton (Z-order) curve of 21 bits per axis by an LSD radix sort, so
/// every cell is a contiguous run of the sorted points and the tree is built in one pass. Nodes
/// are stored in depth-first pre-order with the index of the node after their subtree (`next`),
/// which makes the traversal a loop without a stack. Leaves hold up to `leafSize` points (more
/// only when the points share the finest cell, e.g. duplicates) and are summed exactly.
struct QuadTree {
    struct Node {
        /// Centre of mass.
        var x: Float, y: Float
        /// Number of points below.
        var count: Float
        /// Squared side of the (square) cell.
        var width2: Float
        /// Index of the first node after this subtree.
        var next: Int32
        /// Sorted-point range of a leaf; `lo == hi` for inner nodes.
        var lo: Int32, hi: Int32
    }

    static let bitsPerAxis = 21
    static let leafSize = 8

    var nodes: [Node] = []
    /// Sorted coordinates (Morton order).
    var xs: [Float] = [], ys: [Float] = []
    /// `order[s]` is the original index of the point at sorted position `s`.
    var order: [Int32] = []
    private var keys: [UInt64] = [], scratchKeys: [UInt64] = [], scratchOrder: [Int32] = []

    /// Rebuilds the tree over `n` points with interleaved coordinates `y[2i], y[2i+1]`.
    mutating func build(_ y: UnsafePointer<Float>, n: Int) {
        var minX = Float.infinity, maxX = -Float.infinity, minY = Float.infinity, maxY = -Float.infinity
        for i in 0..<n {
            minX = min(minX, y[2 * i]); maxX = max(maxX, y[2 * i])
            minY = min(minY, y[2 * i + 1]); maxY = max(maxY, y[2 * i + 1])
        }
        var side = Double(max(maxX - minX, maxY - minY))
        if !(side > 0) { side = 1 }
        side *= 1 + 1e-6
        let cells = Double(1 << QuadTree.bitsPerAxis)
        let scale = cells / side
        let top = UInt32((1 << QuadTree.bitsPerAxis) - 1)
        if keys.count != n {
            keys = .init(repeating: 0, count: n); scratchKeys = keys
            order = .init(repeating: 0, count: n); scratchOrder = order
            xs = .init(repeating: 0, count: n); ys = xs
        }
        for i in 0..<n {
            let qx = min(top, UInt32(max(0, (Double(y[2 * i]) - Double(minX)) * scale)))
            let qy = min(top, UInt32(max(0, (Double(y[2 * i + 1]) - Double(minY)) * scale)))
            keys[i] = QuadTree.spread(qx) << 1 | QuadTree.spread(qy)
            order[i] = Int32(i)
        }
        radixSort(n)
        for s in 0..<n {
            let i = Int(order[s])
            xs[s] = y[2 * i]; ys[s] = y[2 * i + 1]
        }
        nodes.removeAll(keepingCapacity: true)
        nodes.reserveCapacity(2 * n / QuadTree.leafSize + 64)
        keys.withUnsafeBufferPointer { kp in
            _ = addNode(lo: 0, hi: n, level: 0, width: Float(side), keys: kp)
        }
    }

    /// Appends the subtree over sorted points `lo..<hi` in the cell at `level`; returns its index.
    private mutating func addNode(lo: Int, hi: Int, level: Int, width: Float,
                                  keys: UnsafeBufferPointer<UInt64>) -> Int {
        let index = nodes.count
        nodes.append(Node(x: 0, y: 0, count: Float(hi - lo), width2: width * width, next: 0, lo: 0, hi: 0))
        var sx: Float = 0, sy: Float = 0
        if hi - lo <= QuadTree.leafSize || level == QuadTree.bitsPerAxis {
            for s in lo..<hi { sx += xs[s]; sy += ys[s] }
            nodes[index].lo = Int32(lo)
            nodes[index].hi = Int32(hi)
        } else {
            let shift = UInt64(2 * (QuadTree.bitsPerAxis - 1 - level))
            var start = lo
            for quadrant in UInt64(0)..<4 {
                // First sorted position past this quadrant (keys are sorted, quadrant bits ascend).
                var a = start, b = hi
                while a < b {
                    let mid = (a + b) / 2
                    if (keys[mid] >> shift) & 3 <= quadrant { a = mid + 1 } else { b = mid }
                }
                if a > start {
                    let child = addNode(lo: start, hi: a, level: level + 1, width: width / 2, keys: keys)
                    let c = nodes[child]
                    sx += c.x * c.count; sy += c.y * c.count
                }
                start = a
            }
        }
        let count = Float(hi - lo)
        nodes[index].x = sx / count
        nodes[index].y = sy / count
        nodes[index].next = Int32(nodes.count)
        return index
    }

    /// LSD radix sort of `keys` (42 significant bits, 11 per pass) carrying `order`.
    private mutating func radixSort(_ n: Int) {
        var histogram = [Int](repeating: 0, count: 2048)
        for pass in 0..<4 {
            let shift = UInt64(11 * pass)
            for b in 0..<2048 { histogram[b] = 0 }
            for i in 0..<n { histogram[Int((keys[i] >> shift) & 2047)] += 1 }
            var total = 0
            for b in 0..<2048 { let c = histogram[b]; histogram[b] = total; total += c }
            for i in 0..<n {
                let b = Int((keys[i] >> shift) & 2047)
                scratchKeys[histogram[b]] = keys[i]
                scratchOrder[histogram[b]] = order[i]
                histogram[b] += 1
            }
            swap(&keys, &scratchKeys)
            swap(&order, &scratchOrder)
        }
    }

    /// Spreads the low 21 bits of `v` to the even bit positions of a 64-bit word.
    @inline(__always) static func spread(_ v: UInt32) -> UInt64 {
        var x = UInt64(v) & 0x1F_FFFF
        x = (x | x << 16) & 0x0000_FFFF_0000_FFFF
        x = (x | x << 8) & 0x00FF_00FF_00FF_00FF
        x = (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F
        x = (x | x << 2) & 0x3333_3333_3333_3333
        x = (x | x << 1) & 0x5555_5555_5555_5555
        return x
    }

    /// Barnes-Hut repulsion on the sorted point `s`: returns (sum of w_ij over j != i, and
    /// sum of w_ij^2 (y_i - y_j)) with w = 1 / (1 + |y_i - y_j|^2). A cell is summarised by
    /// its centre of mass when width^2 < theta^2 * distance^2 (scikit-learn's criterion).
    @inline(__always)
    static func repulsion(at s: Int, theta2: Float, nodes: UnsafePointer<Node>, nodeCount: Int,
                          xs: UnsafePointer<Float>, ys: UnsafePointer<Float>) -> (Float, Float, Float) {
        let px = xs[s], py = ys[s]
        var sumQ: Float = 0, fx: Float = 0, fy: Float = 0
        var n = 0
        while n < nodeCount {
            let node = nodes[n]
            let dx = px - node.x, dy = py - node.y
            let d2 = dx * dx + dy * dy
            if node.width2 < theta2 * d2 {
                let w = 1 / (1 + d2)
                let cw = node.count * w
                sumQ += cw
                fx += cw * w * dx
                fy += cw * w * dy
                n = Int(node.next)
            } else if node.hi > node.lo {
                for t in Int(node.lo)..<Int(node.hi) {
                    let ex = px - xs[t], ey = py - ys[t]
                    let w = 1 / (1 + ex * ex + ey * ey)
                    sumQ += w
                    fx += w * w * ex
                    fy += w * w * ey
                }
                n = Int(node.next)
            } else {
                n += 1
            }
        }
        // The point met itself once in its own leaf (w = 1, no force).
        return (sumQ - 1, fx, fy)
    }
}
