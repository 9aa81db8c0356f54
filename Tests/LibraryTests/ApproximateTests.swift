// The approximate methods (lsh, hash, hnsw): binary-code kernels at word boundaries, determinism
// of the trainers, each method's agreement with exact search (synthetic clusters and the sample
// library), images added after training and removed images through the live library and the
// index files, corrupt and stale files, and persistence round trips.
import CKernels
import Foundation
import Testing
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch

/// Clustered unit vectors (like embeddings: many images per object): `clusters` random centres,
/// each member = centre + Gaussian noise of `spread`, normalised.
enum Clustered {
    static func vectors(_ count: Int, dimension d: Int, clusters: Int, spread: Float, seed: UInt64) -> [Float] {
        var rng = TrainingRandom(seed: seed)
        let centres = (0..<clusters * d).map { _ in rng.normal() }
        var out = [Float](repeating: 0, count: count * d)
        for r in 0..<count {
            let c = Int(rng.next() % UInt64(clusters))
            var norm: Float = 0
            for i in 0..<d {
                let v = centres[c * d + i] / Float(d).squareRoot() + spread * rng.normal() / Float(d).squareRoot()
                out[r * d + i] = v
                norm += v * v
            }
            for i in 0..<d { out[r * d + i] /= norm.squareRoot() }
        }
        return out
    }
}

@Suite(.serialized) struct ApproximateTests {
    // MARK: kernels

