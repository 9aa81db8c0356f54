// `eval --store`: the evaluation of Evaluator, with a Milvus collection as the library. Labels,
// paths and vectors come from the collection itself (what `index --store` wrote), so a serving
// node evaluates the shared catalogue without any worker's local library; each query is a stored
// vector searched through Milvus's own index (its top `candidateLimit`, AP over that list with
// the relevant images it misses counting as misses, as for the local coarse methods). Each query
// runs the library's query plan over the collection, as a store search does (StoreRankingSource):
// query expansion always, augmentation and diffusion when the collection's re-ranking companion
// (`prepare rerank`, StoreReranking) covers it; the report says what was applied.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

public enum StoreEvaluator {
    public static func run(store: MilvusStore, options: EvaluationOptions, model: ModelInfo? = nil,
                           progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> EvaluationReport {
        guard let described = try await store.describe() else {
            throw StoreError(store: store.address.description, "no collection \(store.address.collection): fill it with `lookalike index FOLDER --store \(store.address)`")
        }
        // The collection must hold this engine's model (its vectors are compared with nothing
        // local, but the report names the library it measured) and be loaded to answer searches.
        if let model { try store.check(described, model: model) }
        let collection = try await store.loaded(described)
        let rows = try await store.allRows(fields: ["hash", "label", "path"])
        let companion = options.reranking.isNone ? nil : try await StoreReranking.open(library: store, collection: collection)
            .flatMap { $0.serves(options.reranking) ? $0 : nil }
        var hashOf: [Int64: String] = [:]
        var rowOf: [String: Int64] = [:]
        for row in rows {
            guard let id = row["id"].flatMap(MilvusStore.int64), let hash = row["hash"] as? String else { continue }
            hashOf[id] = hash
            if let known = rowOf[hash], known < id { continue }
            rowOf[hash] = id
        }
        let clutter = options.clutterLabels
        let items = rows.compactMap { row -> Evaluator.Item? in
            guard let id = row["id"].flatMap(MilvusStore.int64) else { return nil }
            return Evaluator.Item(id: id, path: row["path"] as? String ?? "", label: row["label"] as? String ?? "")
        }.sorted { $0.path < $1.path }
        let (inLibrary, labelCounts, queries) = try Evaluator.plan(items, options: options, what: "collection")
        let labels = Dictionary(uniqueKeysWithValues: inLibrary.map { ($0.id, $0.label) })
        // Milvus caps a search at 16,384 results; one more than wanted, since the query finds itself.
        let limit = min(options.candidateLimit, inLibrary.count - 1, MilvusStore.queryWindow - 1)
        let filter = options.clutter == .exclude && !clutter.isEmpty
            ? "label not in \(MilvusStore.list(clutter.sorted()))" : nil

        // The library's query plan over the collection, as a store search runs it.
        let descriptor = StoreLibrary.descriptor(ofDescription: collection.description)
        let plan = StoreRankingSource.plan(options.reranking, companion: companion, descriptor: descriptor)
        var outcomes: [QueryOutcome] = []
        var metrics: [RankingMetrics] = []
        var searchSeconds = 0.0
        var appliedReranking = StoreRankingSource.applied(options.reranking, companion: companion, diffused: false)
        for start in stride(from: 0, to: queries.count, by: 64) {
            let chunk = Array(queries[start..<min(queries.count, start + 64)])
            let vectors = try await store.vectors(ids: chunk.map(\.id))
            for query in chunk {
                guard let vector = vectors[query.id] else {
                    throw StoreError(store: store.address.description, "row \(query.id) (\(query.path)) has no vector")
                }
                let started = DispatchTime.now().uptimeNanoseconds
                // As the local evaluation ranks: the query's own image is in the scan, then dropped.
                let hash = hashOf[query.id]
                let source = StoreRankingSource(library: store, companion: companion, filter: filter, queryHash: hash)
                let ranked = try await plan.run(vector, libraryId: hash.flatMap(StoreLibrary.key), k: limit + 1, excluding: [],
                                                source: source)
                if ranked.diffused { appliedReranking = StoreRankingSource.applied(options.reranking, companion: companion, diffused: true) }
                let ids = Array(ranked.neighbours.compactMap { source.hash(of: $0.id) }.filter { $0 != hash }
                    .compactMap { rowOf[$0] }.prefix(limit))
                searchSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                let (outcome, m) = Evaluator.measure(query, ranking: ids, label: { labels[$0] }, labelCounts: labelCounts,
                                                     options: options)
                metrics.append(m)
                outcomes.append(outcome)
            }
            progress?(outcomes.count, queries.count)
        }
        let index = "\(collection.indexName ?? "index") (\(collection.metric ?? "IP"))"
        var applied = options
        applied.reranking = appliedReranking
        return Evaluator.report(library: store.address.description, images: inLibrary.count, options: applied,
                                method: "milvus \(index)",
                                apOver: "top \(limit) returned by Milvus (relevant images not returned count as misses)",
                                outcomes: outcomes, metrics: metrics, methodMs: searchSeconds * 1000 / Double(max(1, outcomes.count)),
                                exactMs: 0, preparationSeconds: 0)
    }
}
