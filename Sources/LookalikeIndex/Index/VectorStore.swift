// The shared vector store: every stored vector of a library as flat rows (Float32, or Float16 for
// half the memory), addressed by image id, apart from any index structure. The exact index is a
// scan over it; coarse methods keep only their codes or graph and re-rank their candidates here,
// so a library holds one copy of its vectors whatever methods it serves. A store opened from a
// snapshot file uses the file's Float32 rows in place (memory-mapped, no copy); rows added later
// go to an owned segment; removed rows are tombstones skipped by every scan, and the store
// compacts itself when a quarter of its rows are dead.
//
// Cosine and Euclidean on Float32 are inner products (both are monotonic in the dot product of
// unit vectors): one BLAS sgemv per query, one sgemm per block for a batch of queries, and
// lk_dot_many_f32 for small batches, where sgemm's repacking of the rows would dominate; the other
// metrics and Float16 use the vectorised C kernels split across the cores. Top-K by bounded heaps.
import CBLAS
import CKernels
import Dispatch
import Foundation
import LookalikeEngine
import HeapModule

public enum StoragePrecision: String, Sendable, CaseIterable, Codable {
    case float32, float16

    var bytesPerValue: Int { self == .float32 ? 4 : 2 }
}

public final class VectorStore: @unchecked Sendable {
    // Everything mutable below is guarded by `lock`: scans read, add/remove/compaction write.
    public let dimension: Int
    public let precision: StoragePrecision
    let lock = ReadWriteLock()
    /// A snapshot's Float32 rows used in place (positions 0..<mappedRows), when opened from one.
    var mapping: MappedFile?
    var mappedRows: UnsafePointer<Float>?
    var mappedCount = 0
    /// The mapped file opened for reading (offset of row 0): `rank` reads candidate rows with
    /// pread instead of touching the mapping. A coarse method re-ranks a few hundred scattered
    /// rows per query; through the mapping, each read faults in the 64 KB around it (fault-around,
    /// which MADV_RANDOM does not turn off) and that stays in the process's RSS (4 GB after 200
    /// queries at 1M images); pread copies just the row, and the page cache stays the kernel's.
    var rowFile: Int32 = -1
    var rowFileOffset = 0
    /// Rows added in memory (positions mappedCount...).
    var owned: RowBuffer
    var ids: [Int64] = []
    var positions: [Int64: Int] = [:]
    var dead: [Bool] = []
    var deadCount = 0
    /// 1 / sum(positive values) per position, for chi-square; computed on first use.
    let chiScales = Locked<[Float]>([])
    /// The bfloat16 copy of the rows that batched scans screen with (see `screenedSearch`): made on
    /// the first batched scan, extended as rows are added, dropped by compaction.
    let screening = Locked<[ScreeningRows]>([])
    /// Bumped when compaction moves rows (screened candidates name rows by position).
    var generation = 0

    public init(dimension: Int, precision: StoragePrecision = .float32) {
        self.dimension = dimension
        self.precision = precision
        owned = RowBuffer(bytesPerRow: dimension * precision.bytesPerValue)
    }

    deinit {
        if rowFile >= 0 { close(rowFile) }
    }

    /// Live vectors.
    public var count: Int { lock.read { ids.count - deadCount } }

    /// Bytes of the rows held (mapped or owned, tombstones included until compaction).
    public var vectorBytes: Int { lock.read { mappedCount * dimension * 4 + owned.byteCount } }

    public func contains(_ id: Int64) -> Bool { lock.read { positions[id] != nil } }

    /// Ids of the live vectors, in storage order.
    public var liveIds: [Int64] { lock.read { ids.indices.filter { !dead[$0] }.map { ids[$0] } } }

    /// A live id chosen uniformly at random (nil when empty), without listing every id.
    public func randomId() -> Int64? {
        lock.read {
            guard ids.count > deadCount else { return nil }
            // Rejection sampling: dead rows are at most 3/4 of all (compaction keeps it so).
            while true {
                let p = Int.random(in: 0..<ids.count)
                if !dead[p] { return ids[p] }
            }
        }
    }

    // MARK: changes

    /// Makes room for `rows` more vectors at once (a bulk load then grows its buffer once, instead
    /// of by steps whose copies would briefly hold the vectors twice).
    public func reserveCapacity(_ rows: Int) {
        lock.write {
            owned.reserve(rows: owned.rows + rows)
            ids.reserveCapacity(ids.count + rows)
            dead.reserveCapacity(dead.count + rows)
            positions.reserveCapacity(positions.count + rows)
        }
    }

    /// Adds (or replaces) vectors; `vectors` holds `ids.count` rows of `dimension` values.
    public func add(ids newIds: [Int64], vectors: [Float]) throws {
        guard vectors.count == newIds.count * dimension else {
            throw IndexError("add: \(vectors.count) values for \(newIds.count) vectors of dimension \(dimension)")
        }
        guard !newIds.isEmpty else { return }
        lock.write {
            for id in newIds { if let old = positions[id], !dead[old] { dead[old] = true; deadCount += 1 } }
            vectors.withUnsafeBufferPointer { src in
                guard let s = src.baseAddress else { return }
                switch precision {
                case .float32:
                    owned.append(UnsafeRawPointer(s), count: newIds.count)
                case .float16:
                    if let d = owned.appendUninitialised(count: newIds.count) {
                        lk_f32_to_f16(s, d.assumingMemoryBound(to: UInt16.self), vectors.count)
                    }
                }
            }
            for id in newIds {
                positions[id] = ids.count
                ids.append(id)
                dead.append(false)
            }
        }
    }

