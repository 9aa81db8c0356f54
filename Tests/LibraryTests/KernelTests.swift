// The batched inner-product kernel the exact index uses for small batches, against a plain
// double-precision sum, at every block shape and tail (rows and queries not multiples of 4,
// dimensions not multiples of 16), and the exact index's batched search against one query at a time
// for every batch size around the switch between the kernel and sgemm.
import CKernels
import Foundation
import LookalikeEngine
@testable import LookalikeLibrary
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
        try memory.write(to: url, tag: "vectors", catalogueCounter: 0)
        let file = try VectorStore.load(try IndexFile.read(url))
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
}
