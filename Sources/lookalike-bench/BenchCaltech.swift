// `lookalike-bench ann caltech`: every method on a real, labelled library (Caltech-101 indexed
// with `lookalike index`). Queries are the library's labelled images (BACKGROUND_Google is clutter:
// never a query, never relevant), each excluding itself; recall@10 is against exact cosine, P@20
// is the share of the top 20 with the query's label. Also the seed thesis's protocol (its 40
// queries, Table 5-1: P@20 exact vs hash), and supervised codes trained on a train list and judged
// only on the test list's images (queried against the whole library).
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

extension BenchANNCommand {
    static let clutter = "BACKGROUND_Google"

    /// The seed thesis's Table 5-1: class and in-class number of its 40 random queries.
    static let thesisQueries: [(String, Int)] = [
        ("saxophone", 16), ("Faces_easy", 21), ("car_side", 72), ("Faces_easy", 97), ("crayfish", 48),
        ("saxophone", 25), ("anchor", 10), ("umbrella", 70), ("soccer_ball", 26), ("bonsai", 34),
        ("brontosaurus", 13), ("sunflower", 72), ("Motorbikes", 736), ("Motorbikes", 747), ("ant", 37),
        ("airplanes", 350), ("hedgehog", 41), ("pigeon", 22), ("Motorbikes", 537), ("butterfly", 82),
        ("hawksbill", 79), ("Motorbikes", 570), ("Faces_easy", 294), ("grand_piano", 50), ("pyramid", 39),
        ("Faces_easy", 87), ("saxophone", 35), ("brontosaurus", 12), ("stapler", 28), ("brain", 69),
        ("llama", 37), ("gerenuk", 23), ("Motorbikes", 797), ("scorpion", 28), ("tick", 33),
        ("cougar_face", 16), ("yin_yang", 12), ("panda", 9), ("airplanes", 278), ("ant", 34),
    ]

    struct CaltechRow: Encodable {
        let set: String, method: String, setting: String, queries: Int
        let recall_at_10: Double, p_at_20: Double, exact_p_at_20: Double, p_at_20_ratio: Double
        let ms_mean: Double, exact_ms_mean: Double, speedup: Double
        let build_s: Double, bytes_per_image: Double
    }

    struct ThesisRow: Encodable {
        let method: String, queries: Int, p_at_20: Double, exact_p_at_20: Double, per_query: [String]
    }

    struct SupervisedRow: Encodable {
        let bits: Int, train_images: Int, held_out_accuracy: Double?, test_accuracy: Double?, encoder: String, train_s: Double
    }

