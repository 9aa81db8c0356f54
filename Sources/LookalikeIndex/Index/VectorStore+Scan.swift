// Exact scans of the store: every live row scored against each query (BLAS for cosine and
// Euclidean on Float32, the C kernels for the other metrics and Float16), top k by bounded heaps.
import CBLAS
import CKernels
import Dispatch
import Foundation
import HeapModule
import LookalikeEngine

extension VectorStore {
    /// Segments of rows as the scan kernels see them.
    struct Segment {
        let start: Int
        let count: Int
        let f32: UnsafePointer<Float>?
        let f16: UnsafePointer<UInt16>?
    }

    func segmentsLocked() -> [Segment] {
        var out: [Segment] = []
        if mappedCount > 0, let rows = mappedRows { out.append(Segment(start: 0, count: mappedCount, f32: rows, f16: nil)) }
        if owned.rows > 0, let base = owned.base {
            out.append(precision == .float32
                ? Segment(start: mappedCount, count: owned.rows, f32: UnsafePointer(base.assumingMemoryBound(to: Float.self)), f16: nil)
                : Segment(start: mappedCount, count: owned.rows, f32: nil, f16: UnsafePointer(base.assumingMemoryBound(to: UInt16.self))))
        }
        return out
    }

    /// Batches up to this size use `lk_dot_many_f32` instead of sgemm, which repacks every row
    /// per call (9,144 x 1280 rows, one thread, AVX-512 EPYC: 4.6 against 7.1 ms for 8 queries,
    /// 11.2 against 12.7 at 32, even at 64; a server's batcher gathers up to 64).
    package static let smallBatch = 64

