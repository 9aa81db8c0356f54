// The batched inner-product kernel the exact index uses for small batches, against a plain
// double-precision sum, at every block shape and tail (rows and queries not multiples of 4,
// dimensions not multiples of 16), and the exact index's batched search against one query at a time
// for every batch size around the switch between the kernel and sgemm.
import CKernels
import Foundation
import LookalikeEngine
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch
import Testing

@Suite struct KernelTests {
    /// A store opened from its file re-ranks candidates by reading their rows from the file
    /// (pread): the same neighbours and distances as the same rows in memory, for every candidate
    /// list, including removed, unknown and repeated ids.
    @Test func candidateRowsReadFromTheFileRankLikeRowsInMemory() throws {
        let d = 37, n = 300
        var generator = SystemRandomNumberGenerator()
        var rows: [Float] = []
        for _ in 0..<n {
            var v = (0..<d).map { _ in Float.random(in: -1...1, using: &generator) }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            v = v.map { $0 / norm }
            rows += v
        }
        let ids = (0..<Int64(n)).map { $0 * 3 + 7 }
        let memory = VectorStore(dimension: d)
        try memory.add(ids: ids, vectors: rows)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kernel-rows-\(UUID().uuidString).lkix")
        defer { try? FileManager.default.removeItem(at: url) }
        try memory.write(to: url, tag: "vectors", origin: .detached)
        let file = try VectorStore.load(try IndexFile.read(url, catalogue: nil))
        _ = memory.remove(ids: [ids[5]])
        _ = file.remove(ids: [ids[5]])
        for trial in 0..<20 {
            let query = Array(rows[(trial * d)..<((trial + 1) * d)])
            var candidates = (0..<120).map { _ in ids[Int.random(in: 0..<n, using: &generator)] }
            candidates += [ids[5], 1, candidates[0]]
            for metric in [Metric.cosine, .euclidean] {
                let a = memory.rank(query, candidates: candidates, k: 15, metric: metric)
                let b = file.rank(query, candidates: candidates, k: 15, metric: metric)
                #expect(a.map(\.id) == b.map(\.id) && !b.contains { $0.id == ids[5] })
                #expect(zip(a, b).allSatisfy { abs($0.distance - $1.distance) < 1e-6 })
            }
        }
    }

    @Test func dotManyMatchesPlainSumsForEveryShape() {
        var rng = SplitMix64(seed: 7)
        for dim in [3, 16, 17, 37, 1280] {
            for rows in [1, 3, 4, 5, 13] {
                for m in 1...9 {
                    let x = (0..<rows * dim).map { _ in Float.random(in: -0.5..<0.5, using: &rng) }
                    let q = (0..<m * dim).map { _ in Float.random(in: -0.5..<0.5, using: &rng) }
                    let ldo = rows + 2
                    var out = [Float](repeating: .nan, count: m * ldo)
                    lk_dot_many_f32(q, m, x, rows, dim, -1, &out, ldo)
                    for j in 0..<m {
                        for r in 0..<rows {
                            var expected = 0.0
                            for k in 0..<dim { expected += Double(q[j * dim + k]) * Double(x[r * dim + k]) }
                            #expect(abs(Double(out[j * ldo + r]) + expected) < 1e-4 * Double(dim), "dim \(dim) rows \(rows) m \(m) (\(j), \(r))")
                        }
                        // Columns past `rows` in each output row are left alone.
                        #expect(out[j * ldo + rows].isNaN && out[j * ldo + rows + 1].isNaN)
                    }
                }
            }
        }
    }