    /// Removes ids (tombstones); returns how many were live.
    @discardableResult
    public func remove(ids gone: Set<Int64>) -> Int {
        guard !gone.isEmpty else { return 0 }
        return lock.write {
            var removed = 0
            for id in gone {
                guard let p = positions.removeValue(forKey: id) else { continue }
                if !dead[p] { dead[p] = true; deadCount += 1; removed += 1 }
            }
            if deadCount > 1024 && deadCount * 4 > ids.count { compactLocked() }
            return removed
        }
    }

    /// Rewrites the live rows into one owned segment (drops tombstones and the mapping).
    func compactLocked() {
        let fresh = RowBuffer(bytesPerRow: owned.bytesPerRow)
        fresh.reserve(rows: ids.count - deadCount)
        var newIds: [Int64] = []
        newIds.reserveCapacity(ids.count - deadCount)
        for p in ids.indices where !dead[p] {
            if let row = rowPointerLocked(p) { fresh.append(row, count: 1) }
            newIds.append(ids[p])
        }
        owned = fresh
        mapping = nil
        if rowFile >= 0 { close(rowFile) }
        rowFile = -1
        mappedRows = nil
        mappedCount = 0
        ids = newIds
        positions = Dictionary(uniqueKeysWithValues: newIds.enumerated().map { ($1, $0) })
        dead = [Bool](repeating: false, count: newIds.count)
        deadCount = 0
        chiScales.withLock { $0 = [] }
        screening.withLock { $0 = [] }
        generation += 1
    }

    /// Address of the row at position `p` in the store's own precision.
    func rowPointerLocked(_ p: Int) -> UnsafeRawPointer? {
        if p < mappedCount { return mappedRows.map { UnsafeRawPointer($0 + p * dimension) } }
        return owned.row(p - mappedCount)
    }

    // MARK: reading

    /// The stored vector of `id` as Float32.
    public func reconstruct(_ id: Int64) -> [Float]? {
        lock.read {
            guard let p = positions[id], !dead[p], let row = rowPointerLocked(p) else { return nil }
            return Self.floats(row, count: dimension, precision: p < mappedCount ? .float32 : precision)
        }
    }

    static func floats(_ row: UnsafeRawPointer, count: Int, precision: StoragePrecision) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialised in
            if let out = buffer.baseAddress {
                if precision == .float32 {
                    out.update(from: row.assumingMemoryBound(to: Float.self), count: count)
                } else {
                    lk_f16_to_f32(row.assumingMemoryBound(to: UInt16.self), out, count)
                }
            }
            initialised = count
        }
    }

    /// Live vectors in batches of up to `batch` rows as Float32 (for training and building
    /// coarse structures without copying the whole store at once).
    /// `startingAt` skips that many live rows first (without copying them).
    public func forEachBatch(_ batch: Int = 4096, startingAt first: Int = 0, _ body: ([Int64], [Float]) throws -> Void) rethrows {
        try lock.read {
            var batchIds: [Int64] = []
            var values: [Float] = []
            var skipped = 0
            for p in ids.indices where !dead[p] {
                if skipped < first { skipped += 1; continue }
                guard let row = rowPointerLocked(p) else { continue }
                batchIds.append(ids[p])
                values.append(contentsOf: Self.floats(row, count: dimension, precision: p < mappedCount ? .float32 : precision))
                if batchIds.count == batch {
                    try body(batchIds, values)
                    batchIds.removeAll(keepingCapacity: true)
                    values.removeAll(keepingCapacity: true)
                }
            }
            if !batchIds.isEmpty { try body(batchIds, values) }
        }
    }

    /// Every live vector (ids and rows as Float32).
    public func allVectors() -> (ids: [Int64], vectors: [Float]) {
        var allIds: [Int64] = []
        var all: [Float] = []
        forEachBatch { i, v in allIds.append(contentsOf: i); all.append(contentsOf: v) }
        return (allIds, all)
    }
}

/// One query's candidates from a screened scan (`VectorStore.screen`), ranked by `rankScreened`.
public struct ScreenedCandidates: Sendable {
    let query: [Float]
    let k: Int
    let metric: Metric
    /// Store positions of the rows to rank.
    let positions: [UInt32]
    let generation: Int
}

/// A bfloat16 copy of the float32 rows at positions start..<start+count, each zero padded to
/// `stride` values (a multiple of 32, as lk_dot_many_bf16 requires), and the largest row norm.
final class ScreeningRows: @unchecked Sendable {
    let start: Int
    let count: Int
    let stride: Int
    let maxNorm: Float
    let rows: UnsafeMutablePointer<UInt16>

    init(start: Int, count: Int, dimension: Int, row: (Int) -> UnsafePointer<Float>?) {
        self.start = start
        self.count = count
        stride = Self.stride(dimension: dimension)
        rows = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, count * stride))
        rows.initialize(repeating: 0, count: max(1, count * stride))
        var largest: Float = 0
        for i in 0..<count {
            guard let x = row(start + i) else { continue }
            lk_f32_to_bf16(x, rows + i * stride, dimension)
            var sum: Float = 0
            for j in 0..<dimension { sum += x[j] * x[j] }
            largest = max(largest, sum.squareRoot())
        }
        maxNorm = largest
    }

    deinit { rows.deallocate() }

    /// Values per bf16 row: the dimension rounded up to 32 (one AVX-512 register of bf16).
    static func stride(dimension: Int) -> Int { (dimension + 31) / 32 * 32 }
}