    @Test func hammingDistanceIsRightAtWordBoundariesForEveryWidth() throws {
        var rng = TrainingRandom(seed: 7)
        for words in 1...5 {
            // 37 codes: the vector kernels handle 8 at a time, so the tail path runs too.
            let n = 37
            var codes = (0..<n * words).map { _ in rng.next() }
            // Codes that differ from zero only in the last bit of a word / the first of the next.
            codes[0..<words] = ArraySlice(repeating: 0, count: words)
            codes[words + words - 1] = 1 << 63
            if words > 1 { codes[2 * words + 1] = 1 }
            let query = [UInt64](repeating: 0, count: words)
            var out = [UInt16](repeating: 0, count: n)
            lk_hamming(query, codes, n, words, &out)
            for i in 0..<n {
                #expect(Int(out[i]) == hammingDistance(query[...], codes[(i * words)..<((i + 1) * words)]), "words \(words) code \(i)")
            }
            #expect(out[0] == 0)
            #expect(out[1] == UInt16(codes[words..<2 * words].reduce(0) { $0 + $1.nonzeroBitCount }))
            let q2 = (0..<words).map { _ in rng.next() }
            lk_hamming(q2, codes, n, words, &out)
            for i in 0..<n { #expect(Int(out[i]) == hammingDistance(q2[...], codes[(i * words)..<((i + 1) * words)])) }
        }
        #expect(["avx512-vpopcntdq", "popcnt", "portable"].contains(String(cString: lk_hamming_kernel())))
    }

    @Test func codesHaveExactlyBBitsForEveryB() throws {
        let d = 32
        var rng = TrainingRandom(seed: 3)
        let x = (0..<50 * d).map { _ in rng.normal() }
        for bits in 16...256 {
            let projection = (0..<d * bits).map { _ in rng.normal() }
            let encoder = try LinearHashEncoder(dimension: d, bits: bits, projection: projection, offset: [Float](repeating: 0, count: bits))
            let codes = encoder.encode(x)
            let values = encoder.project(x)
            #expect(codes.count == 50 * encoder.words)
            for r in [0, 49] {
                let code = codes[(r * encoder.words)..<((r + 1) * encoder.words)]
                // Bit j set exactly when pre-activation j >= 0; nothing beyond bit B.
                let set = (0..<bits).filter { values[r * bits + $0] >= 0 }.count
                #expect(code.reduce(0) { $0 + $1.nonzeroBitCount } == set, "B = \(bits)")
                if bits % 64 != 0, let last = code.last { #expect(last >> UInt64(bits % 64) == 0) }
            }
            // Hamming distance between two codes = number of sign disagreements.
            let disagree = (0..<bits).filter { (values[$0] >= 0) != (values[bits + $0] >= 0) }.count
            #expect(hammingDistance(codes[0..<encoder.words], codes[encoder.words..<2 * encoder.words]) == disagree)
        }
    }

    @Test func candidateSelectionByBestCAndByRadius() {
        let d: [UInt16] = [5, 1, 3, 1, 0xFFFF, 2, 5, 0, 3]
        var out = [UInt32](repeating: 0, count: 9)
        // Best 3: distances 0, 1, 1 (positions 7, 1, 3), returned in position order.
        var n = lk_hamming_select(d, d.count, 64, -1, 3, &out)
        #expect(Array(out.prefix(n)) == [1, 3, 7])
        // Best 4: ties at distance 2 -> position 5.
        n = lk_hamming_select(d, d.count, 64, -1, 4, &out)
        #expect(Array(out.prefix(n)) == [1, 3, 5, 7])
        // Radius 3: everything <= 3, the out-of-range (tombstone) never.
        n = lk_hamming_select(d, d.count, 64, 3, 9, &out)
        #expect(Array(out.prefix(n)) == [1, 2, 3, 5, 7, 8])
        // More wanted than there are: all but the tombstone.
        n = lk_hamming_select(d, d.count, 64, -1, 100, &out)
        #expect(n == 8)
    }

    // MARK: trainers

    @Test func trainedCodesAreDeterministicForASeed() throws {
        let d = 48
        let x = Clustered.vectors(400, dimension: d, clusters: 8, spread: 0.5, seed: 11)
        let a = try ITQTrainer.train(vectors: x, dimension: d, bits: 32, seed: 5).encoder
        let b = try ITQTrainer.train(vectors: x, dimension: d, bits: 32, seed: 5).encoder
        let c = try ITQTrainer.train(vectors: x, dimension: d, bits: 32, seed: 6).encoder
        #expect(a.encode(x) == b.encode(x))
        #expect(a.serialized() == b.serialized())
        #expect(a.serialized() != c.serialized())
        let labels = (0..<400).map { $0 % 4 }
        var options = LatentHashTrainer.Options()
        options.bits = 16
        options.epochs = 3
        options.seed = 9
        let s1 = try LatentHashTrainer(options: options).train(vectors: x, dimension: d, labels: labels, classes: 4)
        let s2 = try LatentHashTrainer(options: options).train(vectors: x, dimension: d, labels: labels, classes: 4)
        #expect(s1.encoder == s2.encoder)
        options.seed = 10
        let s3 = try LatentHashTrainer(options: options).train(vectors: x, dimension: d, labels: labels, classes: 4)
        #expect(s1.encoder != s3.encoder)
    }

    @Test func supervisedHashLayerLearnsSeparableClasses() throws {
        // Labels = cluster of the vector: a linear classifier on the hash layer must learn them.
        let d = 32, n = 600, k = 6
        var rng = TrainingRandom(seed: 2)
        let centres = (0..<k * d).map { _ in rng.normal() }
        var x = [Float](repeating: 0, count: n * d)
        let labels = (0..<n).map { $0 % k }
        for r in 0..<n { for i in 0..<d { x[r * d + i] = centres[labels[r] * d + i] + 0.3 * rng.normal() } }
        var options = LatentHashTrainer.Options()
        options.bits = 16
        options.epochs = 20
        let result = try LatentHashTrainer(options: options).train(vectors: x, dimension: d, labels: labels, classes: k)
        #expect((result.validationAccuracy ?? 0) > 0.95)
        // Codes of one class agree far more than codes of different classes.
        let codes = result.encoder.encode(x)
        let same = hammingDistance(codes[0..<1], codes[k..<k + 1]), other = hammingDistance(codes[0..<1], codes[1..<2])
        #expect(same < other)
    }

    @Test func supervisedCodesRankByClassPosteriorsAndKeepTheirClassifierInTheirBytes() throws {
        // Overlapping classes: a vector's nearest neighbours by cosine often belong to another
        // class, while a classifier on the hash layer still learns the classes.
        let d = 32, n = 1200, k = 6, bits = 16
        var rng = TrainingRandom(seed: 5)
        let centres = (0..<k * d).map { _ in rng.normal() }
        func sample(_ count: Int) -> (vectors: [Float], labels: [Int]) {
            var x = [Float](repeating: 0, count: count * d)
            let labels = (0..<count).map { _ in Int(rng.next() % UInt64(k)) }
            for r in 0..<count {
                var norm: Float = 0
                for i in 0..<d {
                    let v = centres[labels[r] * d + i] + 1.6 * rng.normal()
                    x[r * d + i] = v
                    norm += v * v
                }
                for i in 0..<d { x[r * d + i] /= norm.squareRoot() }
            }
            return (x, labels)
        }
        let library = sample(n), queries = sample(150)
        var options = LatentHashTrainer.Options()
        options.bits = bits
        options.epochs = 30
        let trained = try LatentHashTrainer(options: options).train(vectors: library.vectors, dimension: d, labels: library.labels, classes: k)
        let supervised = trained.encoder
        let head = try #require(supervised.head)
        #expect(head.classes == k)
        // The classifier travels with the encoder (a trained model's bytes, an index file's payload).
        #expect(try LinearHashEncoder(serialized: supervised.serialized(), source: "test") == supervised)
        let codesOnly = try LinearHashEncoder(dimension: d, bits: bits, projection: supervised.projection, offset: supervised.offset)
        #expect(try LinearHashEncoder(serialized: codesOnly.serialized(), source: "test").head == nil)
        var damaged = supervised.serialized()
        damaged.removeLast(4)
        #expect(throws: IndexError.self) { try LinearHashEncoder(serialized: damaged, source: "test") }

        // Posteriors are unit rows whose largest entry is the classifier's answer.
        let posteriors = try #require(supervised.posteriors(queries.vectors))
        var right = 0
        for q in 0..<queries.labels.count {
            let row = posteriors[(q * k)..<((q + 1) * k)]
            #expect(abs(row.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
            if row.indices.max(by: { row[$0] < row[$1] }).map({ $0 - q * k }) == queries.labels[q] { right += 1 }
        }
        let accuracy = Double(right) / Double(queries.labels.count)

        let ids = (0..<Int64(n)).map { $0 + 1 }
        let store = VectorStore(dimension: d)
        try store.add(ids: ids, vectors: library.vectors)
        func precisionAt10(_ encoder: LinearHashEncoder) throws -> (precision: Double, answers: [[Neighbor]]) {
            let index = try #require(try IndexFactory.make("hash:\(bits):c=200", dimension: d, store: store) as? HashIndex)
            try index.use(encoder, stamp: nil)
            try index.add(ids: ids, vectors: library.vectors)
            let answers = try index.search(batch: queries.vectors, k: 10, parameters: SearchParameters())
            // Again, now with the candidates' posteriors remembered: the same answers.
            #expect(try index.search(batch: queries.vectors, k: 10, parameters: SearchParameters()) == answers)
            var hits = 0
            for (q, answer) in answers.enumerated() {
                #expect(answer.count == 10)
                hits += answer.filter { library.labels[Int($0.id - 1)] == queries.labels[q] }.count
            }
            return (Double(hits) / Double(10 * answers.count), answers)
        }
        let cosine = try precisionAt10(codesOnly), withClasses = try precisionAt10(supervised)
        print("classifier accuracy \(accuracy), P@10 cosine \(cosine.precision), with class posteriors \(withClasses.precision)")
        #expect(accuracy > cosine.precision)
        #expect(withClasses.precision > cosine.precision + 0.03)
        // A library vector replaced by the query itself is found first (its remembered posteriors
        // are forgotten with the old vector), and gone once removed.
        do {
            let index = try #require(try IndexFactory.make("hash:\(bits):c=200", dimension: d, store: nil) as? HashIndex)
            try index.use(supervised, stamp: nil)
            try index.add(ids: ids, vectors: library.vectors)
            let query = Array(queries.vectors[0..<d])
            let before = try index.search(query, k: 10)
            let remembered = try #require(before.first.flatMap { index.rememberedPosteriors(of: $0.id) })
            #expect(remembered.count == k)
            let moved = try #require(ids.first { id in !before.contains { $0.id == id } })
            _ = try index.search(Array(library.vectors[(Int(moved - 1) * d)..<(Int(moved) * d)]), k: 10)
            #expect(index.rememberedPosteriors(of: moved) != nil)
            try index.add(ids: [moved], vectors: query)
            #expect(index.rememberedPosteriors(of: moved) == nil)
            #expect(try index.search(query, k: 10).first?.id == moved)
            #expect(index.remove(ids: [moved]) == 1)
            #expect(try !index.search(query, k: 10).contains { $0.id == moved })
        }
        // A row replaced in a shared store before the index hears of it is projected again: the
        // remembered entry's check no longer matches the stored row.
        do {
            let shared = VectorStore(dimension: d)
            try shared.add(ids: ids, vectors: library.vectors)
            let index = try #require(try IndexFactory.make("hash:\(bits):c=200", dimension: d, store: shared) as? HashIndex)
            try index.use(supervised, stamp: nil)
            try index.add(ids: ids, vectors: library.vectors)
            let query = Array(queries.vectors[d..<(2 * d)])
            let id = try #require(try index.search(query, k: 10).first?.id)
            let old = try #require(index.rememberedPosteriors(of: id))
            let replacement = Array(queries.vectors[(2 * d)..<(3 * d)])
            try shared.add(ids: [id], vectors: replacement)
            _ = try index.search(query, k: 10)
            let now = try #require(index.rememberedPosteriors(of: id))
            let expected = try #require(supervised.posteriors(replacement))
            #expect(zip(now, expected).allSatisfy { abs($0 - $1) < 1e-5 })
            #expect(now != old)
        }
        // The order changes; each reported distance stays the result's cosine distance.
        for (q, answer) in withClasses.answers.enumerated() {
            let query = Array(queries.vectors[(q * d)..<((q + 1) * d)])
            for neighbor in answer {
                let row = try #require(store.reconstruct(neighbor.id))
                let cosine = zip(query, row).reduce(Float(0)) { $0 + $1.0 * $1.1 }
                #expect(abs(neighbor.distance - (1 - cosine)) < 1e-4)
            }
        }
    }

    // MARK: methods on synthetic data (the conformance promises)

    static func recallAt10(_ index: any VectorIndex, _ exact: ExactIndex, _ queries: [Float], d: Int) throws -> Double {
        let want = try exact.search(batch: queries, k: 10, parameters: SearchParameters())
        let got = try index.search(batch: queries, k: 10, parameters: SearchParameters())
        var hits = 0
        for (w, g) in zip(want, got) { hits += Set(w.map(\.id)).intersection(g.map(\.id)).count }
        return Double(hits) / Double(want.count * 10)
    }

    @Test func everyMethodKeepsItsRecallPromiseOnSyntheticClusters() throws {
        let d = 64, n = 4000
        let data = Clustered.vectors(n, dimension: d, clusters: 40, spread: 0.5, seed: 21)
        let queries = Clustered.vectors(50, dimension: d, clusters: 40, spread: 0.5, seed: 21 + 1000)
        let ids = (0..<Int64(n)).map { $0 * 2 + 5 }
        let store = VectorStore(dimension: d)
        try store.add(ids: ids, vectors: data)
        let exact = ExactIndex(store: store, descriptor: IndexDescriptor(method: "exact"))
        for name in IndexFactory.names {
            guard let method = IndexFactory.methods[name] else { continue }
            #expect(!method.examples.isEmpty)
            for example in method.examples {
                let index = try IndexFactory.make(example, dimension: d, store: name == "exact" ? nil : store)
                if !index.isTrained { try index.train(data) }
                try index.add(ids: ids, vectors: data)
                #expect(index.count == n)
                let recall = try Self.recallAt10(index, exact, queries, d: d)
                #expect(recall >= method.minimumRecallAt10, "\(example): recall@10 \(recall) < \(method.minimumRecallAt10)")
                print("recall@10 \(example): \(recall)")
            }
        }
    }

    @Test func everyMethodRoundTripsThroughItsFileAndHonoursRemovalAndOtherMetrics() throws {
        let d = 48, n = 1500
        let data = Clustered.vectors(n, dimension: d, clusters: 20, spread: 0.8, seed: 31)
        let ids = (0..<Int64(n)).map { $0 + 100 }
        let store = VectorStore(dimension: d)
        try store.add(ids: ids, vectors: data)
        let dir = try Fixture.tempDir()
        for descriptor in ["lsh:12:6", "hash:64", "hnsw:16"] {
            let index = try IndexFactory.make(descriptor, dimension: d, store: store)
            if !index.isTrained { try index.train(data) }
            try index.add(ids: ids, vectors: data)
            let query = Array(data[0..<d])
            // The stored vector itself comes first (distance ~0) under the native metric ...
            #expect(try index.search(query, k: 5).first?.id == 100)
            // ... and under a re-ranked one.
            let chi = try index.search(query, k: 5, metric: .chi2)
            #expect(chi.first?.id == 100, "\(descriptor) chi2")
            #expect(chi.map(\.distance) == chi.map(\.distance).sorted())
            #expect(index.remove(ids: [100, 101]) == 2)
            #expect(index.count == n - 2)
            #expect(try !index.search(query, k: 10).contains { $0.id == 100 || $0.id == 101 })
            #expect(try !index.search(query, k: 10, parameters: SearchParameters(excluding: [102])).contains { $0.id == 102 })
            let url = dir.appendingPathComponent("\(descriptor).lkix")
            try index.write(to: url)
            let back = try readIndex(url: url, store: store)
            #expect(back.descriptor.name == descriptor)
            #expect(back.count == n - 2)
            let q2 = Array(data[(7 * d)..<(8 * d)])
            #expect(try back.search(q2, k: 10).map(\.id) == index.search(q2, k: 10).map(\.id), "\(descriptor) after reading back")
            #expect(throws: IndexError.self) { try readIndex(url: url, store: nil) }
            // Re-adding a removed id makes it findable again.
            try back.add(ids: [100], vectors: query)
            #expect(try back.search(query, k: 1).first?.id == 100)
        }
    }

    // MARK: the live library and its index files

    static let approximate = ["lsh:10:5", "hash:64", "hnsw:16"]

    /// Recall against exact on the 36 sample photos, each query excluding itself, with candidate
    /// budgets well under the library (a promise over 1,000 candidates or a 40-node beam would hold
    /// by construction here): hash re-ranks 12 candidates, hnsw searches a beam of 12 (max(ef, 4k)
    /// with ef 4 and k 3), lsh probes its buckets only.
    @Test func sampleLibraryNeighboursAgreeWithExactOnSmallBudgets() throws {
        let catalogue = try SearchTests.sampleLibrary()
        let library = try LiveLibrary(catalogue: catalogue)
        let exact = try library.index(for: IndexDescriptor(method: "exact"))
        let ids = library.store.liveIds
        // (descriptor, k, search beam, promised recall@k), measured on whole+rmac vectors.
        let promised: [(String, Int, Int?, Double)] = [
            ("lsh:10:5", 10, nil, 0.45), ("hash:64:c=12", 3, nil, 0.95), ("hnsw:16", 3, 4, 0.95),
        ]
        for (descriptor, k, ef, minimum) in promised {
            let index = try library.index(for: IndexDescriptor(parsing: descriptor))
            var hits = 0
            for id in ids {
                guard let v = library.store.reconstruct(id) else { continue }
                let want = Set(try exact.search(v, k: k, parameters: SearchParameters(excluding: [id])).map(\.id))
                let got = try index.search(v, k: k, parameters: SearchParameters(excluding: [id], efSearch: ef))
                hits += got.filter { want.contains($0.id) }.count
            }
            let recall = Double(hits) / Double(ids.count * k)
            print("sample library recall@\(k) \(descriptor) ef \(ef.map(String.init) ?? "-"): \(recall)")
            #expect(recall >= minimum, "\(descriptor): recall@\(k) \(recall) < \(minimum)")
            #expect(recall < 1 || descriptor.hasPrefix("hnsw"), "\(descriptor): a budget this small should miss some neighbours")
        }
    }

    @Test func imagesAddedAfterTrainingAndRemovedImagesReachEveryIndex() throws {
        let samples = try Fixture.indexedSamples()
        let (folder, catalogue, indexer) = (samples.folder, samples.catalogue, samples.indexer)
        guard let model = try catalogue.storedModel() else { Issue.record("no model"); return }
        // hash:32 gets a trained model in the catalogue and a file; hnsw:16 a file; lsh stays in memory.
        _ = try HashTraining.save(try HashTraining.train(catalogue: catalogue, model: model, bits: 32, mode: .itq),
                                  catalogue: catalogue, model: model)
        let hashFile = try LibraryIndexes.build(IndexDescriptor(parsing: "hash:32"), catalogue: catalogue, model: model)
        #expect(hashFile.count == 36)
        _ = try LibraryIndexes.build(IndexDescriptor(parsing: "hnsw:16"), catalogue: catalogue, model: model)
        let library = try LiveLibrary(catalogue: catalogue)
        let methods = ["lsh:10:5", "hash:32", "hnsw:16"]
        for m in methods { _ = try library.index(for: IndexDescriptor(parsing: m)) }
        #expect(library.opening(ofIndex: "hash:32")?.source == "file")
        #expect(library.opening(ofIndex: "hnsw:16")?.source == "file")
        #expect(library.opening(ofIndex: "lsh:10:5")?.source == "memory")

        // A new photo, indexed by the writer while the library is open.
        let extra = folder.appendingPathComponent("pizza/new_pizza.jpg")
        try FileManager.default.copyItem(at: Fixture.queries.appendingPathComponent("pizza_0010.jpg"), to: extra)
        let summary = try indexer.run(roots: [folder.path])
        #expect(summary.indexed == 1)
        #expect(Set(summary.indexes.map(\.action)) == ["updated"], "\(summary.indexes)")
        try library.refresh()
        guard let newId = try catalogue.imageId(path: extra.path), let vector = library.store.reconstruct(newId) else {
            Issue.record("new image not in the library"); return
        }
        for m in methods {
            let top = try library.index(for: IndexDescriptor(parsing: m)).search(vector, k: 3)
            #expect(top.first?.id == newId, "\(m) does not find the image added after training")
        }
        // A fresh reader loads the updated files and finds it too.
        let reader = try LiveLibrary(catalogue: catalogue)
        for m in ["hash:32", "hnsw:16"] {
            #expect(try reader.index(for: IndexDescriptor(parsing: m)).search(vector, k: 1).first?.id == newId)
            #expect(reader.opening(ofIndex: m)?.source == "file")
        }

        // Removal reaches every index (live library and files).
        try FileManager.default.removeItem(at: extra)
        _ = try indexer.run(roots: [folder.path], prune: true)
        try library.refresh()
        let reader2 = try LiveLibrary(catalogue: catalogue)
        for m in methods {
            for lib in [library, reader2] {
                let results = try lib.index(for: IndexDescriptor(parsing: m)).search(vector, k: 10)
                #expect(!results.contains { $0.id == newId }, "\(m) still returns a removed image")
                #expect(results.count == 10, "\(m) returned \(results.count) of 10")
            }
        }
    }

    @Test func corruptOrStaleIndexFilesAreDetectedAndRebuilt() throws {
        let samples = try Fixture.indexedSamples()
        let (folder, catalogue) = (samples.folder, samples.catalogue)
        guard let model = try catalogue.storedModel() else { Issue.record("no model"); return }
        let descriptor = try IndexDescriptor(parsing: "hnsw:16")
        _ = try LibraryIndexes.build(descriptor, catalogue: catalogue, model: model)
        let url = LibraryIndexes.url(for: catalogue, descriptor: descriptor)
        #expect(url.lastPathComponent == "hnsw-16.lkix")

        // One flipped byte in the payload: the checksum catches it; the reader builds in memory.
        var bytes = try Data(contentsOf: url)
        bytes[bytes.count - 100] ^= 0xFF
        try bytes.write(to: url)
        let library = try LiveLibrary(catalogue: catalogue)
        let index = try library.index(for: descriptor)
        #expect(index.count == 36)
        #expect(library.opening(ofIndex: "hnsw:16")?.source == "memory")
        #expect(library.opening(ofIndex: "hnsw:16")?.fileProblem?.contains("checksum") == true)
        #expect(try Data(contentsOf: url) == bytes, "a reader must not write")
        // The writer rebuilds it.
        let updates = try LibraryIndexes.update(catalogue: catalogue, model: model)
        #expect(updates.map(\.action) == ["rebuilt"])
        let again = try LiveLibrary(catalogue: catalogue)
        _ = try again.index(for: descriptor)
        #expect(again.opening(ofIndex: "hnsw:16")?.source == "file")

        // Stale: the journal was pruned past the file's counter.
        let extra = folder.appendingPathComponent("pizza/new_pizza.jpg")
        try FileManager.default.copyItem(at: Fixture.queries.appendingPathComponent("pizza_0010.jpg"), to: extra)
        let writer = Indexer(catalogue: catalogue, embedder: try Fixture.embedder(), writesSnapshot: false)
        _ = try writer.run(roots: [folder.path])
        try catalogue.pruneJournal(through: try catalogue.changeCounter())
        let stale = try LiveLibrary(catalogue: catalogue)
        #expect(try stale.index(for: descriptor).count == 37)
        #expect(stale.opening(ofIndex: "hnsw:16")?.fileProblem?.contains("older than the change journal") == true)
        #expect(try LibraryIndexes.update(catalogue: catalogue, model: model).map(\.action) == ["rebuilt"])

        // A file truncated to garbage is rebuilt from its name.
        try Data("not an index".utf8).write(to: url)
        #expect(try LibraryIndexes.update(catalogue: catalogue, model: model).map(\.action) == ["rebuilt"])
        #expect(try readIndex(url: url, store: LiveLibrary(catalogue: catalogue).store).count == 37)
    }
}