    @Test func batchedExactSearchEqualsSingleAroundTheKernelSwitch() throws {
        let d = 64
        let n = 1_001
        let vectors = Synthetic.unitVectors(n, dimension: d, seed: 11)
        let index = ExactIndex(dimension: d)
        try index.add(ids: (0..<Int64(n)).map { $0 * 3 }, vectors: vectors)
        for m in [2, 5, 15, 16, 17, 40] {
            let queries = Synthetic.unitVectors(m, dimension: d, seed: UInt64(100 + m))
            for metric in [Metric.cosine, .euclidean] {
                let parameters = SearchParameters(metric: metric)
                let batched = try index.search(batch: queries, k: 7, parameters: parameters)
                for j in 0..<m {
                    let single = try index.search(Array(queries[j * d..<(j + 1) * d]), k: 7, parameters: parameters)
                    #expect(batched[j].map(\.id) == single.map(\.id), "m \(m) query \(j) \(metric)")
                    #expect(zip(batched[j], single).allSatisfy { abs($0.distance - $1.distance) < 1e-4 })
                }
            }
        }
    }

    @Test(.enabled(if: VectorStore.screeningAvailable, "this CPU has no AVX512-BF16 (the store then never screens)"))
    func bf16KernelStaysWithinItsErrorBound() throws {
        var rng = SplitMix64(seed: 9)
        for dim in [32, 96, 1280] {
            for (rows, m) in [(1, 1), (5, 3), (9, 6), (4, 4)] {
                let x = (0..<rows * dim).map { _ in Float.random(in: -1..<1, using: &rng) }
                let q = (0..<m * dim).map { _ in Float.random(in: -1..<1, using: &rng) }
                var x16 = [UInt16](repeating: 0, count: x.count)
                var q16 = [UInt16](repeating: 0, count: q.count)
                lk_f32_to_bf16(x, &x16, x.count)
                lk_f32_to_bf16(q, &q16, q.count)
                var out = [Float](repeating: .nan, count: m * rows)
                lk_dot_many_bf16(q16, m, x16, rows, dim, &out, rows)
                for j in 0..<m {
                    for r in 0..<rows {
                        var exact = 0.0, qn = 0.0, xn = 0.0
                        for k in 0..<dim {
                            exact += Double(q[j * dim + k]) * Double(x[r * dim + k])
                            qn += Double(q[j * dim + k] * q[j * dim + k])
                            xn += Double(x[r * dim + k] * x[r * dim + k])
                        }
                        let bound = Double(VectorStore.screeningErrorBound) * qn.squareRoot() * xn.squareRoot()
                        #expect(abs(Double(out[j * rows + r]) - exact) <= bound, "dim \(dim) (\(j), \(r))")
                    }
                }
            }
        }
    }

