// Ranking given candidates exactly: the re-rank stage of the coarse methods and of re-ranking
// (`rank`), and inner products with chosen rows read in place (`dots`).
import CBLAS
import CKernels
import Dispatch
import Foundation
import HeapModule
import LookalikeEngine

extension VectorStore {
    /// Re-ranks candidate ids exactly against one query: the `k` nearest under `metric`.
    public func rank(_ query: [Float], candidates: [Int64], k: Int, metric: Metric,
                     parameters: SearchParameters = SearchParameters()) -> [Neighbor] {
        guard query.count == dimension, k > 0 else { return [] }
        if metric == .cosine || metric == .euclidean { return rankByDot(query, candidates: candidates, k: k, metric: metric, parameters: parameters) }
        return lock.read {
            var heap = BoundedHeap(k: k)
            var seen = Set<Int>()
            var out = [Float](repeating: 0, count: 1)
            let d = dimension
            query.withUnsafeBufferPointer { qb in
                guard let q = qb.baseAddress else { return }
                for id in candidates {
                    guard let p = positions[id], !dead[p], parameters.admits(id), seen.insert(p).inserted,
                          let row = rowPointerLocked(p) else { continue }
                    let isF32 = p < mappedCount || precision == .float32
                    var scale: [Float] = []
                    if metric == .chi2 {
                        let s = Self.floats(row, count: d, precision: isF32 ? .float32 : .float16).reduce(Float(0)) { $0 + Swift.max(0, $1) }
                        scale = [s > 0 ? 1 / s : 0]
                    }
                    let segment = isF32
                        ? Segment(start: 0, count: 1, f32: row.assumingMemoryBound(to: Float.self), f16: nil)
                        : Segment(start: 0, count: 1, f32: nil, f16: row.assumingMemoryBound(to: UInt16.self))
                    out.withUnsafeMutableBufferPointer { o in
                        scale.withUnsafeBufferPointer { sc in
                            if let op = o.baseAddress { Self.distances(q, d: d, metric: metric, segment: segment, scales: sc.baseAddress, out: op) }
                        }
                    }
                    heap.offer(out[0], p, skip: { _ in false })
                }
            }
            return heap.sorted().map { Neighbor(id: ids[$0.index], distance: Self.distance(standIn: $0.distance, metric: metric)) }
        }
    }

    /// `rank` for cosine and Euclidean: one dot product per candidate row, straight from the row
    /// (the re-rank stage of the coarse methods, so it must cost little more than reading the rows).
    func rankByDot(_ query: [Float], candidates: [Int64], k: Int, metric: Metric,
                           parameters: SearchParameters) -> [Neighbor] {
        lock.read {
            var heap = BoundedHeap(k: k)
            let d = dimension
            var seen = Set<Int>(minimumCapacity: candidates.count)
            let restricts = parameters.restricts
            query.withUnsafeBufferPointer { qb in
                guard let q = qb.baseAddress else { return }
                var value: Float = 0
                var scratch = [Float](repeating: 0, count: rowFile >= 0 ? d : 0)
                for id in candidates {
                    guard let p = positions[id], !dead[p], !restricts || parameters.admits(id),
                          let row = rowPointerLocked(p), seen.insert(p).inserted else { continue }
                    if p < mappedCount, rowFile >= 0, scratch.withUnsafeMutableBytes({ buffer in
                        pread(rowFile, buffer.baseAddress, d * 4, off_t(rowFileOffset + p * d * 4)) == d * 4
                    }) {
                        value = -scratch.withUnsafeBufferPointer { lk_dot_f32(q, $0.baseAddress, d) }
                    } else if p < mappedCount || precision == .float32 {
                        value = -lk_dot_f32(q, row.assumingMemoryBound(to: Float.self), d)
                    } else {
                        lk_dot_f16(q, row.assumingMemoryBound(to: UInt16.self), 1, d, &value)
                        value = -value
                    }
                    heap.offer(value, p, skip: { _ in false })
                }
            }
            return heap.sorted().map { Neighbor(id: ids[$0.index], distance: Self.distance(standIn: $0.distance, metric: metric)) }
        }
    }

    /// The inner products of `vector` with the stored vectors of `ids` (nil for an id not stored),
    /// read in place: a served answer scores its results this way, and copying each row out
    /// first (`reconstruct`) was a visible share of a loaded server's CPU.
    package func dots(_ vector: [Float], ids wanted: [Int64]) -> [Float?] {
        lock.read {
            var out = [Float?](repeating: nil, count: wanted.count)
            guard vector.count == dimension else { return out }
            var rows: [UnsafePointer<Float>?] = []
            var slots: [Int] = []
            for (i, id) in wanted.enumerated() {
                guard let p = positions[id], !dead[p], let row = rowPointerLocked(p) else { continue }
                if p < mappedCount || precision == .float32 {
                    rows.append(row.assumingMemoryBound(to: Float.self))
                    slots.append(i)
                } else {
                    out[i] = Self.dot(Self.floats(row, count: dimension, precision: precision), vector)
                }
            }
            for (slot, value) in zip(slots, Self.dots(vector, rows: rows, dimension: dimension)) { out[slot] = value }
            return out
        }
    }

    /// The inner products of `query` with float32 rows given by address (lk_dot_rows_f32: four rows
    /// at a time, the next ones prefetched).
    static func dots(_ query: [Float], rows: [UnsafePointer<Float>?], dimension d: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows.count)
        query.withUnsafeBufferPointer { qb in
            rows.withUnsafeBufferPointer { rb in
                out.withUnsafeMutableBufferPointer { ob in
                    guard let q = qb.baseAddress, let r = rb.baseAddress, let o = ob.baseAddress, qb.count == d else { return }
                    lk_dot_rows_f32(q, r, rb.count, d, o)
                }
            }
        }
        return out
    }

    /// The inner product of two vectors (over the shorter one), with the scans' SIMD kernel.
    package static func dot(_ a: [Float], _ b: [Float]) -> Float {
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in lk_dot_f32(pa.baseAddress, pb.baseAddress, min(a.count, b.count)) } }
    }

    /// Scans rank cosine and Euclidean by -dot (monotonic in both for unit vectors); this turns
    /// the stand-in back into the metric's distance.
    static func distance(standIn v: Float, metric: Metric) -> Float {
        switch metric {
        case .cosine: return 1 + v
        case .euclidean: return Swift.max(0, 2 + 2 * v).squareRoot()
        default: return v
        }
    }
}
