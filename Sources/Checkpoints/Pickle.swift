/// A value of a Python pickle, as read by `PickleReader`: scalars inline, containers and objects
/// as an index into the document's node table (so shared and self-referring values cost nothing
/// to copy and nothing is ever executed).
public enum PickleValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// Index into `PickleDocument.nodes`.
    case node(Int)
}

/// A container, class reference or object of a pickle.
public enum PickleNode: Sendable, Equatable {
    /// An immutable tuple.
    case tuple([PickleValue])
    /// A list: index into `PickleDocument.lists`.
    case list(Int)
    /// A dict: index into `PickleDocument.dicts` (key/value pairs in insertion order).
    case dict(Int)
    /// A class or function named by the pickle (`module`, `name`), only ever from the allow-list.
    case global(module: String, name: String)
    /// An object made by `NEWOBJ` or `REDUCE`: index into `PickleDocument.objects`.
    case object(Int)
    /// A persistent id (`BINPERSID`), e.g. torch's reference to a storage record.
    case persistentID(PickleValue)
}

/// An object the pickle builds: its class or function (an allow-listed global), the arguments it
/// is called with, and the state `BUILD` sets. Nothing is called; this is only a description.
public struct PickledObject: Sendable, Equatable {
    /// `module.name` of the class or function.
    public var type: String
    /// The argument tuple.
    public var arguments: PickleValue
    /// The `BUILD` state, if any.
    public var state: PickleValue?
}

/// A whole pickle, read without executing anything: the root value and the node tables.
public struct PickleDocument: Sendable {
    /// The value the pickle returns.
    public var root: PickleValue = .none
    /// Containers, globals and objects.
    public var nodes: [PickleNode] = []
    /// List contents.
    public var lists: [[PickleValue]] = []
    /// Dict contents.
    public var dicts: [[(PickleValue, PickleValue)]] = []
    /// Object descriptions.
    public var objects: [PickledObject] = []

    /// The node `v` refers to, if it is a node.
    public func node(_ v: PickleValue) -> PickleNode? {
        if case let .node(i) = v, i >= 0, i < nodes.count { return nodes[i] }
        return nil
    }
    /// The elements of a tuple or list.
    public func sequence(_ v: PickleValue) -> [PickleValue]? {
        switch node(v) {
        case let .tuple(t)?: return t
        case let .list(i)?: return lists[i]
        default: return nil
        }
    }
    /// The key/value pairs of a dict.
    public func pairs(_ v: PickleValue) -> [(PickleValue, PickleValue)]? {
        if case let .dict(i)? = node(v) { return dicts[i] }
        return nil
    }
    /// The object `v` refers to, if it is one.
    public func object(_ v: PickleValue) -> PickledObject? {
        if case let .object(i)? = node(v) { return objects[i] }
        return nil
    }
    /// `module.name` of a global.
    public func globalName(_ v: PickleValue) -> String? {
        if case let .global(m, n)? = node(v) { return m + "." + n }
        return nil
    }
}

/// Why a pickle was refused; turned into `CheckpointError.malformed` naming the file.
public struct PickleError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public var message: String
    /// Byte offset of the opcode at fault.
    public var offset: Int
    public var description: String { "pickle: \(message) (at byte \(offset))" }
}

/// A strict reader for the pickles torch writes (protocols 2 to 5): it understands only the
/// opcodes those files use, resolves globals only against an allow-list given by the caller, and
/// builds a description of the objects instead of calling anything. Memory and work are linear in
/// the input: each opcode adds at most one node, and strings/bytes are bounded by the input size.
public enum PickleReader {
    /// Parses `bytes`. `allowed` holds the `module.name` of every global the file may refer to.
    /// - Throws: `PickleError` for an unknown opcode or global, a truncated or inconsistent stream.
    public static func parse(_ bytes: UnsafeRawBufferPointer, allowed: Set<String>) throws(PickleError) -> PickleDocument {
        var p = Parser(bytes: bytes, allowed: allowed)
        return try p.run()
    }

    /// Parses `bytes` and wraps any error as `CheckpointError.malformed` naming `file`.
    public static func parse(_ bytes: UnsafeRawBufferPointer, allowed: Set<String>, file: String) throws(CheckpointError) -> PickleDocument {
        do { return try parse(bytes, allowed: allowed) } catch { throw .malformed(file: file, reason: error.description) }
    }