    /// Batched scans of a large store screen in bfloat16 and re-rank exactly: every answer must be
    /// the exact top k (up to float32 rounding), for k from 1 to 300, on clustered vectors (many
    /// near ties at the boundary), a dimension that is not a multiple of 32, rows added after the
    /// screening copy was made, removed rows, and after compaction moved every row.
    @Test func screenedBatchedSearchIsExact() throws {
        let d = 100
        var rng = SplitMix64(seed: 21)
        func clustered(_ count: Int) -> [Float] {
            let centres = Synthetic.unitVectors(12, dimension: d, seed: rng.next())
            var v = [Float](repeating: 0, count: count * d)
            for r in 0..<count {
                let c = Int(rng.next() % 12)
                var norm: Float = 0
                for i in 0..<d {
                    let value = centres[c * d + i] + Float.random(in: -0.04...0.04, using: &rng)
                    v[r * d + i] = r % 7 == 0 ? value : max(0, value)  // a few rows with negative values
                    norm += v[r * d + i] * v[r * d + i]
                }
                for i in 0..<d { v[r * d + i] /= norm.squareRoot() }
            }
            return v
        }
        let index = ExactIndex(dimension: d)
        var live: [Int64: [Float]] = [:]
        func add(_ ids: [Int64]) throws {
            let vectors = clustered(ids.count)
            try index.add(ids: ids, vectors: vectors)
            for (i, id) in ids.enumerated() { live[id] = Array(vectors[i * d..<(i + 1) * d]) }
        }
        func check(_ stage: String) throws {
            let m = 6
            let queries = clustered(m)
            for k in [1, 10, 300] {
                let answers = try index.search(batch: queries, k: k, parameters: SearchParameters(metric: .cosine))
                for j in 0..<m {
                    let q = Array(queries[j * d..<(j + 1) * d])
                    var exact: [Int64: Double] = [:]
                    for (id, x) in live {
                        var dot = 0.0
                        for i in 0..<d { dot += Double(q[i]) * Double(x[i]) }
                        exact[id] = 1 - dot
                    }
                    let answer = answers[j]
                    #expect(answer.count == k, "\(stage) k \(k)")
                    guard let last = answer.last else { continue }
                    // Each distance is the true one, in order, and nothing closer was left out.
                    for neighbor in answer {
                        let truth = exact[neighbor.id] ?? .infinity
                        #expect(abs(Double(neighbor.distance) - truth) < 2e-5, "\(stage) k \(k)")
                    }
                    #expect(zip(answer, answer.dropFirst()).allSatisfy { $0.distance <= $1.distance }, "\(stage) k \(k)")
                    let returned = Set(answer.map(\.id))
                    let missed = exact.filter { $0.value < Double(last.distance) - 2e-5 && !returned.contains($0.key) }
                    #expect(missed.isEmpty, "\(stage) k \(k): \(missed.count) closer rows left out")
                }
            }
        }
        try add((0..<3_000).map { Int64($0) })
        try check("first")
        try add((3_000..<3_600).map { Int64($0) })  // after the screening copy was made
        index.remove(ids: Set((0..<400).map { Int64($0 * 5) }))
        for id in (0..<400).map({ Int64($0 * 5) }) { live[id] = nil }
        try check("added and removed")
        let gone = Set((0..<1_200).map { Int64($0 * 3 + 1) })
        index.remove(ids: gone)  // more than a quarter dead: compaction
        for id in gone { live[id] = nil }
        try check("compacted")
    }

    /// Through the server's batcher, a screened scan is split (the scan on the batch thread, each
    /// query's exact ranking on its caller's task): concurrent callers, with their own k and
    /// exclusions, get what a lone exact search gives them.
    @Test func batcherSplitsScreenedScansAndAnswersLikeALoneSearch() async throws {
        let d = 64
        let n = 3_000
        let index = ExactIndex(dimension: d)
        try index.add(ids: (0..<Int64(n)).map { $0 + 10 }, vectors: Synthetic.unitVectors(n, dimension: d, seed: 5))
        // The batcher searches the index it is given; the library only has to exist.
        let library = try LiveLibrary(catalogue: try SearchTests.sampleLibrary())
        let batcher = SearchBatcher(library: library, window: 0.02, concurrency: 1)
        let queries = Synthetic.unitVectors(12, dimension: d, seed: 6)
        let answers = try await withThrowingTaskGroup(of: (Int, [Neighbor]).self) { group in
            for j in 0..<12 {
                group.addTask {
                    var parameters = SearchParameters(metric: .cosine)
                    parameters.excluding = [Int64(10 + j * 7)]
                    let q = Array(queries[j * d..<(j + 1) * d])
                    return (j, try await batcher.search(q, k: 5 + j * 20, in: index, parameters: parameters))
                }
            }
            var out: [Int: [Neighbor]] = [:]
            for try await (j, neighbors) in group { out[j] = neighbors }
            return out
        }
        #expect(batcher.statistics.batches < 12)  // they did share scans
        for j in 0..<12 {
            var parameters = SearchParameters(metric: .cosine)
            parameters.excluding = [Int64(10 + j * 7)]
            let alone = try index.search(Array(queries[j * d..<(j + 1) * d]), k: 5 + j * 20, parameters: parameters)
            let got = answers[j] ?? []
            #expect(got.count == 5 + j * 20 && !got.contains { $0.id == Int64(10 + j * 7) })
            #expect(got.map(\.id) == alone.map(\.id), "query \(j)")
            #expect(zip(got, alone).allSatisfy { abs($0.distance - $1.distance) < 1e-5 })
        }
    }
}

