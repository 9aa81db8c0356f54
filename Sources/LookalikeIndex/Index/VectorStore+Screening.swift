// Screened batched scans: a bfloat16 first pass over every row keeps, for each query, only the rows
// that can still be in its exact top k; a float32 second pass ranks those (see `screen`).
import CBLAS
import CKernels
import Dispatch
import Foundation
import HeapModule
import LookalikeEngine

extension VectorStore {
    /// Scans of stores this large screen in bfloat16 first (smaller ones fit in cache and gain
    /// little).
    static let screeningMinimumRows = 2048
    /// The bf16 copy is half the float32 rows' size again; above this many bytes (about 400,000
    /// images of 1280 dimensions) a store is not copied and scans stay float32 (libraries that big
    /// are better served by `hnsw` or `hash` anyway).
    static let screeningMaximumBytes = 1 << 30
    static let screeningAvailable = lk_bf16_available() != 0
    /// Bound on |bf16 dot - float32 dot| per unit of |q| |x|: each factor rounded to nearest bf16
    /// errs by at most 2^-8 relatively, so a product by 2^-7 + 2^-16; plus the float32 sums of
    /// VDPBF16PS and of the exact kernel (under 1e-5 at these lengths), rounded up.
    static let screeningErrorBound: Float = 0.0079

    /// The bf16 rows covering every position, extending the copy with rows added since the last
    /// call. Caller holds `lock` (read): positions do not move meanwhile.
    func screeningRowsLocked() -> [ScreeningRows] {
        screening.withLock { chunks in
            let covered = chunks.last.map { $0.start + $0.count } ?? 0
            let total = ids.count
            if covered < total {
                chunks.append(ScreeningRows(start: covered, count: total - covered, dimension: dimension) { p in
                    rowPointerLocked(p)?.assumingMemoryBound(to: Float.self)
                })
            }
            return chunks
        }
    }