    /// The `k` nearest live vectors to each of the `queries.count / dimension` queries.
    func search(_ queries: [Float], k: Int, metric: Metric, parameters: SearchParameters) -> [[Neighbor]] {
        let m = queries.count / dimension
        guard m > 0 else { return [] }
        if let screened = screen(queries, k: k, metric: metric, parameters: parameters) {
            return screened.map(rankScreened)
        }
        return lock.read {
            let n = ids.count
            guard n > 0, k > 0 else { return Array(repeating: [], count: m) }
            var heaps = (0..<m).map { _ in BoundedHeap(k: k) }
            let segments = segmentsLocked()
            let d = dimension
            let ids = self.ids
            let dead = self.dead
            let restricts = parameters.restricts
            let skip: (Int) -> Bool = { p in dead[p] || (restricts && !parameters.admits(ids[p])) }
            let float32 = segments.allSatisfy({ $0.f32 != nil }) && (metric == .cosine || metric == .euclidean)
            queries.withUnsafeBufferPointer { qBuffer in
                guard let q = qBuffer.baseAddress else { return }
                if float32 {
                    // Blocks sized so one block's scores for all queries stay within ~16 MB.
                    let block = m == 1 ? n : max(1024, (1 << 22) / m)
                    var scores = [Float](repeating: 0, count: m * min(block, n))
                    for segment in segments {
                        guard let x = segment.f32 else { continue }
                        var r0 = 0
                        while r0 < segment.count {
                            let b = min(block, segment.count - r0)
                            scores.withUnsafeMutableBufferPointer { s in
                                guard let sp = s.baseAddress else { return }
                                if m == 1 {
                                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(b), Int32(d), -1, x + r0 * d, Int32(d), q, 1, 0, sp, 1)
                                } else if m <= Self.smallBatch && d >= 64 {
                                    // Small batches: sgemm's repacking of the rows would cost more than the products.
                                    lk_dot_many_f32(q, m, x + r0 * d, b, d, -1, sp, b)
                                } else {
                                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(b), Int32(d),
                                                -1, q, Int32(d), x + r0 * d, Int32(d), 0, sp, Int32(b))
                                }
                                let first = segment.start + r0
                                heaps.withUnsafeMutableBufferPointer { h in
                                    let work = UnsafeSendable((h, UnsafePointer(sp)))
                                    let offer = { (qi: Int) in
                                        let (h, sp) = work.value
                                        let row = sp + qi * b
                                        for r in 0..<b { h[qi].offer(row[r], first + r, skip: skip) }
                                    }
                                    // Small blocks (a server's batches) are offered on this thread: waking
                                    // the other cores would cost more than the offers.
                                    if m * b < 1 << 18 { for qi in 0..<m { offer(qi) } } else {
                                        let box = UnsafeSendable(offer)
                                        DispatchQueue.concurrentPerform(iterations: m) { box.value($0) }
                                    }
                                }
                            }
                            r0 += b
                        }
                    }
                } else {
                    var values = [Float](repeating: 0, count: n)
                    let scales = metric == .chi2 ? chiScalesLocked() : []
                    for qi in 0..<m {
                        values.withUnsafeMutableBufferPointer { out in
                            guard let op = out.baseAddress else { return }
                            scales.withUnsafeBufferPointer { sc in
                                for segment in segments {
                                    Self.distances(q + qi * d, d: d, metric: metric, segment: segment,
                                                   scales: sc.baseAddress, out: op + segment.start)
                                }
                            }
                            for p in 0..<n { heaps[qi].offer(op[p], p, skip: skip) }
                        }
                    }
                }
            }
            return heaps.map { heap in heap.sorted().map { Neighbor(id: ids[$0.index], distance: Self.distance(standIn: $0.distance, metric: metric)) } }
        }
    }

    /// Exact distances (or their monotonic stand-ins, see `distance(standIn:)`) of one query to a
    /// segment's rows, split across the cores for large segments.
    static func distances(_ q: UnsafePointer<Float>, d: Int, metric: Metric, segment: Segment,
                                  scales: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        let n = segment.count
        let positiveSum = metric == .chi2 ? (0..<d).reduce(Float(0)) { $0 + Swift.max(0, q[$1]) } : 0
        let qScale: Float = positiveSum > 0 ? 1 / positiveSum : 0
        let chunks = n >= 4096 ? ProcessInfo.processInfo.activeProcessorCount : 1
        let per = (n + chunks - 1) / chunks
        let work = UnsafeSendable((q, out, segment.f32, segment.f16, scales.map { $0 + segment.start }))
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let (q, out, r32, r16, sc) = work.value
            let start = c * per, count = Swift.min(per, n - start)
            guard count > 0 else { return }
            let o = out + start
            switch metric {
            case .cosine, .euclidean:
                if let r32 {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(count), Int32(d), 1, r32 + start * d, Int32(d), q, 1, 0, o, 1)
                } else if let r16 { lk_dot_f16(q, r16 + start * d, count, d, o) }
                for i in 0..<count { o[i] = -o[i] }
            case .manhattan:
                if let r32 { lk_l1_f32(q, r32 + start * d, count, d, o) } else if let r16 { lk_l1_f16(q, r16 + start * d, count, d, o) }
            case .chebyshev:
                if let r32 { lk_linf_f32(q, r32 + start * d, count, d, o) } else if let r16 { lk_linf_f16(q, r16 + start * d, count, d, o) }
            case .chi2:
                guard let sc else { return }
                if let r32 { lk_chi2_f32(q, qScale, r32 + start * d, sc + start, count, d, o) }
                else if let r16 { lk_chi2_f16(q, qScale, r16 + start * d, sc + start, count, d, o) }
            }
        }
    }

    /// Chi-square row scales for every position (computed for the rows that lack one).
    func chiScalesLocked() -> [Float] {
        let n = ids.count
        return chiScales.withLock { scales in
            if scales.count > n { scales = [] }
            var p = scales.count
            while p < n {
                var s: Float = 0
                if let row = rowPointerLocked(p) {
                    for v in Self.floats(row, count: dimension, precision: p < mappedCount ? .float32 : precision) { s += Swift.max(0, v) }
                }
                scales.append(s > 0 ? 1 / s : 0)
                p += 1
            }
            return scales
        }
    }
}
