// The one order of a re-ranked search, written once over a small interface (`RankingSource`) that
// the local library (`LocalRankingSource`, over a Reranker) and a Milvus store (`StoreRankingSource`,
// over its collection and re-ranking companion) both implement, like faiss's IndexRefine and
// IndexPreTransform wrappers around any index:
//   1. start: a library image starts from its ranked (augmented) vector, an outside image from its own;
//   2. query expansion: the start's nearest, averaged in (`Reranking.expand`);
//   3. the scan: the expanded query's nearest among the ranked vectors, from any method;
//   4. diffusion, for a library image with a node in the graph (`DiffusionGraph.rescore`);
//   5. an outside query's near-copies: its raw nearest merged in, in the blended order
//      (`Reranker.nearCopyOrder`); a library image asked to include itself comes first.
// Verification of near-copies follows as the next stage (SearchService.verificationStage). The batch
// paths that rank every library image at once (evaluation, the answer lists) run steps 1-4 through
// the same functions (`finish`), over one matrix product per batch.
import Foundation
import LookalikeIndex

/// One image a source's search found.
package struct RankedCandidate: Sendable {
    package let id: Int64
    /// The similarity to the searched vector (inner product of unit vectors).
    package let similarity: Float
    /// Its vector among those searched, when asked for.
    package let vector: [Float]?
    /// Its node's facts in the diffusion graph, when asked for and the source keeps them per image
    /// (a store's companion does; the local library holds the whole graph instead).
    package let facts: DiffusionGraph.NodeFacts?

    package init(id: Int64, similarity: Float, vector: [Float]? = nil, facts: DiffusionGraph.NodeFacts? = nil) {
        self.id = id
        self.similarity = similarity
        self.vector = vector
        self.facts = facts
    }

    var neighbor: Neighbor { Neighbor(id: id, distance: 1 - similarity) }
}

/// Where a library image's query starts.
package struct LibraryStart: Sendable {
    /// Its ranked (augmented) vector; nil when the source ranks raw vectors (the query's own then).
    package let vector: [Float]?
    /// Whether diffusion can start from its node (the graph holds it).
    package let diffusible: Bool
    /// Its node's facts, where the source keeps them per image.
    package let facts: DiffusionGraph.NodeFacts?
    /// Whether the search's restriction (label, folder) admits the image itself.
    package let admitted: Bool

    package init(vector: [Float]?, diffusible: Bool, facts: DiffusionGraph.NodeFacts? = nil, admitted: Bool = true) {
        self.vector = vector
        self.diffusible = diffusible
        self.facts = facts
        self.admitted = admitted
    }
}

/// What the stages need of a library: searches over its ranked and its raw vectors, vectors by id,
/// and the diffusion graph around a query. The search's restriction (label, folder) is the source's own.
package protocol RankingSource: Sendable {
    /// Where a library image's query starts (nil: the image is unknown to the source).
    func start(of id: Int64) async throws -> LibraryStart?
    /// The `k` nearest to `vector` among the ranked vectors, leaving out `excluding`; with their
    /// ranked vectors when `vectors`, with their node facts (the first DiffusionGraph.candidates)
    /// when `facts`.
    func nearest(_ vector: [Float], k: Int, excluding: Set<Int64>, vectors: Bool, facts: Bool) async throws -> [RankedCandidate]
    /// A library image's `count` nearest others as the source lists them without a search (the
    /// local diffusion graph's lists), with their ranked vectors; nil to search instead.
    func listedNeighbours(of id: Int64, count: Int) async throws -> [RankedCandidate]?
    /// The `k` nearest to `vector` among the library's own (raw) vectors, with those vectors.
    func nearestRaw(_ vector: [Float], k: Int, excluding: Set<Int64>) async throws -> [RankedCandidate]
    /// These images' vectors: the raw ones, or the ranked ones.
    func vectors(_ ids: [Int64], raw: Bool) async throws -> [Int64: [Float]]
    /// The diffusion graph over a library image's node and its candidates (`start` is the query's),
    /// nil when diffusion cannot start there.
    func diffusionGraph(query: Int64, start: LibraryStart, candidates: [RankedCandidate]) async throws -> DiffusionGraph?
}

