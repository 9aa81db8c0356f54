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
    private var mapping: MappedFile?
    private var mappedRows: UnsafePointer<Float>?
    private var mappedCount = 0
    /// The mapped file opened for reading (offset of row 0): `rank` reads candidate rows with
    /// pread instead of touching the mapping. A coarse method re-ranks a few hundred scattered
    /// rows per query; through the mapping, each read faults in the 64 KB around it (fault-around,
    /// which MADV_RANDOM does not turn off) and that stays in the process's RSS (4 GB after 200
    /// queries at 1M images); pread copies just the row, and the page cache stays the kernel's.
    private var rowFile: Int32 = -1
    private var rowFileOffset = 0
    /// Rows added in memory (positions mappedCount...).
    private var owned: RowBuffer
    private var ids: [Int64] = []
    private var positions: [Int64: Int] = [:]
    private var dead: [Bool] = []
    private var deadCount = 0
    /// 1 / sum(positive values) per position, for chi-square; computed on first use.
    private let chiScales = Locked<[Float]>([])
    /// The bfloat16 copy of the rows that batched scans screen with (see `screenedSearch`): made on
    /// the first batched scan, extended as rows are added, dropped by compaction.
    private let screening = Locked<[ScreeningRows]>([])
    /// Bumped when compaction moves rows (screened candidates name rows by position).
    private var generation = 0

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
    private func compactLocked() {
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
    private func rowPointerLocked(_ p: Int) -> UnsafeRawPointer? {
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

    private static func floats(_ row: UnsafeRawPointer, count: Int, precision: StoragePrecision) -> [Float] {
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

    // MARK: search

    /// Segments of rows as the scan kernels see them.
    private struct Segment {
        let start: Int
        let count: Int
        let f32: UnsafePointer<Float>?
        let f16: UnsafePointer<UInt16>?
    }

    private func segmentsLocked() -> [Segment] {
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

    // MARK: screened batched scans

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
    private func screeningRowsLocked() -> [ScreeningRows] {
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

    /// Exact distances (or their monotonic stand-ins, see `distance(standIn:)`) of one query to a
    /// segment's rows, split across the cores for large segments.
    private static func distances(_ q: UnsafePointer<Float>, d: Int, metric: Metric, segment: Segment,
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
    private func chiScalesLocked() -> [Float] {
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
    private func rankByDot(_ query: [Float], candidates: [Int64], k: Int, metric: Metric,
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
    private static func dots(_ query: [Float], rows: [UnsafePointer<Float>?], dimension d: Int) -> [Float] {
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

    // MARK: persistence

    /// Writes the live rows: ids, then rows in the store's precision (payload of an `IndexFile`).
    package func write(to url: URL, tag: String, origin: FileOrigin, model: String? = nil, variant: String? = nil,
               fields: [String: String] = [:]) throws {
        try lock.read {
            let live = ids.indices.filter { !dead[$0] }
            let idBytes = (live.count * 8 + IndexFile.alignment - 1) / IndexFile.alignment * IndexFile.alignment
            var allFields = fields
            allFields["precision"] = precision.rawValue
            let header = IndexFileHeader(dimension: dimension, count: live.count, origin: origin,
                                         model: model, variant: variant,
                                         payloadBytes: idBytes + live.count * dimension * precision.bytesPerValue,
                                         fields: allFields)
            try IndexFile.write(to: url, tag: tag, header: header) { writer in
                var idData = Data(capacity: idBytes)
                for p in live { withUnsafeBytes(of: ids[p].littleEndian) { idData.append(contentsOf: $0) } }
                idData.append(contentsOf: [UInt8](repeating: 0, count: idBytes - idData.count))
                try writer.append(idData)
                // Runs of consecutive live rows in one segment are written in one piece.
                var i = 0
                while i < live.count {
                    let p = live[i]
                    var j = i + 1
                    let inMapped = p < mappedCount
                    while j < live.count && live[j] == live[j - 1] + 1 && (live[j] < mappedCount) == inMapped { j += 1 }
                    guard let row = rowPointerLocked(p) else { break }
                    let rows = j - i
                    if inMapped && precision == .float16 {
                        var halves = [UInt16](repeating: 0, count: rows * dimension)
                        halves.withUnsafeMutableBufferPointer { h in
                            if let hp = h.baseAddress { lk_f32_to_f16(row.assumingMemoryBound(to: Float.self), hp, rows * dimension) }
                        }
                        try writer.append(array: halves)
                    } else {
                        try writer.append(UnsafeRawBufferPointer(start: row, count: rows * owned.bytesPerRow))
                    }
                    i = j
                }
            }
        }
    }

    /// A store over a verified file's payload: Float32 rows are used in place from the mapping.
    package static func load(_ contents: IndexFile.Contents, precision wanted: StoragePrecision? = nil) throws -> VectorStore {
        let h = contents.header
        guard let stored = StoragePrecision(rawValue: h.fields["precision"] ?? "") else {
            throw IndexError("\(contents.mapping.path): no storage precision in the header")
        }
        let precision = wanted ?? stored
        let idBytes = (h.count * 8 + IndexFile.alignment - 1) / IndexFile.alignment * IndexFile.alignment
        guard h.dimension > 0, h.count >= 0, h.payloadBytes == idBytes + h.count * h.dimension * stored.bytesPerValue else {
            throw IndexError("\(contents.mapping.path): payload size does not match \(h.count) rows of \(h.dimension)")
        }
        let store = VectorStore(dimension: h.dimension, precision: precision)
        let payload = contents.payload
        guard let base = payload.baseAddress else { return store }
        let fileIds = (0..<h.count).map { Int64(littleEndian: payload.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        let rows = base + idBytes
        store.lock.write {
            if stored == .float32 && precision == .float32 {
                store.mapping = contents.mapping
                store.mappedRows = rows.assumingMemoryBound(to: Float.self)
                store.mappedCount = h.count
                if let start = contents.mapping.bytes.baseAddress {
                    store.rowFile = open(contents.mapping.path, O_RDONLY | O_CLOEXEC)
                    store.rowFileOffset = start.distance(to: UnsafeRawPointer(rows))
                }
            } else if stored == precision {
                store.owned.append(rows, count: h.count)
            } else if let out = store.owned.appendUninitialised(count: h.count) {
                let values = h.count * h.dimension
                if stored == .float32 {
                    lk_f32_to_f16(rows.assumingMemoryBound(to: Float.self), out.assumingMemoryBound(to: UInt16.self), values)
                } else {
                    lk_f16_to_f32(rows.assumingMemoryBound(to: UInt16.self), out.assumingMemoryBound(to: Float.self), values)
                }
            }
            store.ids = fileIds
            store.positions.reserveCapacity(h.count)
            for (p, id) in fileIds.enumerated() { store.positions[id] = p }
            store.dead = [Bool](repeating: false, count: h.count)
        }
        guard store.positions.count == h.count else {
            throw IndexError("\(contents.mapping.path): duplicate ids in the file")
        }
        return store
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

/// The k smallest (value, position) pairs seen so far; ties broken by position.
struct BoundedHeap {
    let k: Int
    private var heap = Heap<HeapEntry>()

    init(k: Int) {
        self.k = k
        heap.reserveCapacity(k + 1)
    }

    /// Offers a candidate; `skip` is asked only for candidates that would enter the heap.
    @inline(__always)
    mutating func offer(_ value: Float, _ index: Int, skip: (Int) -> Bool) {
        if value.isNaN || k <= 0 { return }
        let entry = HeapEntry(distance: value, index: index)
        if heap.count == k, let worst = heap.max, !(entry < worst) { return }
        if skip(index) { return }
        heap.insert(entry)
        if heap.count > k { _ = heap.popMax() }
    }

    /// The entries, nearest first.
    func sorted() -> [HeapEntry] {
        var copy = heap
        var out: [HeapEntry] = []
        out.reserveCapacity(copy.count)
        while let e = copy.popMin() { out.append(e) }
        return out
    }
}