    func caltech() throws {
        let catalogue = try Catalogue(path: db, mustExist: true)
        let library = try LiveLibrary(catalogue: catalogue)
        let model = library.model
        let store = library.store
        let summaries = try catalogue.allSummaries()
        let labelOf: [Int64: String] = summaries.mapValues(\.label)
        let all = store.liveIds.filter { (labelOf[$0] ?? "").isEmpty == false && labelOf[$0] != Self.clutter }
        let exact = ExactIndex(store: store, descriptor: IndexDescriptor(method: ExactIndex.methodName))

        func precision(_ query: Int64, _ results: [Neighbor]) -> Double {
            let label = labelOf[query]
            return Double(results.prefix(20).filter { labelOf[$0.id] == label }.count) / 20
        }
        /// Top-20 of every query with the time per query.
        func answers(_ index: any VectorIndex, _ queries: [Int64], _ parameters: SearchParameters) throws -> ([Int64: [Neighbor]], Double) {
            var out: [Int64: [Neighbor]] = [:]
            var total = 0.0
            for q in queries {
                guard let v = store.reconstruct(q) else { continue }
                var p = parameters
                p.excluding = [q]
                let t = Self.now()
                out[q] = try index.search(v, k: 20, parameters: p)
                total += Self.now() - t
            }
            return (out, total * 1000 / Double(max(1, queries.count)))
        }
        let (truth, exactMs) = try answers(exact, all, SearchParameters())
        func evaluate(_ set: String, _ name: String, _ setting: String, _ index: any VectorIndex, _ queries: [Int64],
                      _ parameters: SearchParameters, build: Double) throws -> [Int64: [Neighbor]] {
            let (got, ms) = try answers(index, queries, parameters)
            var hits = 0, p = 0.0, pe = 0.0
            for q in queries {
                let t = Set((truth[q] ?? []).prefix(10).map(\.id))
                hits += (got[q] ?? []).prefix(10).filter { t.contains($0.id) }.count
                p += precision(q, got[q] ?? [])
                pe += precision(q, truth[q] ?? [])
            }
            let nq = Double(max(1, queries.count))
            let exactOnSet = queries.isEmpty ? 0 : exactMs
            Self.emit(CaltechRow(set: set, method: name, setting: setting, queries: queries.count,
                                 recall_at_10: Double(hits) / (nq * 10), p_at_20: p / nq, exact_p_at_20: pe / nq,
                                 p_at_20_ratio: pe > 0 ? p / pe : 0, ms_mean: ms, exact_ms_mean: exactOnSet,
                                 speedup: exactOnSet / max(ms, 1e-9), build_s: build,
                                 bytes_per_image: index.statistics.bytesPerImage))
            return got
        }
        _ = try evaluate("all", "exact", "", exact, all, SearchParameters(), build: 0)

        func built(_ text: String, encoder: HashModel? = nil) throws -> (any VectorIndex, Double) {
            let t = Self.now()
            let index = try IndexFactory.make(try IndexDescriptor(parsing: text), dimension: store.dimension, store: store)
            if let encoder, let hash = index as? HashIndex { try hash.use(encoder) }
            if !index.isTrained {
                var sample: [Float] = []
                store.forEachBatch { _, rows in sample += rows }
                try index.train(sample)
            }
            try store.forEachBatch { ids, rows in try index.add(ids: ids, vectors: rows) }
            return (index, Self.now() - t)
        }
        let plan: [(String, [(String, SearchParameters)])] = [
            ("lsh:10:5", [("probes=0 (the seed's setting)", SearchParameters(probes: 0)), ("probes=8", SearchParameters(probes: 8))]),
            ("lsh:16:8", [("probes=8", SearchParameters(probes: 8)), ("probes=32", SearchParameters(probes: 32))]),
            ("hash:16", [("candidates=200", SearchParameters(candidates: 200)), ("candidates=500", SearchParameters(candidates: 500))]),
            ("hash:64", [("candidates=100", SearchParameters(candidates: 100)), ("candidates=200", SearchParameters(candidates: 200)),
                         ("candidates=500", SearchParameters(candidates: 500)), ("candidates=1000", SearchParameters(candidates: 1000))]),
            ("hash:64:r=8", [("radius=8", SearchParameters())]),
            ("hash:256", [("candidates=100", SearchParameters(candidates: 100)), ("candidates=200", SearchParameters(candidates: 200))]),
            ("hnsw:32", [("efSearch=32", SearchParameters(efSearch: 32)), ("efSearch=64", SearchParameters(efSearch: 64)),
                         ("efSearch=128", SearchParameters(efSearch: 128))]),
        ]
        var thesisIndexes: [(String, any VectorIndex, SearchParameters)] = []
        for (text, settings) in plan {
            let (index, seconds) = try built(text)
            for (setting, parameters) in settings {
                _ = try evaluate("all", text, setting, index, all, parameters, build: seconds)
            }
            if text == "hash:64" { thesisIndexes.append(("hash:64 (ITQ) candidates=200", index, SearchParameters(candidates: 200))) }
            if text == "lsh:10:5" { thesisIndexes.append(("lsh:10:5 probes=0", index, SearchParameters(probes: 0))) }
        }

        // The thesis's 40 queries.
        let thesis: [(String, Int64)] = Self.thesisQueries.compactMap { c, i in
            let suffix = "/\(c)/image_\(String(format: "%04d", i)).jpg"
            return summaries.first { $0.value.path.hasSuffix(suffix) }.map { ("\(c) \(i)", $0.key) }
        }
        for (name, index, parameters) in thesisIndexes {
            let (got, _) = try answers(index, thesis.map(\.1), parameters)
            let per = thesis.map { "\($0.0): \(Int((precision($0.1, got[$0.1] ?? []) * 100).rounded()))% vs \(Int((precision($0.1, truth[$0.1] ?? []) * 100).rounded()))%" }
            Self.emit(ThesisRow(method: name, queries: thesis.count,
                                p_at_20: thesis.map { precision($0.1, got[$0.1] ?? []) }.reduce(0, +) / Double(max(1, thesis.count)),
                                exact_p_at_20: thesis.map { precision($0.1, truth[$0.1] ?? []) }.reduce(0, +) / Double(max(1, thesis.count)),
                                per_query: per))
        }

        // Supervised codes: trained on the train list, judged on the test list's images only.
        guard let trainList, let testList else { return }
        let trainLines = try String(contentsOfFile: trainList, encoding: .utf8).split(whereSeparator: \.isNewline).map(String.init)
        let testLines = Set(try String(contentsOfFile: testList, encoding: .utf8).split(whereSeparator: \.isNewline).map(String.init))
        let testIds = all.filter { id in
            guard let path = summaries[id]?.path else { return false }
            return testLines.contains(path.split(separator: "/").suffix(2).joined(separator: "/"))
        }
        _ = try evaluate("test", "exact", "", exact, testIds, SearchParameters(), build: 0)
        for bits in [16, 64, 256] {
            let (itq, itqSeconds) = try built("hash:\(bits)")
            for c in [100, 200, 500] {
                _ = try evaluate("test", "hash:\(bits) itq", "candidates=\(c)", itq, testIds, SearchParameters(candidates: c), build: itqSeconds)
            }
            let outcome = try HashTraining.train(catalogue: catalogue, model: model, bits: bits, mode: .supervised,
                                                 epochs: epochs, seed: 1, trainList: trainLines)
            Self.emit(SupervisedRow(bits: bits, train_images: outcome.trainCount, held_out_accuracy: outcome.heldOutAccuracy,
                                    test_accuracy: outcome.testAccuracy, encoder: outcome.checksum, train_s: outcome.seconds))
            let (supervised, seconds) = try built("hash:\(bits)", encoder: outcome.model)
            for c in [100, 200, 500] {
                _ = try evaluate("test", "hash:\(bits) supervised", "candidates=\(c)", supervised, testIds,
                                 SearchParameters(candidates: c), build: seconds + outcome.seconds)
            }
            if bits == 64 {
                let (got, _) = try answers(supervised, thesis.map(\.1), SearchParameters(candidates: 200))
                Self.emit(ThesisRow(method: "hash:64 supervised (train.txt; thesis queries may be training images) candidates=200",
                                    queries: thesis.count,
                                    p_at_20: thesis.map { precision($0.1, got[$0.1] ?? []) }.reduce(0, +) / Double(max(1, thesis.count)),
                                    exact_p_at_20: thesis.map { precision($0.1, truth[$0.1] ?? []) }.reduce(0, +) / Double(max(1, thesis.count)),
                                    per_query: []))
            }
        }
    }
}
