// The exact (brute-force) index: every vector in one contiguous row-major buffer, Float32 or Float16
// (half the memory, same ranking to within rounding). Cosine and Euclidean on Float32 are one BLAS
// matrix-vector product (both are monotonic in the dot product of unit vectors); the other metrics
// and Float16 storage use the vectorised C kernels, split across the cores. Top-K by bounded heap.
import CBLAS
import CKernels
import Dispatch
import Foundation

public enum StoragePrecision: String, Sendable, CaseIterable, Codable {
    case float32, float16
}

public final class ExactIndex: VectorIndex, @unchecked Sendable {
    public static let methodName = "exact"
    public let dimension: Int
    public let precision: StoragePrecision
    // Guarded by `lock`: searches take it shared in spirit (they only read); writers replace state.
    private let lock = NSLock()
    private var ids: [Int64] = []
    private var rows32: [Float] = []
    private var rows16: [UInt16] = []
    /// 1 / sum(row): scales a row to sum 1 for chi-square.
    private var l1Scale: [Float] = []

    public init(dimension: Int, precision: StoragePrecision = .float32) {
        self.dimension = dimension
        self.precision = precision
    }

    public var count: Int { lock.withLock { ids.count } }

    /// Bytes held by the vectors.
    public var vectorBytes: Int {
        lock.withLock { precision == .float32 ? rows32.count * 4 : rows16.count * 2 }
    }

    public func add(ids newIds: [Int64], vectors: [Float]) throws {
        guard vectors.count == newIds.count * dimension else {
            throw IndexError("add: \(vectors.count) values for \(newIds.count) vectors of dimension \(dimension)")
        }
        var scales = [Float](repeating: 0, count: newIds.count)
        vectors.withUnsafeBufferPointer { v in
            for r in 0..<newIds.count {
                var s: Float = 0
                for i in 0..<dimension { s += Swift.max(0, v[r * dimension + i]) }
                scales[r] = s > 0 ? 1 / s : 0
            }
        }
        lock.withLock {
            ids.append(contentsOf: newIds)
            l1Scale.append(contentsOf: scales)
            switch precision {
            case .float32:
                // The first add shares the caller's buffer (copy-on-write) instead of copying it.
                if rows32.isEmpty { rows32 = vectors } else { rows32.append(contentsOf: vectors) }
            case .float16:
                let start = rows16.count
                rows16.append(contentsOf: repeatElement(0, count: vectors.count))
                vectors.withUnsafeBufferPointer { src in
                    rows16.withUnsafeMutableBufferPointer { dst in
                        if let s = src.baseAddress, let d = dst.baseAddress {
                            lk_f32_to_f16(s, d + start, vectors.count)
                        }
                    }
                }
            }
        }
    }

    public func remove(ids toRemove: Set<Int64>) {
        guard !toRemove.isEmpty else { return }
        lock.withLock {
            var keep: [Int] = []
            keep.reserveCapacity(ids.count)
            for (i, id) in ids.enumerated() where !toRemove.contains(id) { keep.append(i) }
            guard keep.count != ids.count else { return }
            let d = dimension
            ids = keep.map { ids[$0] }
            l1Scale = keep.map { l1Scale[$0] }
            if precision == .float32 {
                var out = [Float](); out.reserveCapacity(keep.count * d)
                for i in keep { out.append(contentsOf: rows32[i * d..<(i + 1) * d]) }
                rows32 = out
            } else {
                var out = [UInt16](); out.reserveCapacity(keep.count * d)
                for i in keep { out.append(contentsOf: rows16[i * d..<(i + 1) * d]) }
                rows16 = out
            }
        }
    }

    public func search(_ query: [Float], k: Int, metric: Metric, excluding: Set<Int64> = []) throws -> [Neighbor] {
        guard query.count == dimension else {
            throw IndexError("query has \(query.count) dimensions, the index \(dimension)")
        }
        return lock.withLock { searchLocked(query, k: k, metric: metric, excluding: excluding) }
    }

