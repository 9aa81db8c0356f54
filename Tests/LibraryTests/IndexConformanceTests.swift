// The conformance suite every registered index method runs (IndexFactory.conformanceCases): add,
// search against brute force, batched search equal to single queries, exclusion and filters,
// removal, reconstruct, persistence through `readIndex` (tag dispatch), and refusal of corrupt,
// truncated and foreign files. Seeded data, so a failure reproduces. A new method gets all of this
// by registering its examples.
import Foundation
import Testing
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch

@Suite struct IndexConformanceTests {
    static let d = 48, n = 3000

    /// Brute-force cosine top-k ids (ties by id).
    static func truth(_ data: [Float], ids: [Int64], query: ArraySlice<Float>, k: Int, skip: Set<Int64> = []) -> [Int64] {
        var scored: [(Int64, Float)] = []
        let q = Array(query)
        for r in 0..<ids.count where !skip.contains(ids[r]) {
            var dot: Float = 0
            for i in 0..<d { dot += q[i] * data[r * d + i] }
            scored.append((ids[r], 1 - dot))
        }
        scored.sort { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
        return scored.prefix(k).map(\.0)
    }

    @Test(arguments: IndexFactory.conformanceCases.map(\.descriptor))
    func methodConforms(_ descriptorText: String) throws {
        let minimumRecall = try #require(IndexFactory.conformanceCases.first { $0.descriptor == descriptorText }?.minimumRecallAt10)
        let d = Self.d, n = Self.n
        // Clustered data (like embeddings of photo classes): centres plus noise, renormalised.
        let centres = Synthetic.unitVectors(40, dimension: d, seed: 11)
        var rng = SeededGenerator(seed: 12)
        var data = [Float](repeating: 0, count: n * d)
        for r in 0..<n {
            let c = Int(rng.next() % 40)
            var norm: Float = 0
            for i in 0..<d {
                data[r * d + i] = centres[c * d + i] + Float.random(in: -0.15...0.15, using: &rng)
                norm += data[r * d + i] * data[r * d + i]
            }
            for i in 0..<d { data[r * d + i] /= norm.squareRoot() }
        }
        let ids = (0..<Int64(n)).map { $0 * 7 + 3 }
        let queries = Array(data[0..<(20 * d)]).enumerated().map { $0.element + (($0.offset % 5 == 0) ? 0.01 : 0) }

        let store = VectorStore(dimension: d)
        try store.add(ids: ids, vectors: data)
        let index = try IndexFactory.make(descriptorText, dimension: d, store: store)
        #expect(index.descriptor.description == (try IndexDescriptor(parsing: descriptorText)).description)
        if !index.isTrained { try index.train(data) }
        #expect(index.isTrained)
        try index.add(ids: ids, vectors: data)
        #expect(index.count == n)

        // Recall@10 against brute force, single and batched queries alike.
        let batched = try index.search(batch: queries, k: 10, parameters: SearchParameters())
        #expect(batched.count == 20)
        var hits = 0
        for qi in 0..<20 {
            let q = queries[qi * d..<(qi + 1) * d]
            let expected = Self.truth(data, ids: ids, query: q, k: 10)
            let single = try index.search(Array(q), k: 10)
            #expect(single.map(\.id) == batched[qi].map(\.id))
            #expect(single.map(\.distance) == single.map(\.distance).sorted())
            hits += Set(single.map(\.id)).intersection(expected).count
        }
        let recall = Double(hits) / 200
        #expect(recall >= minimumRecall, "\(descriptorText): recall@10 \(recall) < \(minimumRecall)")

        // Exclusion and filters are honoured.
        let q0 = Array(queries[0..<d])
        let top = try index.search(q0, k: 5)
        let without = try index.search(q0, k: 5, parameters: SearchParameters(excluding: [top[0].id]))
        #expect(!without.contains { $0.id == top[0].id })
        let evenOnly = try index.search(q0, k: 5, parameters: SearchParameters(filter: { $0 % 2 == 0 }))
        #expect(!evenOnly.isEmpty && evenOnly.allSatisfy { $0.id % 2 == 0 })

        // Every metric answers (natively or by re-ranking), nearest first.
        for metric in Metric.allCases {
            let r = try index.search(q0, k: 5, parameters: SearchParameters(metric: metric))
            #expect(r.count == 5, "\(descriptorText) \(metric)")
            #expect(r.map(\.distance) == r.map(\.distance).sorted())
        }

        // Reconstruct gives the stored vector back.
        let back = try #require(index.reconstruct(ids[5]))
        let error = zip(back, data[5 * d..<6 * d]).map { abs($0 - $1) }.max() ?? 1
        #expect(error < 2e-3)
        #expect(index.reconstruct(-1) == nil)

        // Removal: gone from results and from the count.
        let gone = Set(top.prefix(2).map(\.id))
        #expect(index.remove(ids: gone) == 2)
        #expect(index.count == n - 2)
        let after = try index.search(q0, k: 10)
        #expect(after.allSatisfy { !gone.contains($0.id) })

        // Persistence: readIndex dispatches on the tag and answers the same.
        let dir = try Fixture.tempDir()
        let file = dir.appendingPathComponent("index.lkix")
        try index.write(to: file, origin: FileOrigin(catalogue: nil, counter: 42))
        let restored = try readIndex(url: file, store: store)
        #expect(restored.descriptor == index.descriptor)
        #expect(restored.count == index.count)
        #expect(try restored.search(q0, k: 10).map(\.id) == after.map(\.id))

        // Corrupt, truncated and foreign files are refused.
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: file)
        #expect(throws: IndexError.self) { _ = try readIndex(url: file, store: store) }
        try index.write(to: file, origin: FileOrigin(catalogue: nil, counter: 42))
        let whole = try Data(contentsOf: file)
        try whole.prefix(whole.count - 100).write(to: file)
        #expect(throws: IndexError.self) { _ = try readIndex(url: file, store: store) }
        try Data("not an index at all, just text".utf8).write(to: file)
        #expect(throws: IndexError.self) { _ = try readIndex(url: file, store: store) }
    }

    @Test func descriptorsParseAndRejectNonsense() throws {
        let plain = try IndexDescriptor(parsing: "exact:f16")
        #expect(plain.method == "exact" && plain.options == ["f16"] && plain.metric == .cosine)
        let chi = try IndexDescriptor(parsing: "exact,metric=chi2")
        #expect(chi.metric == .chi2 && chi.description == "exact,metric=chi2")
        #expect(throws: IndexError.self) { _ = try IndexDescriptor(parsing: "exact,metric=nope") }
        #expect(throws: IndexError.self) { _ = try IndexDescriptor(parsing: "") }
        #expect(throws: IndexError.self) { _ = try IndexFactory.make("nosuchmethod", dimension: 8) }
        #expect(throws: IndexError.self) { _ = try IndexFactory.make("exact:f8", dimension: 8) }
    }
}