    /// The first half of an exact scan, nil where screening does not apply (a small store, Float16 rows, another metric, a filter, no AVX512-BF16): every row
    /// scored with bf16 products (half the bytes and half the instructions of float32), and for
    /// each query the rows that can still be in its exact top k. A row's bf16 score errs by at most
    /// e = bound * |q| * max|x|, so with T the k-th best bf16 score, every true top-k row scores
    /// at least T - 2e in bf16 (k rows score >= T in bf16, so >= T - e truly; a row below them
    /// truly is below T - e). The second half, `rankScreened`, ranks those candidates (a few
    /// hundred for k = 300 on 9,144 images) with float32 products; a server's batcher runs it on
    /// each caller's own task, so only this half is serialised.
    package func screen(_ queries: [Float], k: Int, metric: Metric, parameters: SearchParameters) -> [ScreenedCandidates]? {
        let d = dimension
        let m = queries.count / d
        guard m >= 1, k > 0, metric == .cosine || metric == .euclidean, !parameters.restricts, Self.screeningAvailable else { return nil }
        return lock.read { () -> [ScreenedCandidates]? in
            guard ids.count >= Self.screeningMinimumRows, ids.count * ScreeningRows.stride(dimension: d) * 2 <= Self.screeningMaximumBytes,
                  segmentsLocked().allSatisfy({ $0.f32 != nil }) else { return nil }
            // One query alone does not pay for making the copy (a float32 scan of Caltech-101 takes
            // less than converting it); it uses the copy once a batch has made it.
            if m == 1 {
                let covered = screening.withLock { $0.last.map { $0.start + $0.count } ?? 0 }
                guard covered > 0, covered * 10 >= ids.count * 9 else { return nil }
            }
            let chunks = screeningRowsLocked()
            guard let stride = chunks.first?.stride else { return nil }
            let maxNorm = chunks.map(\.maxNorm).max() ?? 0
            var q16 = [UInt16](repeating: 0, count: m * stride)
            var margins = [Float](repeating: 0, count: m)
            queries.withUnsafeBufferPointer { qb in
                q16.withUnsafeMutableBufferPointer { out in
                    guard let src = qb.baseAddress, let dst = out.baseAddress else { return }
                    for qi in 0..<m {
                        lk_f32_to_bf16(src + qi * d, dst + qi * stride, d)
                        let norm = (0..<d).reduce(Float(0)) { $0 + src[qi * d + $1] * src[qi * d + $1] }.squareRoot()
                        margins[qi] = 2 * Self.screeningErrorBound * norm * maxNorm
                    }
                }
            }
            // Per query: the k best bf16 scores so far (a min-heap: its minimum is the running T)
            // and the rows within the margin of the running T (see lk_screen_block).
            var heaps = [[Float]](repeating: [Float](repeating: 0, count: k), count: m)
            var heapCounts = [Int](repeating: 0, count: m)
            var positions = [[UInt32]](repeating: [], count: m)
            var values = [[Float]](repeating: [], count: m)
            let block = min(max(1024, (1 << 22) / m), chunks.map(\.count).max() ?? 1)
            var scores = [Float](repeating: 0, count: m * block)
            var outPositions = [UInt32](repeating: 0, count: block)
            var outScores = [Float](repeating: 0, count: block)
            dead.withUnsafeBufferPointer { deadBuffer in
                guard let deadRows = deadBuffer.baseAddress else { return }
                for chunk in chunks {
                    var r0 = 0
                    while r0 < chunk.count {
                        let b = min(block, chunk.count - r0)
                        scores.withUnsafeMutableBufferPointer { sb in
                            guard let sp = sb.baseAddress else { return }
                            q16.withUnsafeBufferPointer { qb in
                                guard let q = qb.baseAddress else { return }
                                lk_dot_many_bf16(q, m, chunk.rows + r0 * stride, b, stride, sp, b)
                            }
                            for qi in 0..<m {
                                let found = heaps[qi].withUnsafeMutableBufferPointer { heap in
                                    outPositions.withUnsafeMutableBufferPointer { op in
                                        outScores.withUnsafeMutableBufferPointer { os in
                                            lk_screen_block(sp + qi * b, b, chunk.start + r0, deadRows, k, margins[qi], heap.baseAddress,
                                                            &heapCounts[qi], op.baseAddress, os.baseAddress)
                                        }
                                    }
                                }
                                positions[qi].append(contentsOf: outPositions[0..<found])
                                values[qi].append(contentsOf: outScores[0..<found])
                            }
                        }
                        r0 += b
                    }
                }
            }
            return (0..<m).map { qi in
                // The final k-th largest (the heap's minimum) less the margin: every true top-k row.
                let floor = heapCounts[qi] == k ? heaps[qi][0] - margins[qi] : -.infinity
                let kept = zip(positions[qi], values[qi]).filter { $0.1 >= floor }.map(\.0)
                return ScreenedCandidates(query: Array(queries[qi * d..<(qi + 1) * d]), k: k, metric: metric,
                                          positions: kept, generation: generation)
            }
        }
    }

    /// The second half of a screened scan: the exact top k among the candidates, with float32
    /// products (in position order, the rows' order in memory, four at a time with prefetching).
    /// Rows removed since the screening are skipped; if a compaction moved every row meanwhile,
    /// the query is scanned again in float32.
    package func rankScreened(_ screened: ScreenedCandidates) -> [Neighbor] {
        let d = dimension
        let ranked: [Neighbor]? = lock.read { () -> [Neighbor]? in
            guard screened.generation == generation else { return nil }
            var rows: [UnsafePointer<Float>?] = []
            var positions: [Int] = []
            rows.reserveCapacity(screened.positions.count)
            positions.reserveCapacity(screened.positions.count)
            for p in screened.positions.sorted().map(Int.init) where p < ids.count && !dead[p] {
                guard let row = rowPointerLocked(p) else { continue }
                rows.append(row.assumingMemoryBound(to: Float.self))
                positions.append(p)
            }
            let exact = Self.dots(screened.query, rows: rows, dimension: d)
            // A few hundred rows: sorted whole (nearest first, ties by position as BoundedHeap does).
            var order = zip(exact, positions).filter { !$0.0.isNaN }.map { (standIn: -$0.0, position: $0.1) }
            order.sort { $0.standIn < $1.standIn || ($0.standIn == $1.standIn && $0.position < $1.position) }
            return order.prefix(screened.k).map { Neighbor(id: ids[$0.position], distance: Self.distance(standIn: $0.standIn, metric: screened.metric)) }
        }
        if let ranked { return ranked }
        return search(screened.query, k: screened.k, metric: screened.metric, parameters: SearchParameters(metric: screened.metric)).first ?? []
    }
}