    private func searchLocked(_ query: [Float], k: Int, metric: Metric, excluding: Set<Int64>) -> [Neighbor] {
        let n = ids.count
        guard n > 0, k > 0 else { return [] }
        let d = dimension
        // Distances (or a monotonic stand-in: -dot for cosine/euclidean) for every row.
        var values = [Float](repeating: 0, count: n)
        let positiveSum = metric == .chi2 ? query.reduce(Float(0)) { $0 + Swift.max(0, $1) } : 0
        let qScale: Float = positiveSum > 0 ? 1 / positiveSum : 0
        let chunks = n >= 4096 ? ProcessInfo.processInfo.activeProcessorCount : 1
        let per = (n + chunks - 1) / chunks
        query.withUnsafeBufferPointer { q in
            values.withUnsafeMutableBufferPointer { out in
                guard let qp = q.baseAddress, let op = out.baseAddress else { return }
                if precision == .float32 && (metric == .cosine || metric == .euclidean) {
                    rows32.withUnsafeBufferPointer { x in
                        guard let xp = x.baseAddress else { return }
                        // out = -X q  (smaller is nearer)
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(d), -1, xp, Int32(d), qp, 1, 0, op, 1)
                    }
                    return
                }
                let rows32Ptr = rows32.withUnsafeBufferPointer { $0.baseAddress }
                let rows16Ptr = rows16.withUnsafeBufferPointer { $0.baseAddress }
                let scalePtr = l1Scale.withUnsafeBufferPointer { $0.baseAddress }
                let precision = self.precision
                // The arrays are not mutated during the search (the lock is held), so their
                // storage addresses stay valid for the parallel loop.
                let work = UnsafeSendable((qp, op, rows32Ptr, rows16Ptr, scalePtr))
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    let (qp, op, r32, r16, sc) = work.value
                    let start = c * per, count = Swift.min(per, n - start)
                    guard count > 0 else { return }
                    let o = op + start
                    switch (metric, precision) {
                    case (.cosine, _), (.euclidean, _):
                        if let r16 { lk_dot_f16(qp, r16 + start * d, count, d, o) }
                        for i in 0..<count { o[i] = -o[i] }
                    case (.manhattan, .float32): if let r32 { lk_l1_f32(qp, r32 + start * d, count, d, o) }
                    case (.manhattan, .float16): if let r16 { lk_l1_f16(qp, r16 + start * d, count, d, o) }
                    case (.chebyshev, .float32): if let r32 { lk_linf_f32(qp, r32 + start * d, count, d, o) }
                    case (.chebyshev, .float16): if let r16 { lk_linf_f16(qp, r16 + start * d, count, d, o) }
                    case (.chi2, .float32): if let r32, let sc { lk_chi2_f32(qp, qScale, r32 + start * d, sc + start, count, d, o) }
                    case (.chi2, .float16): if let r16, let sc { lk_chi2_f16(qp, qScale, r16 + start * d, sc + start, count, d, o) }
                    }
                }
            }
        }
        let ids = self.ids
        let skip: ((Int) -> Bool)? = excluding.isEmpty ? nil : { excluding.contains(ids[$0]) }
        let best = values.withUnsafeBufferPointer { TopK.smallest($0, k: k, skip: skip) }
        return best.map { entry in
            let distance: Float
            switch metric {
            case .cosine: distance = 1 + entry.value
            case .euclidean: distance = (Swift.max(0, 2 + 2 * entry.value)).squareRoot()
            default: distance = entry.value
            }
            return Neighbor(id: ids[entry.index], distance: distance)
        }
    }

    // MARK: persistence

    private static let magic = Array("LKEXACT1".utf8)

    public func write(to url: URL) throws {
        var data = Data(Self.magic)
        lock.withLock {
            func append<T>(_ value: T) { withUnsafeBytes(of: value) { data.append(contentsOf: $0) } }
            append(UInt32(dimension).littleEndian)
            append(UInt32(precision == .float32 ? 32 : 16).littleEndian)
            append(UInt64(ids.count).littleEndian)
            ids.withUnsafeBytes { data.append(contentsOf: $0) }
            if precision == .float32 { rows32.withUnsafeBytes { data.append(contentsOf: $0) } }
            else { rows16.withUnsafeBytes { data.append(contentsOf: $0) } }
        }
        try data.write(to: url, options: .atomic)
    }

    public static func read(from url: URL) throws -> ExactIndex {
        let data = try Data(contentsOf: url)
        let header = magic.count + 16
        guard data.count >= header, Array(data.prefix(magic.count)) == magic else {
            throw IndexError("\(url.path): not an exact-index file")
        }
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            data.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        let dim = Int(load(magic.count, UInt32.self))
        let bits = load(magic.count + 4, UInt32.self)
        let n = Int(load(magic.count + 8, UInt64.self))
        let elem = bits == 32 ? 4 : 2
        guard bits == 32 || bits == 16, dim > 0, data.count == header + n * 8 + n * dim * elem else {
            throw IndexError("\(url.path): exact-index file is truncated or corrupt")
        }
        let index = ExactIndex(dimension: dim, precision: bits == 32 ? .float32 : .float16)
        let idData = data.subdata(in: header..<header + n * 8)
        let ids = idData.withUnsafeBytes { raw in (0..<n).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
        let body = data.subdata(in: header + n * 8..<data.count)
        var vectors = [Float](repeating: 0, count: n * dim)
        if bits == 32 {
            _ = vectors.withUnsafeMutableBytes { body.copyBytes(to: $0) }
        } else {
            var halves = [UInt16](repeating: 0, count: n * dim)
            _ = halves.withUnsafeMutableBytes { body.copyBytes(to: $0) }
            halves.withUnsafeBufferPointer { s in
                vectors.withUnsafeMutableBufferPointer { d in
                    if let sp = s.baseAddress, let dp = d.baseAddress { lk_f16_to_f32(sp, dp, n * dim) }
                }
            }
        }
        try index.add(ids: ids, vectors: vectors)
        return index
    }
}

/// Wraps values that are safe to share for the duration of a parallel loop (pointers into
/// buffers that are not mutated while the loop runs).
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
