import Tensors

/// A 2-D quadtree over the embedding for Barnes-Hut repulsion, rebuilt every iteration.
///
/// Points are sorted along a Morton (Z-order) curve of 21 bits per axis by an LSD radix sort, so
/// every cell is a contiguous run of the sorted points and the tree is built in one pass. Nodes
/// are stored in depth-first pre-order with the index of the node after their subtree (`next`),
/// which makes the traversal a loop without a stack. Leaves hold up to `leafSize` points (more
/// only when the points share the finest cell, e.g. duplicates) and are summed exactly.
///
/// The repulsion is evaluated per group of nearby points (the largest cells of at most
/// `groupSize` points, Barnes 1990): one traversal per group collects the interaction list, with
/// the opening test made against the group's bounding box, so every summarised cell satisfies
/// width < theta * distance for every point of the group (never coarser than per-point
/// Barnes-Hut); then each point sums the list in SIMD lanes.
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
    /// Most points in a leaf (summed directly).
    var leafSize = 16
    /// Most points in a group sharing one interaction list.
    var groupSize = 64

    var nodes: [Node] = []
    /// Sorted coordinates (Morton order).
    var xs: [Float] = [], ys: [Float] = []
    /// `order[s]` is the original index of the point at sorted position `s`.
    var order: [Int32] = []
    /// Sorted-point ranges of the groups, `groups[2g] ..< groups[2g + 1]`; they partition the points.
    var groups: [Int32] = []
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
        nodes.reserveCapacity(2 * n / leafSize + 64)
        groups.removeAll(keepingCapacity: true)
        keys.withUnsafeBufferPointer { kp in
            _ = addNode(lo: 0, hi: n, level: 0, width: Float(side), inGroup: false, keys: kp)
        }
    }

    /// Appends the subtree over sorted points `lo..<hi` in the cell at `level`; returns its index.
    private mutating func addNode(
        lo: Int, hi: Int, level: Int, width: Float, inGroup: Bool,
        keys: UnsafeBufferPointer<UInt64>
    ) -> Int {
        let index = nodes.count
        let startsGroup = !inGroup && hi - lo <= groupSize
        if startsGroup { groups.append(Int32(lo)); groups.append(Int32(hi)) }
        nodes.append(Node(x: 0, y: 0, count: Float(hi - lo), width2: width * width, next: 0, lo: 0, hi: 0))
        var sx: Float = 0, sy: Float = 0
        if hi - lo <= leafSize || level == QuadTree.bitsPerAxis {
            if !inGroup && !startsGroup { groups.append(Int32(lo)); groups.append(Int32(hi)) }
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
                    let child = addNode(
                        lo: start, hi: a, level: level + 1, width: width / 2,
                        inGroup: inGroup || startsGroup, keys: keys)
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

    /// Barnes-Hut repulsion on every point: writes, for original index i, `out[3i], out[3i+1]` =
    /// sum_j w_ij^2 (y_i - y_j) and `out[3i+2]` = sum_{j != i} w_ij, w = 1 / (1 + |y_i - y_j|^2);
    /// returns Z, their total. A cell is summarised by its centre of mass when
    /// width^2 < theta^2 * distance^2 (scikit-learn's criterion, here from the group's box).
    func repulsion(theta2: Float, threads: Int, into out: UnsafeMutablePointer<Float>) -> Double {
        let groupCount = groups.count / 2
        let chunks = Chunks(count: groupCount, size: 4)
        let target = UnsafeShared(out)
        return nodes.withUnsafeBufferPointer { np in
            xs.withUnsafeBufferPointer { xp in
                ys.withUnsafeBufferPointer { yp in
                    order.withUnsafeBufferPointer { op in
                        groups.withUnsafeBufferPointer { gp in
                            Parallel.sum(chunks.chunkCount, threads: threads) { c in
                                var list = InteractionList()
                                defer { list.deallocate() }
                                var z = 0.0
                                for g in chunks.range(c) {
                                    z += QuadTree.repulsion(
                                        group: Int(gp[2 * g])..<Int(gp[2 * g + 1]), theta2: theta2,
                                        nodes: np, xs: xp, ys: yp, order: op,
                                        list: &list, out: target.value)
                                }
                                return z
                            }
                        }
                    }
                }
            }
        }
    }

    /// Interaction list of one group: positions and masses, padded to whole SIMD vectors.
    struct InteractionList {
        private(set) var x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>
        private(set) var count = 0
        private var capacity = 0

        init() {
            x = .allocate(capacity: 0); y = .allocate(capacity: 0); m = .allocate(capacity: 0)
        }

        /// Frees the storage; the list must not be used afterwards.
        func deallocate() { x.deallocate(); y.deallocate(); m.deallocate() }

        mutating func removeAll() { count = 0 }

        @inline(__always) mutating func append(_ px: Float, _ py: Float, _ mass: Float) {
            if count == capacity { grow() }
            x[count] = px; y[count] = py; m[count] = mass
            count += 1
        }

        private mutating func grow() {
            let bigger = max(1024, 2 * capacity)
            for buffer in [\InteractionList.x, \InteractionList.y, \InteractionList.m] {
                let fresh = UnsafeMutablePointer<Float>.allocate(capacity: bigger)
                fresh.update(from: self[keyPath: buffer], count: count)
                self[keyPath: buffer].deallocate()
                self[keyPath: buffer] = fresh
            }
            capacity = bigger
        }
    }

    private static func repulsion(
        group: Range<Int>, theta2: Float, nodes: UnsafeBufferPointer<Node>,
        xs: UnsafeBufferPointer<Float>, ys: UnsafeBufferPointer<Float>,
        order: UnsafeBufferPointer<Int32>, list: inout InteractionList,
        out: UnsafeMutablePointer<Float>
    ) -> Double {
        var minX = Float.infinity, maxX = -Float.infinity, minY = Float.infinity, maxY = -Float.infinity
        for s in group {
            minX = min(minX, xs[s]); maxX = max(maxX, xs[s])
            minY = min(minY, ys[s]); maxY = max(maxY, ys[s])
        }
        list.removeAll()
        var n = 0
        let nodeCount = nodes.count
        while n < nodeCount {
            let node = nodes[n]
            let dx = max(0, max(minX - node.x, node.x - maxX))
            let dy = max(0, max(minY - node.y, node.y - maxY))
            if node.width2 < theta2 * (dx * dx + dy * dy) {
                list.append(node.x, node.y, node.count)
                n = Int(node.next)
            } else if node.hi > node.lo {
                for t in Int(node.lo)..<Int(node.hi) { list.append(xs[t], ys[t], 1) }
                n = Int(node.next)
            } else {
                n += 1
            }
        }
        while list.count % 8 != 0 { list.append(0, 0, 0) }
        var z = 0.0
        let count = list.count, lx = list.x, ly = list.y, lm = list.m
        for s in group {
            let px = SIMD8<Float>(repeating: xs[s]), py = SIMD8<Float>(repeating: ys[s])
            var q = SIMD8<Float>(repeating: 0), fx = q, fy = q
            var e = 0
            while e < count {
                let dx = px - load8(lx + e), dy = py - load8(ly + e)
                let w = 1 / (1 + dx * dx + dy * dy)
                let mw = load8(lm + e) * w
                q += mw
                let mw2 = mw * w
                fx += mw2 * dx
                fy += mw2 * dy
                e += 8
            }
            // The point met itself once in its own leaf (w = 1, no force).
            let sumQ = q.sum() - 1
            let i = Int(order[s])
            out[3 * i] = fx.sum()
            out[3 * i + 1] = fy.sum()
            out[3 * i + 2] = sumQ
            z += Double(sumQ)
        }
        return z
    }
}
