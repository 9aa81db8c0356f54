// Applies a `Reranking` to searches over the local library: picks the ranked vectors (the stored
// augmented ones, or DBA built in memory for evaluation), the index over them for the chosen method
// and the diffusion graph, says what applies and why not, and answers queries through the one
// query plan (QueryPlan, over LocalRankingSource). Evaluation and the answer lists rank every
// library image in batches through the same stage functions. Answers carry the score they are
// ordered by, on a scale where 1 is the query itself (`Neighbor.distance` = 1 - that score; see
// `score(orderingDistance:diffused:)`); the raw cosine to the query is added where results are presented.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public final class Reranker: Sendable {
    public let options: Reranking
    /// The neighbours' weight exponent applied (the options' own, or the library descriptor's).
    let alpha: Double
    public let raw: VectorStore
    /// The index searched: over augmented vectors when DBA is on, else the library's own.
    let index: any VectorIndex
    /// The library's own index over the raw vectors (the same as `index` without DBA): an outside
    /// query's near-copies are looked up there (QueryPlan's last stage).
    let rawIndex: any VectorIndex
    /// The vectors `index` ranks (augmented, or the raw store).
    let ranked: VectorStore
    let filter: (@Sendable (Int64) -> Bool)?
    /// The diffusion graph over `ranked`, when diffusion applies.
    let graph: DiffusionGraph?
    /// Whether `graph` is over the library's current images (its lists then answer query expansion).
    let graphIsCurrent: Bool
    /// Every library image's answer, when the writer made them for these options and images
    /// (searches only; see AnswerLists).
    let lists: AnswerLists?
    public let preparationSeconds: Double
    /// What was asked, and why a step did not run ("dba", "diff": see `notes(libraryId:)`).
    public let requested: Reranking
    let reasons: [String: String]

    /// `computeMissing`: build the augmented vectors in memory when the library has not stored
    /// them (evaluation); otherwise the augmentation step is skipped (`options` says what applies).
    public init(library: LiveLibrary, index: any VectorIndex, options wanted: Reranking,
                filter: (@Sendable (Int64) -> Bool)? = nil, computeMissing: Bool = true) throws {
        var options = wanted
        var reasons: [String: String] = [:]
        requested = wanted
        alpha = wanted.alpha(for: library.descriptor)
        self.filter = filter
        rawIndex = index
        raw = library.store
        let started = Date()
        let stored = library.augmentedVariant == DatabaseAugmentation.variant(neighbours: options.augmentation, alpha: alpha)
            ? library.augmented : nil
        if options.augmentation > 0, let stored, index.descriptor.method == ExactIndex.methodName {
            self.index = ExactIndex(store: stored, descriptor: index.descriptor)
            ranked = stored
        } else if options.augmentation > 0, let stored {
            // Any other method finds the candidates, the stored augmented vectors rank them.
            self.index = RefinedIndex(base: index, refinement: stored)
            ranked = stored
        } else if options.augmentation > 0 && computeMissing {
            let augmented = try Self.augment(raw, using: index, neighbours: options.augmentation, alpha: alpha, filter: filter)
            let over = try IndexFactory.make(index.descriptor, dimension: raw.dimension, store: augmented)
            let all = augmented.allVectors()
            if !over.isTrained { try over.train(all.vectors) }
            try over.add(ids: all.ids, vectors: all.vectors)
            self.index = over
            ranked = augmented
        } else {
            if options.augmentation > 0 {
                reasons["dba"] = library.augmentedVariant == nil
                    ? "the library has no stored re-ranking vectors yet (`lookalike index` makes them)"
                    : "the library stores re-ranking vectors for \(Reranking.libraryDefault.description) only; other settings are evaluated with `lookalike eval --rerank`"
            }
            options.augmentation = 0
            self.index = index
            ranked = raw
        }
        var graph: DiffusionGraph?
        var graphIsCurrent = false
        if options.diffusion > 0 {
            // Evaluation builds its own graph over what it ranks; searches use the library's
            // cached one (over the stored augmented vectors or the raw ones).
            graph = computeMissing
                ? try DiffusionGraph.build(store: ranked, neighbours: options.diffusion)
                : try library.diffusionGraph(neighbours: options.diffusion, over: ranked)
            graphIsCurrent = computeMissing || library.diffusionGraphIsCurrent(graph, neighbours: options.diffusion, over: ranked)
            if graph == nil {
                reasons["diff"] = ranked.count > DiffusionGraph.maximumGraph
                    ? "\(ranked.count) images: the diffusion graph is made up to \(DiffusionGraph.maximumGraph)"
                    : "no diffusion graph for these vectors"
                options.diffusion = 0
            }
        }
        self.graph = graph
        self.graphIsCurrent = graphIsCurrent
        self.reasons = reasons
        self.options = options
        // The writer makes lists for the library's default re-ranking only: another one asking
        // would make the library drop the default's lists it holds.
        let standard = Reranking.libraryDefault
        let isStandard = options.augmentation == standard.augmentation && options.expansion == standard.expansion
            && options.diffusion == standard.diffusion && alpha == standard.alpha(for: library.descriptor)
        lists = !computeMissing && graphIsCurrent && filter == nil && isStandard
            ? library.answerLists(over: ranked, neighbours: options.diffusion, identity: AnswerLists.identity(options, alpha: alpha))
            : nil
        preparationSeconds = Date().timeIntervalSince(started)
    }

    /// DBA: every vector replaced by the weighted mean of itself and its nearest neighbours (in
    /// memory: evaluation, a store's companion).
    package static func augment(_ store: VectorStore, using index: any VectorIndex, neighbours n: Int, alpha: Double,
                        filter: (@Sendable (Int64) -> Bool)?) throws -> VectorStore {
        let out = VectorStore(dimension: store.dimension)
        try store.forEachBatch(256) { ids, vectors in
            let rows = try augmentedRows(ids: ids, vectors: vectors, store: store, index: index, neighbours: n, alpha: alpha,
                                         filter: filter)
            try out.add(ids: rows.map(\.id), vectors: rows.flatMap(\.vector))
        }
        return out
    }

    /// The one DBA step, for a batch of images (`vectors`: their rows of `store`): each image's
    /// augmented vector from its `n` nearest others in `index`, and those neighbours' ids (what the
    /// catalogue keeps to know whom a removal touches). The library's writer (DatabaseAugmentation),
    /// evaluation and a store's companion all augment through this.
    package static func augmentedRows(ids: [Int64], vectors: [Float], store: VectorStore, index: any VectorIndex,
                                      neighbours n: Int, alpha: Double, filter: (@Sendable (Int64) -> Bool)? = nil) throws
        -> [(id: Int64, vector: [Float], neighbours: [Int64])] {
        let d = store.dimension
        let found = try index.search(batch: vectors, k: n + 1, parameters: SearchParameters(filter: filter))
        return ids.enumerated().map { i, id in
            let others = found[i].filter { $0.id != id }.prefix(n)
            let neighbours = others.compactMap { nb in store.reconstruct(nb.id).map { (similarity: 1 - nb.distance, vector: $0) } }
            let base = Array(vectors[i * d..<(i + 1) * d])
            return (id, Reranking.expand(base, neighbours: neighbours, alpha: alpha), others.map(\.id))
        }
    }

    /// The query vector as ranked: a library image's augmented vector, expanded when QE is on.
    func prepared(_ vector: [Float], libraryId: Int64?) throws -> [Float] {
        guard options.expansion > 0 else { return vector }
        let first = try listedExpansion(libraryId: libraryId)
            ?? index.search(vector, k: options.expansion, parameters: expansionParameters(libraryId: libraryId))
        return expanded(vector, with: first)
    }

    /// A library image's expansion neighbours read from the diffusion graph's lists instead of
    /// scanning: the graph was made from every image's exact nearest over the same vectors, so its
    /// first `expansion` are what the expansion search finds (ties aside), and a click in the web
    /// app costs one scan instead of two. Only for the exact method, without a restriction, and
    /// while the graph is over the library's current images; nil otherwise (the search runs).
    func listedExpansion(libraryId: Int64?) -> [Neighbor]? {
        guard let libraryId, let graph, graphIsCurrent, filter == nil, options.expansion > 0,
              index.descriptor.method == ExactIndex.methodName, index.descriptor.options.isEmpty,
              (index as? ExactIndex)?.store === ranked else { return nil }
        return graph.nearest(libraryId, count: options.expansion)
    }

    /// A library image's answer read from the answer lists, with the scores it was ordered by:
    /// what `search` would compute, when the lists apply (the image itself excluded and nothing
    /// else, no restriction, `k` within the lists, the exact method); nil otherwise.
    public func listedAnswer(vector: [Float], libraryId: Int64?, k: Int, parameters: SearchParameters) -> [Neighbor]? {
        guard let libraryId, let lists, parameters.filter == nil, parameters.excluding == [libraryId],
              parameters.metric == nil || parameters.metric == .cosine,
              index.descriptor.method == ExactIndex.methodName, index.descriptor.options.isEmpty else { return nil }
        return lists.answer(libraryId, k: k)
    }

    /// Every listed image's answer (`nodes`: the graph's images), as `search` ranks a library image
    /// excluding itself, best `length` first, as indices into `nodes` (-1 past a short end): the
    /// same prepared query, exact scan of `pool` others and diffusion, run for batches of images at
    /// once on every core; and each entry's score (what the list is ordered by).
    func answers(nodes: [Int64], length: Int) throws -> (lists: [Int32], scores: [Float]) {
        var lists = [Int32](repeating: -1, count: nodes.count * length)
        var scores = [Float](repeating: 0, count: nodes.count * length)
        let index = NodeIndex(nodes)
        let batch = VectorStore.smallBatch
        let batches = (nodes.count + batch - 1) / batch
        let failure = Locked<String?>(nil)
        lists.withUnsafeMutableBufferPointer { out in
          scores.withUnsafeMutableBufferPointer { scoreOut in
            let work = UnsafeSendable(out)
            let scoreWork = UnsafeSendable(scoreOut)
            DispatchQueue.concurrentPerform(iterations: batches) { b in
                do {
                    let chunk = Array(nodes[(b * batch)..<min(nodes.count, (b + 1) * batch)])
                    var vectors: [Float] = []
                    vectors.reserveCapacity(chunk.count * ranked.dimension)
                    for id in chunk {
                        guard let v = ranked.reconstruct(id) else { throw IndexError("image \(id) is not in the library's vectors") }
                        vectors.append(contentsOf: try prepared(v, libraryId: id))
                    }
                    let pool = QueryPlan.pool(length, diffuses: diffuses(libraryId: chunk[0]))
                    let found = try self.index.search(batch: vectors, k: pool + 1, parameters: SearchParameters(metric: .cosine))
                    for (i, id) in chunk.enumerated() {
                        let others = Array(found[i].lazy.filter { $0.id != id }.prefix(pool))
                        let answer = QueryPlan.finish(others, libraryId: id, graph: diffuses(libraryId: id) ? graph : nil, k: length)
                        guard let row = index[id] else { continue }
                        for (slot, nb) in answer.prefix(length).enumerated() {
                            guard let node = index[nb.id] else { throw IndexError("image \(nb.id) is not in the diffusion graph") }
                            work.value[Int(row) * length + slot] = node
                            scoreWork.value[Int(row) * length + slot] = 1 - nb.distance
                        }
                    }
                } catch {
                    failure.withLock { $0 = String(describing: error) }
                }
            }
          }
        }
        if let message = failure.value { throw IndexError(message) }
        return (lists, scores)
    }

    /// The expansion search: the query's nearest, a library image not its own neighbour (it
    /// already has weight 1).
    func expansionParameters(libraryId: Int64?) -> SearchParameters {
        SearchParameters(excluding: libraryId.map { [$0] } ?? [], filter: filter)
    }

    /// The query expanded with the neighbours its expansion search found.
    func expanded(_ vector: [Float], with first: [Neighbor]) -> [Float] {
        QueryPlan.expanded(vector, with: first.map { RankedCandidate(id: $0.id, similarity: 1 - $0.distance, vector: ranked.reconstruct($0.id)) },
                           alpha: alpha)
    }

    /// The score a re-ranked list is ordered by, as a person reads it (1: the query itself): the
    /// similarity of the expanded query to an image's augmented vector, plus, where diffusion
    /// ranked the list, its diffusion share (`DiffusionGraph.rescore` adds up to
    /// `DiffusionGraph.weight`), divided back onto the same scale.
    package static func score(orderingDistance d: Float, diffused: Bool) -> Float {
        min(1, diffused ? (1 - d) / (1 + DiffusionGraph.weight) : 1 - d)
    }

    /// Rankings (ids, best first, up to `limit` + 1 so the query itself can be dropped) of library images.
    public func rank(queries: [Int64], limit: Int) throws -> [[Int64]] {
        var vectors: [Float] = []
        for id in queries {
            guard let v = ranked.reconstruct(id) else { throw IndexError("image \(id) is not in the library's vectors") }
            vectors.append(contentsOf: try prepared(v, libraryId: id))
        }
        let parameters = SearchParameters(filter: filter)
        let found = try index.search(batch: vectors, k: limit + 1, parameters: parameters)
        guard let graph else { return found.map { $0.map(\.id) } }
        return try BatchQueries.run(queries.count) { i in
            graph.rescore(found[i], query: queries[i], limit: limit + 1)
        }.map { $0.map(\.id) }
    }

    /// Rankings of library images searched as outside images (their raw vectors, without their
    /// own node), each leaving itself out: what an upload of the same photo would get.
    public func rankAsOutside(queries: [Int64], limit: Int) async throws -> [[Int64]] {
        try await withThrowingTaskGroup(of: (Int, [Int64]).self) { group in
            for (i, id) in queries.enumerated() {
                guard let v = raw.reconstruct(id) else { throw IndexError("image \(id) is not in the library's vectors") }
                group.addTask {
                    (i, try await self.search(vector: v, libraryId: nil, k: limit,
                                              parameters: SearchParameters(excluding: [id], filter: self.filter)).map(\.id))
                }
            }
            var out = [[Int64]](repeating: [], count: queries.count)
            for try await (i, ids) in group { out[i] = ids }
            return out
        }
    }

    /// Diffusion applies to library images only (their own node seeds it). Seeded from the nearest
    /// images instead, as Iscen et al. do for new queries, it spread relevance over the whole
    /// cluster and buried the photo an edited copy was made from: `lookalike-bench robustness` on
    /// Caltech-101, centre crop recall@1 0.625 -> 0.160 (and every other edit alike), so uploads,
    /// URLs and files are ranked by augmentation and query expansion.
    func diffuses(libraryId: Int64?) -> Bool {
        guard let graph, let libraryId else { return false }
        return graph.positions[libraryId] != nil
    }

    /// Why the re-ranking a query gets differs from the one asked, one line a step (empty when
    /// they agree).
    public func notes(libraryId: Int64?) -> [String] {
        var reasons = self.reasons
        if options.diffusion > 0 && !diffuses(libraryId: libraryId) {
            reasons["diff"] = libraryId == nil
                ? "diffusion starts from a library image's own node; an outside image is ranked by augmentation and expansion (and its near-copies)"
                : "the image was added after the diffusion graph was made (`lookalike index` brings it up to date)"
        }
        return Reranking.notes(requested: requested, applied: applied(libraryId: libraryId), reasons: reasons)
    }

    /// The re-ranking a query gets (what its answer reports).
    public func applied(libraryId: Int64?) -> Reranking {
        var applied = options
        if !diffuses(libraryId: libraryId) { applied.diffusion = 0 }
        return applied
    }

    /// An outside query's answer: the union of its re-ranked and its raw nearest images, each
    /// scored by a blend of its raw similarity to the query and its re-ranked similarity to the
    /// expanded query. Re-ranking moves a query towards its category and replaces each library
    /// vector by a mean with its neighbours, which ranks a category better, but an edited copy of
    /// a library photo (a crop, a re-encode, a caption) then no longer meets its original: on
    /// Caltech-101's `lookalike-bench robustness`, recall@1 of the original fell from 0.815 plain to 0.625
    /// (centre crop) with DBA and QE. A near-copy is what a person uploading a photo wants first,
    /// and its raw similarity is what says so.
    ///
    /// Weight 0.5, measured with `eval --as-outside` (every library image searched as an upload of
    /// itself) and `lookalike-bench robustness` on Caltech-101 (P@20 / mAP; centre-crop recall@1):
    /// weight 0 (re-ranked only) 0.869 / 0.820, 0.625; 0.5: 0.864 / 0.803, 0.825; 0.75: 0.854, 0.830;
    /// 1 (plain) 0.828 / 0.729, 0.815. Corel-1K: 0.977 / 0.965, 0.974 / 0.955, plain 0.962 / 0.902.
    static let nearCopyWeight: Float = 0.5

    /// Candidates in the blended order (nearCopyWeight of the raw cosine to the query, the rest the
    /// re-ranked similarity to the expanded query), each once (its first occurrence by `key`), the
    /// best `k`, ties to the smaller id, each with its blended score (what the list is ordered by)
    /// and its raw cosine. The local library and `StoreLibrary` both order an upload's answer
    /// through this, so the two agree.
    package static func nearCopyOrder<Item, Key: Hashable>(_ candidates: [Item], k: Int, key: (Item) -> Key, id: (Item) -> Int64,
                                                   similarities: (Item) -> (raw: Float, reranked: Float)?) -> [(item: Item, score: Float, raw: Float)] {
        var seen = Set<Key>()
        var scored: [(score: Float, id: Int64, item: Item, raw: Float)] = []
        for item in candidates where seen.insert(key(item)).inserted {
            guard let s = similarities(item) else { continue }
            scored.append((nearCopyWeight * s.raw + (1 - nearCopyWeight) * s.reranked, id(item), item, s.raw))
        }
        return scored.sorted { ($0.score, $1.id) > ($1.score, $0.id) }.prefix(k).map { ($0.item, min(1, $0.score), $0.raw) }
    }

    /// The stages this re-ranking runs (see QueryPlan).
    var plan: QueryPlan {
        QueryPlan(expansion: options.expansion, alpha: alpha, diffusion: graph != nil,
                  mergesNearCopies: options.augmentation > 0 || options.expansion > 0)
    }

    /// The `k` best for a query vector (raw, L2-normalised), excluding `parameters.excluding`, each
    /// with 1 - the score the list is ordered by: the query plan over this library, its scans shared
    /// with concurrent queries when a `batcher` is given (under load, each stage of many queries is
    /// one matrix product).
    public func search(vector: [Float], libraryId: Int64?, k: Int, parameters: SearchParameters,
                       batcher: SearchBatcher? = nil) async throws -> [Neighbor] {
        try await plan.run(vector, libraryId: libraryId, k: k, excluding: parameters.excluding,
                           source: LocalRankingSource(reranker: self, parameters: parameters, batcher: batcher)).neighbours
    }

    /// Mean milliseconds of single-query searches (top k) for these library images.
    package func latency(queries: [Int64], k: Int) async throws -> Double {
        guard !queries.isEmpty else { return 0 }
        var total = 0.0
        for id in queries {
            guard let v = raw.reconstruct(id) else { continue }
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try await search(vector: v, libraryId: id, k: k, parameters: SearchParameters(excluding: [id]))
            total += Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6
        }
        return total / Double(queries.count)
    }
}
