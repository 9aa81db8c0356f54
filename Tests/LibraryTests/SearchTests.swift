// Search on a real library of the sample photos, the exact index against a brute-force reference
// for every metric and both precisions, persistence, top-K, dedupe and export.
import Foundation
import LookalikeEngine
import Testing
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch

@Suite(.serialized) struct SearchTests {
    static func sampleLibrary() throws -> Catalogue {
        let dir = try Fixture.tempDir("sampleLibrary")
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        _ = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [Fixture.samples.path])
        return catalogue
    }

    @Test func queriesFromOutsideTheLibraryFindTheirClass() async throws {
        let catalogue = try Self.sampleLibrary()
        let service = try SearchService(catalogue: catalogue)
        #expect(service.library.count == 36)
        var chebyshevHits = 0
        for c in Fixture.classes {
            let query = Fixture.queries.appendingPathComponent("\(c)_0010.jpg").path
            let vector = try await Fixture.embedder().embed(path: query).1.vector
            for metric in Metric.allCases {
                let results = try await service.search(vector: vector, k: 3, metric: metric)
                #expect(results.count == 3)
                #expect(results.map { $0.distance } == results.map { $0.distance }.sorted())
                #expect(results.allSatisfy { $0.score > 0 && $0.score <= 1 })
                if metric == .chebyshev {
                    // The largest single-coordinate difference is a weak metric for embeddings
                    // (kept because users compare metrics): it only has to be right most of the time.
                    if results.first?.label == c { chebyshevHits += 1 }
                } else {
                    #expect(results.map { $0.label } == [c, c, c], "\(metric) for \(c): \(results.map { $0.path })")
                }
            }
        }
        #expect(chebyshevHits >= 4)
    }

    @Test func libraryQueryExcludesItselfUnlessAsked() async throws {
        let catalogue = try Self.sampleLibrary()
        let service = try SearchService(catalogue: catalogue)
        let path = Fixture.samples.appendingPathComponent("butterfly/image_0002.jpg").path
        let without = try await service.search(path: path, k: 5, metric: .cosine)
        #expect(!without.contains { $0.path.hasSuffix("butterfly/image_0002.jpg") })
        let with = try await service.search(path: path, k: 5, metric: .cosine, includeSelf: true)
        #expect(with.first?.path.hasSuffix("butterfly/image_0002.jpg") == true)
        #expect(abs((with.first?.score ?? 0) - 1) < 1e-4)
        #expect(Array(with.dropFirst().map(\.id)) == Array(without.prefix(4).map(\.id)))
    }

    @Test func exactIndexMatchesBruteForceForEveryMetric() throws {
        let d = 64, n = 5000
        let data = Synthetic.unitVectors(n, dimension: d, seed: 1), queries = Synthetic.unitVectors(10, dimension: d, seed: 2)
        let ids = (0..<Int64(n)).map { $0 * 3 + 1 }
        let f32 = ExactIndex(dimension: d), f16 = ExactIndex(dimension: d, precision: .float16)
        try f32.add(ids: ids, vectors: data)
        try f16.add(ids: ids, vectors: data)
        func reference(_ q: ArraySlice<Float>, _ x: ArraySlice<Float>, _ metric: Metric) -> Float {
            let a = Array(q), b = Array(x)
            switch metric {
            case .cosine: return 1 - zip(a, b).map(*).reduce(0, +)
            case .euclidean: return zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            case .manhattan: return zip(a, b).map { abs($0 - $1) }.reduce(0, +)
            case .chebyshev: return zip(a, b).map { abs($0 - $1) }.max() ?? 0
            case .chi2:
                let sa = a.reduce(0, +), sb = b.reduce(0, +)
                return 0.5 * zip(a, b).map { x, y in
                    let p = x / sa, q = y / sb
                    return p + q > 0 ? (p - q) * (p - q) / (p + q) : 0
                }.reduce(0, +)
            }
        }
        var f16Hits = 0, f16Total = 0
        for qi in 0..<10 {
            let q = Array(queries[qi * d..<(qi + 1) * d])
            for metric in Metric.allCases {
                var scored: [(Int64, Float)] = []
                for r in 0..<n { scored.append((ids[r], reference(q[...], data[r * d..<(r + 1) * d], metric))) }
                scored.sort { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
                let expected = Array(scored.prefix(10))
                let expectedIds: [Int64] = expected.map { $0.0 }
                let got = try f32.search(q, k: 10, metric: metric, excluding: [])
                #expect(got.map { $0.id } == expectedIds, "\(metric)")
                for (g, e) in zip(got, expected) { #expect(abs(g.distance - e.1) < 1e-4) }
                let half = try f16.search(q, k: 10, metric: metric, excluding: [])
                f16Hits += Set(half.map { $0.id }).intersection(expectedIds).count
                f16Total += 10
                // Exclusion skips ids without changing the rest of the order.
                let skipped = try f32.search(q, k: 9, metric: metric, excluding: [expectedIds[0]])
                #expect(skipped.map { $0.id } == Array(expectedIds.dropFirst()))
            }
        }
        #expect(Double(f16Hits) / Double(f16Total) >= 0.98)
        #expect(f16.vectorBytes * 2 == f32.vectorBytes)

        // Removal and persistence.
        let gone = Set(ids.prefix(100))
        f32.remove(ids: gone)
        #expect(f32.count == n - 100)
        let q = Array(queries[0..<d])
        let before = try f32.search(q, k: 10, metric: .cosine, excluding: [])
        #expect(before.allSatisfy { !gone.contains($0.id) })
        let file = try Fixture.tempDir().appendingPathComponent("exact.idx")
        try f32.write(to: file)
        let restored = try readIndex(url: file)
        #expect(try restored.search(q, k: 10, metric: .cosine, excluding: []) == before)
        try Data("not an index".utf8).write(to: file)
        #expect(throws: IndexError.self) { _ = try readIndex(url: file) }
    }

    @Test func topKSelectsTheSmallestInOrder() {
        let values: [Float] = [5, 3, .nan, 9, 1, 3, 7, 0, 2]
        func smallest(_ k: Int, skip: (Int) -> Bool = { _ in false }) -> [Int] {
            var heap = BoundedHeap(k: k)
            for (i, v) in values.enumerated() { heap.offer(v, i, skip: skip) }
            return heap.sorted().map(\.index)
        }
        // NaN never enters; ties (the two 3s) go to the lower position.
        #expect(smallest(4) == [7, 4, 8, 1])
        #expect(smallest(2, skip: { $0 == 7 }) == [4, 8])
        #expect(smallest(0).isEmpty && smallest(20).count == 8)
    }

    @Test func dedupeFindsExactAndNearDuplicatesOnly() throws {
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        try Fixture.copySamples(to: folder, classes: ["Motorbikes", "sunflower"])
        let original = Fixture.samples.appendingPathComponent("sunflower/image_0003.jpg")
        try FileManager.default.copyItem(at: original, to: folder.appendingPathComponent("copy-of-sunflower.jpg"))
        // A near-duplicate: the same photo with a trailer (distinct bytes, same pixels).
        var bytes = try Data(contentsOf: Fixture.samples.appendingPathComponent("Motorbikes/image_0004.jpg"))
        bytes.append(contentsOf: Array("trailer".utf8))
        try bytes.write(to: folder.appendingPathComponent("moto-variant.jpg"))
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        _ = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [folder.path])
        let groups = try Deduplicator.groups(catalogue: catalogue)
        let exact = groups.filter { $0.kind == "exact" }
        let near = groups.filter { $0.kind == "near" }
        #expect(exact.count == 1)
        #expect(exact.first.map { Set($0.paths.map { URL(fileURLWithPath: $0).lastPathComponent }) } == ["image_0003.jpg", "copy-of-sunflower.jpg"])
        #expect(near.count == 1)
        #expect(near.first.map { Set($0.paths.map { URL(fileURLWithPath: $0).lastPathComponent }) } == ["image_0004.jpg", "moto-variant.jpg"])
    }

    @Test func exportWritesNumpyReadableFiles() throws {
        let catalogue = try Self.sampleLibrary()
        let out = try Fixture.tempDir().appendingPathComponent("export")
        let rows = try NpyExporter.export(catalogue: catalogue, to: out)
        #expect(rows == 36)
        let npy = try Data(contentsOf: out.appendingPathComponent("embeddings.npy"))
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        let header = String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self)
        #expect(header.contains("'descr': '<f4'") && header.contains("'shape': (36, 1280)"))
        #expect(npy.count == 10 + headerLength + 36 * 1280 * 4)
        let paths = try String(contentsOf: out.appendingPathComponent("paths.txt"), encoding: .utf8).split(separator: "\n")
        let labels = try String(contentsOf: out.appendingPathComponent("labels.txt"), encoding: .utf8).split(separator: "\n")
        #expect(paths.count == 36 && labels.count == 36)
        for (p, l) in zip(paths, labels) { #expect(URL(fileURLWithPath: String(p)).deletingLastPathComponent().lastPathComponent == l) }
        // Row 0 of the file is the stored vector of the first path.
        let firstId = try #require(try catalogue.imageId(path: String(paths[0])))
        let stored = try #require(try catalogue.vector(imageId: firstId))
        let fromFile = npy.withUnsafeBytes { raw in (0..<1280).map { raw.loadUnaligned(fromByteOffset: 10 + headerLength + $0 * 4, as: Float.self) } }
        #expect(fromFile == stored)
    }
}