/// The stages a query runs, once decided: what the answer says ran is this plan.
package struct QueryPlan: Sendable {
    /// Query expansion's neighbours (0: none) and its weight exponent.
    package let expansion: Int
    package let alpha: Double
    /// Whether diffusion runs for a library image whose node the graph holds.
    package let diffusion: Bool
    /// Whether an outside query's raw nearest are merged in (when anything moved its ranking).
    package let mergesNearCopies: Bool

    package init(expansion: Int, alpha: Double, diffusion: Bool, mergesNearCopies: Bool) {
        self.expansion = expansion
        self.alpha = alpha
        self.diffusion = diffusion
        self.mergesNearCopies = mergesNearCopies
    }

    /// An answer: the best `k` with distance 1 - the score they are ordered by (1: the query
    /// itself), and whether diffusion ranked it.
    package struct Answer: Sendable {
        package let neighbours: [Neighbor]
        package let diffused: Bool
    }

    /// The best `k` for a query vector (raw, unit length): a library image's (`libraryId`) or an
    /// outside one's, leaving out `excluding` (a library image is included first unless excluded).
    package func run(_ vector: [Float], libraryId: Int64?, k: Int, excluding: Set<Int64>,
                     source: some RankingSource) async throws -> Answer {
        // 1. Start.
        var start: LibraryStart?
        if let libraryId { start = try await source.start(of: libraryId) }
        var query = start?.vector ?? vector
        // 2. Expansion (a library image is not its own neighbour: it already has weight 1).
        if expansion > 0 {
            var first: [RankedCandidate]?
            if let libraryId { first = try await source.listedNeighbours(of: libraryId, count: expansion) }
            if first == nil {
                first = try await source.nearest(query, k: expansion, excluding: libraryId.map { [$0] } ?? [], vectors: true, facts: false)
            }
            query = Self.expanded(query, with: first ?? [], alpha: alpha)
        }
        // 3. The scan (diffusion re-orders the best DiffusionGraph.candidates).
        let diffuses = diffusion && start?.diffusible == true
        let outside = libraryId == nil
        let merges = outside && mergesNearCopies
        let pool = Self.pool(k, diffuses: diffuses)
        let found = try await source.nearest(query, k: pool, excluding: excluding, vectors: merges, facts: diffuses)
        // 5. An outside query's near-copies.
        if merges {
            let plain = try await source.nearestRaw(vector, k: k, excluding: excluding)
            return Answer(neighbours: try await Self.withNearCopies(Array(found.prefix(k)), plain: plain, query: vector,
                                                                    expanded: query, k: k, source: source),
                          diffused: false)
        }
        // 4. Diffusion, and the image itself first.
        var candidates = found
        if let libraryId, let start, start.admitted, !excluding.contains(libraryId), !found.contains(where: { $0.id == libraryId }) {
            candidates.insert(RankedCandidate(id: libraryId, similarity: 1), at: 0)
        }
        var graph: DiffusionGraph?
        if diffuses, let libraryId, let start {
            graph = try await source.diffusionGraph(query: libraryId, start: start, candidates: found)
        }
        return Answer(neighbours: Self.finish(candidates.map(\.neighbor), libraryId: libraryId, graph: graph, k: k),
                      diffused: graph != nil)
    }

    /// How many the scan returns for `k`: diffusion re-orders the best DiffusionGraph.candidates.
    package static func pool(_ k: Int, diffuses: Bool) -> Int {
        diffuses ? max(k, DiffusionGraph.candidates) : k
    }

    /// The query expanded with its first neighbours (those that came with their vectors).
    package static func expanded(_ vector: [Float], with first: [RankedCandidate], alpha: Double) -> [Float] {
        Reranking.expand(vector, neighbours: first.compactMap { c in c.vector.map { (c.similarity, $0) } }, alpha: alpha)
    }

    /// The final order of a library image's scan (`found`, over the pool): re-scored by diffusion
    /// from its node when a graph is given, the image itself first when it is among them (identical
    /// to the query, whatever the expanded query or diffusion say of its neighbours). Distances are
    /// 1 - the list's score (`Reranker.score(orderingDistance:diffused:)`); the image itself scores 1.
    package static func finish(_ found: [Neighbor], libraryId: Int64?, graph: DiffusionGraph?, k: Int) -> [Neighbor] {
        var others = found
        let own = libraryId.flatMap { id in others.firstIndex { $0.id == id } }.map { others.remove(at: $0) }
        let ranked: [Neighbor]
        if let graph, let libraryId {
            ranked = graph.rescore(others, query: libraryId, limit: k)
                .map { Neighbor(id: $0.id, distance: 1 - Reranker.score(orderingDistance: $0.distance, diffused: true)) }
        } else {
            ranked = Array(others.prefix(k))
        }
        return Array(((own.map { [Neighbor(id: $0.id, distance: 0)] } ?? []) + ranked).prefix(k))
    }

    /// The union of an outside query's re-ranked (`found`, with ranked vectors) and raw (`plain`,
    /// with raw vectors) nearest, in the blended order; the vectors either side lacks are fetched.
    static func withNearCopies(_ found: [RankedCandidate], plain: [RankedCandidate], query: [Float], expanded: [Float],
                               k: Int, source: some RankingSource) async throws -> [Neighbor] {
        var raw: [Int64: [Float]] = [:]
        var ranked: [Int64: [Float]] = [:]
        for c in plain { if let v = c.vector { raw[c.id] = v } }
        for c in found { if let v = c.vector { ranked[c.id] = v } }
        let candidates = found.map(\.id) + plain.map(\.id)
        let needRaw = candidates.filter { raw[$0] == nil }
        let needRanked = candidates.filter { ranked[$0] == nil }
        if !needRaw.isEmpty { raw.merge(try await source.vectors(needRaw, raw: true)) { a, _ in a } }
        if !needRanked.isEmpty { ranked.merge(try await source.vectors(needRanked, raw: false)) { a, _ in a } }
        return Reranker.nearCopyOrder(candidates, k: k, key: { $0 }, id: { $0 }) { id in
            guard let x = raw[id], let y = ranked[id] else { return nil }
            return (VectorStore.dot(x, query), VectorStore.dot(y, expanded))
        }.map { Neighbor(id: $0.item, distance: 1 - $0.score) }
    }
}
