// What the approximate methods (lsh, hash, hnsw) share: parsing their descriptor options
// (`hnsw:32:ef=200`, `hash:64:c=500`), the vector store they re-rank against (the library's shared
// store, or one of their own when made standalone), the id <-> position bookkeeping with
// tombstones, the layout of their files' payloads, and running a batch's queries on all cores.
import Dispatch
import Foundation
import LookalikeEngine

/// A batch's queries answered one per task on all cores (one query is single-threaded); the first
/// error is thrown after the batch.
package enum BatchQueries {
    package static func run(_ m: Int, _ one: (Int) throws -> [Neighbor]) throws -> [[Neighbor]] {
        if m == 1 { return [try one(0)] }
        var results = [[Neighbor]](repeating: [], count: m)
        let failure = Locked<String?>(nil)
        try withoutActuallyEscaping(one) { one in
            results.withUnsafeMutableBufferPointer { r in
                let work = UnsafeSendable((r, one))
                DispatchQueue.concurrentPerform(iterations: m) { qi in
                    do { work.value.0[qi] = try work.value.1(qi) } catch { failure.withLock { $0 = String(describing: error) } }
                }
            }
            if let message = failure.value { throw IndexError(message) }
        }
        return results
    }
}

/// Descriptor options: bare numbers in order (`64` in `hash:64`), and `key=value` pairs.
struct DescriptorOptions {
    var numbers: [Int] = []
    var values: [String: String] = [:]

    init(_ descriptor: IndexDescriptor, allowedKeys: Set<String>, maxNumbers: Int) throws {
        for option in descriptor.options {
            if let n = Int(option) {
                numbers.append(n)
            } else {
                let pair = option.split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2, allowedKeys.contains(pair[0]), Int(pair[1]) != nil else {
                    throw IndexError("index descriptor '\(descriptor.name)': unknown option '\(option)' (options: numbers, \(allowedKeys.sorted().map { "\($0)=N" }.joined(separator: ", ")))")
                }
                values[pair[0]] = pair[1]
            }
        }
        guard numbers.count <= maxNumbers else {
            throw IndexError("index descriptor '\(descriptor.name)': at most \(maxNumbers) numbers expected")
        }
    }

    func int(_ key: String) -> Int? { values[key].flatMap { Int($0) } }
}

/// The store a coarse method re-ranks against: the library's when given, else its own (and then
/// `add` stores the vectors there too).
struct RerankStore {
    let store: VectorStore
    let owned: Bool

    init(dimension: Int, shared: VectorStore?) throws {
        if let shared {
            guard shared.dimension == dimension else {
                throw IndexError("index of \(dimension) dimensions cannot re-rank against a store of \(shared.dimension)")
            }
            store = shared
            owned = false
        } else {
            store = VectorStore(dimension: dimension)
            owned = true
        }
    }

    /// Read back from a file: coarse methods need the library's vectors beside them.
    static func required(_ store: VectorStore?, _ contents: IndexFile.Contents) throws -> VectorStore {
        guard let store else {
            throw IndexError("\(contents.mapping.path): a \(contents.tag) index re-ranks against the library's vectors; open it with its vector store")
        }
        guard store.dimension == contents.header.dimension else {
            throw IndexError("\(contents.mapping.path): index of \(contents.header.dimension) dimensions, vector store of \(store.dimension)")
        }
        return store
    }
}

/// Ids at positions, with tombstones: a removed id keeps its position (dead) until compaction.
struct PositionTable {
    private(set) var ids: [Int64] = []
    private(set) var dead: [Bool] = []
    private(set) var positions: [Int64: Int] = [:]
    private(set) var deadCount = 0

    var count: Int { ids.count - deadCount }
    var slots: Int { ids.count }

    /// Appends `id` at a new position (tombstoning its old one); returns the position.
    mutating func append(_ id: Int64) -> Int {
        if let old = positions[id], !dead[old] { dead[old] = true; deadCount += 1 }
        positions[id] = ids.count
        ids.append(id)
        dead.append(false)
        return ids.count - 1
    }

    mutating func remove(_ id: Int64) -> Bool {
        guard let p = positions.removeValue(forKey: id), !dead[p] else { return false }
        dead[p] = true
        deadCount += 1
        return true
    }

    /// True when tombstones are a quarter of the positions (time to compact).
    var wantsCompaction: Bool { deadCount > 64 && deadCount * 4 > ids.count }

    /// Live positions in order.
    var livePositions: [Int] { ids.indices.filter { !dead[$0] } }

    init() {}

    init(ids: [Int64]) throws {
        self.ids = ids
        dead = [Bool](repeating: false, count: ids.count)
        positions.reserveCapacity(ids.count)
        for (p, id) in ids.enumerated() { positions[id] = p }
        guard positions.count == ids.count else { throw IndexError("duplicate ids") }
    }
}

/// Little-endian payload building and reading for the coarse methods' files.
struct PayloadWriter {
    var data = Data()
    mutating func u64<T: FixedWidthInteger>(_ values: [T]) {
        values.withUnsafeBytes { data.append(contentsOf: $0) }
    }
    mutating func floats(_ values: [Float]) { values.withUnsafeBytes { data.append(contentsOf: $0) } }
}

struct PayloadReader {
    let bytes: UnsafeRawBufferPointer
    let source: String
    var at = 0

    mutating func array<T: FixedWidthInteger>(_ type: T.Type, count: Int) throws -> [T] {
        let size = count * MemoryLayout<T>.size
        guard count >= 0, at + size <= bytes.count else { throw IndexError("\(source): payload truncated") }
        let out = (0..<count).map { T(littleEndian: bytes.loadUnaligned(fromByteOffset: at + $0 * MemoryLayout<T>.size, as: T.self)) }
        at += size
        return out
    }

    mutating func floats(count: Int) throws -> [Float] {
        try array(UInt32.self, count: count).map { Float(bitPattern: $0) }
    }

    func finish() throws {
        guard at == bytes.count else { throw IndexError("\(source): \(bytes.count - at) unexpected bytes at the end of the payload") }
    }
}