    /// Parses `bytes` and wraps any error as `CheckpointError.malformed` naming `file`.
    public static func parse(_ bytes: [UInt8], allowed: Set<String>, file: String) throws(CheckpointError) -> PickleDocument {
        let r = bytes.withUnsafeBytes { b -> Result<PickleDocument, CheckpointError> in
            do throws(CheckpointError) { return .success(try parse(b, allowed: allowed, file: file)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let allowed: Set<String>
        var pos = 0
        var opStart = 0
        var doc = PickleDocument()
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]

        init(bytes: UnsafeRawBufferPointer, allowed: Set<String>) { self.bytes = bytes; self.allowed = allowed }

        func fail(_ m: String) -> PickleError { PickleError(message: m, offset: opStart) }

        mutating func take(_ n: Int) throws(PickleError) -> UnsafeRawBufferPointer {
            guard n >= 0, n <= bytes.count - pos else { throw fail("truncated: needs \(n) more bytes, \(bytes.count - pos) left") }
            defer { pos += n }
            return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
        }
        mutating func u8() throws(PickleError) -> Int { Int(try take(1)[0]) }
        mutating func uint(_ n: Int) throws(PickleError) -> UInt64 {
            let b = try take(n)
            var v: UInt64 = 0
            for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
            return v
        }
        mutating func length(_ n: Int) throws(PickleError) -> Int {
            let v = try uint(n)
            guard v <= UInt64(bytes.count - pos) else { throw fail("length \(v) runs past the end of the \(bytes.count)-byte pickle") }
            return Int(v)
        }
        mutating func text(_ n: Int) throws(PickleError) -> String {
            let b = try take(n)
            guard let s = String(validating: b, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            return s
        }
        mutating func line() throws(PickleError) -> String {
            var end = pos
            while end < bytes.count, end - pos <= 256, bytes[end] != 0x0A { end += 1 }
            guard end < bytes.count, bytes[end] == 0x0A else { throw fail("GLOBAL name is not a line of at most 256 bytes") }
            let s = try text(end - pos)
            pos += 1
            return s
        }
        mutating func pop() throws(PickleError) -> PickleValue {
            guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw fail("stack underflow") }
            return v
        }
        mutating func popMark() throws(PickleError) -> [PickleValue] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("no MARK for this opcode") }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }
        mutating func add(_ n: PickleNode) -> PickleValue {
            doc.nodes.append(n)
            return .node(doc.nodes.count - 1)
        }
        mutating func global(_ module: String, _ name: String) throws(PickleError) -> PickleValue {
            let q = module + "." + name
            guard allowed.contains(q) else {
                throw fail("refers to '\(q)', which is not among the classes these files use (refused; nothing is executed)")
            }
            return add(.global(module: module, name: name))
        }
        mutating func makeObject(_ callable: PickleValue, _ args: PickleValue, _ op: String) throws(PickleError) -> PickleValue {
            guard let type = doc.globalName(callable) else { throw fail("\(op) of something that is not a class or function") }
            guard case .tuple? = doc.node(args) else { throw fail("\(op) arguments are not a tuple") }
            doc.objects.append(PickledObject(type: type, arguments: args, state: nil))
            return add(.object(doc.objects.count - 1))
        }
        mutating func listIndex(_ v: PickleValue, _ op: String) throws(PickleError) -> Int {
            guard case let .list(i)? = doc.node(v) else { throw fail("\(op) on something that is not a list") }
            return i
        }
        mutating func dictIndex(_ v: PickleValue, _ op: String) throws(PickleError) -> Int {
            guard case let .dict(i)? = doc.node(v) else { throw fail("\(op) on something that is not a dict") }
            return i
        }
        mutating func memoGet(_ k: Int) throws(PickleError) -> PickleValue {
            guard let v = memo[k] else { throw fail("memo entry \(k) was never stored") }
            return v
        }
        mutating func memoPut(_ k: Int) throws(PickleError) {
            guard let v = stack.last else { throw fail("memo store with an empty stack") }
            memo[k] = v
        }

        mutating func run() throws(PickleError) -> PickleDocument {
            while true {
                opStart = pos
                let op = try u8()
                switch op {
                case 0x80:  // PROTO
                    let v = try u8()
                    guard (2...5).contains(v) else { throw fail("pickle protocol \(v) (only 2 to 5 are read)") }
                case 0x95:  // FRAME
                    _ = try length(8)
                case 0x2E:  // STOP
                    guard stack.count == 1, marks.isEmpty, let r = stack.first else {
                        throw fail("STOP with \(stack.count) values and \(marks.count) marks on the stack")
                    }
                    guard pos == bytes.count else { throw fail("\(bytes.count - pos) bytes after STOP") }
                    doc.root = r
                    return doc
                case 0x28: marks.append(stack.count)  // MARK
                case 0x30: _ = try pop()  // POP
                case 0x31: _ = try popMark()  // POP_MARK
                case 0x32:  // DUP
                    guard let v = stack.last else { throw fail("DUP with an empty stack") }
                    stack.append(v)
                case 0x4E: stack.append(.none)
                case 0x88: stack.append(.bool(true))
                case 0x89: stack.append(.bool(false))
                case 0x4A: stack.append(.int(Int(Int32(bitPattern: UInt32(try uint(4))))))  // BININT
                case 0x4B: stack.append(.int(try u8()))  // BININT1
                case 0x4D: stack.append(.int(Int(try uint(2))))  // BININT2
                case 0x8A, 0x8B:  // LONG1, LONG4
                    let n = try length(op == 0x8A ? 1 : 4)
                    guard n <= 8 else { throw fail("integer of \(n) bytes (at most 8 are read)") }
                    if n == 0 { stack.append(.int(0)); break }
                    let raw = try uint(n)
                    let shift = UInt64(64 - 8 * n)
                    stack.append(.int(Int(Int64(bitPattern: raw << shift) >> Int64(shift))))
                case 0x47:  // BINFLOAT (big-endian)
                    let b = try take(8)
                    var v: UInt64 = 0
                    for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                    stack.append(.float(Double(bitPattern: v)))
                case 0x8C: stack.append(.string(try text(try length(1))))  // SHORT_BINUNICODE
                case 0x58: stack.append(.string(try text(try length(4))))  // BINUNICODE
                case 0x8D: stack.append(.string(try text(try length(8))))  // BINUNICODE8
                case 0x43, 0x42, 0x8E:  // SHORT_BINBYTES, BINBYTES, BINBYTES8
                    let n = try length(op == 0x43 ? 1 : op == 0x42 ? 4 : 8)
                    stack.append(.bytes(Array(try take(n))))
                case 0x29: stack.append(add(.tuple([])))  // EMPTY_TUPLE
                case 0x74: stack.append(add(.tuple(try popMark())))  // TUPLE
                case 0x85, 0x86, 0x87:  // TUPLE1..3
                    let n = Int(op) - 0x84
                    guard stack.count - (marks.last ?? 0) >= n else { throw fail("stack underflow") }
                    let items = Array(stack.suffix(n))
                    stack.removeLast(n)
                    stack.append(add(.tuple(items)))
                case 0x5D:  // EMPTY_LIST
                    doc.lists.append([])
                    stack.append(add(.list(doc.lists.count - 1)))
                case 0x61:  // APPEND
                    let v = try pop()
                    guard let l = stack.last else { throw fail("APPEND with no list") }
                    let i = try listIndex(l, "APPEND")
                    doc.lists[i].append(v)
                case 0x65:  // APPENDS
                    let items = try popMark()
                    guard let l = stack.last else { throw fail("APPENDS with no list") }
                    let i = try listIndex(l, "APPENDS")
                    doc.lists[i].append(contentsOf: items)
                case 0x7D:  // EMPTY_DICT
                    doc.dicts.append([])
                    stack.append(add(.dict(doc.dicts.count - 1)))
                case 0x73:  // SETITEM
                    let v = try pop(), k = try pop()
                    guard let d = stack.last else { throw fail("SETITEM with no dict") }
                    let i = try dictIndex(d, "SETITEM")
                    doc.dicts[i].append((k, v))
                case 0x75:  // SETITEMS
                    let items = try popMark()
                    guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values") }
                    guard let d = stack.last else { throw fail("SETITEMS with no dict") }
                    let i = try dictIndex(d, "SETITEMS")
                    var j = 0
                    while j < items.count { doc.dicts[i].append((items[j], items[j + 1])); j += 2 }
                case 0x63:  // GLOBAL
                    let module = try line(), name = try line()
                    stack.append(try global(module, name))
                case 0x93:  // STACK_GLOBAL
                    let n = try pop(), m = try pop()
                    guard case let .string(name) = n, case let .string(module) = m else { throw fail("STACK_GLOBAL of non-strings") }
                    stack.append(try global(module, name))
                case 0x52:  // REDUCE
                    let args = try pop(), f = try pop()
                    stack.append(try makeObject(f, args, "REDUCE"))
                case 0x81:  // NEWOBJ
                    let args = try pop(), cls = try pop()
                    stack.append(try makeObject(cls, args, "NEWOBJ"))
                case 0x62:  // BUILD
                    let state = try pop()
                    guard let o = stack.last, case let .object(i)? = doc.node(o) else { throw fail("BUILD on something that is not an object") }
                    guard doc.objects[i].state == nil else { throw fail("BUILD twice on one object") }
                    doc.objects[i].state = state
                case 0x51:  // BINPERSID
                    let id = try pop()
                    stack.append(add(.persistentID(id)))
                case 0x71: try memoPut(try u8())  // BINPUT
                case 0x72: try memoPut(Int(try uint(4)))  // LONG_BINPUT
                case 0x94: try memoPut(memo.count)  // MEMOIZE
                case 0x68: stack.append(try memoGet(try u8()))  // BINGET
                case 0x6A: stack.append(try memoGet(Int(try uint(4))))  // LONG_BINGET
                default:
                    throw fail("unsupported opcode 0x\(String(op, radix: 16)) (only the opcodes torch's checkpoint pickles use are read)")
                }
            }
        }
    }
}
