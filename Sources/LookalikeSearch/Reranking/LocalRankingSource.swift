// The local library as a RankingSource: its index over the ranked vectors (augmented when the
// library stores them, through any method: RefinedIndex), its own index over the raw vectors, the
// vectors in memory, and the diffusion graph over every image. Searches go through a SearchBatcher
// when one is given (a server's concurrent queries share each scan).
import Foundation
import LookalikeIndex

struct LocalRankingSource: RankingSource {
    let reranker: Reranker
    /// The search's restriction and metric (`excluding` is given per call).
    let parameters: SearchParameters
    let batcher: SearchBatcher?

    func start(of id: Int64) async throws -> LibraryStart? {
        LibraryStart(vector: reranker.ranked.reconstruct(id), diffusible: reranker.diffuses(libraryId: id),
                     admitted: parameters.filter?(id) ?? true)
    }

    func nearest(_ vector: [Float], k: Int, excluding: Set<Int64>, vectors: Bool, facts: Bool) async throws -> [RankedCandidate] {
        let found = try await search(vector, k: k, in: reranker.index, excluding: excluding)
        return found.map { RankedCandidate(id: $0.id, similarity: 1 - $0.distance, vector: vectors ? reranker.ranked.reconstruct($0.id) : nil) }
    }

    func listedNeighbours(of id: Int64, count: Int) async throws -> [RankedCandidate]? {
        guard count == reranker.options.expansion else { return nil }
        return reranker.listedExpansion(libraryId: id)?.map {
            RankedCandidate(id: $0.id, similarity: 1 - $0.distance, vector: reranker.ranked.reconstruct($0.id))
        }
    }

    func nearestRaw(_ vector: [Float], k: Int, excluding: Set<Int64>) async throws -> [RankedCandidate] {
        let found = try await search(vector, k: k, in: reranker.rawIndex, excluding: excluding)
        return found.map { RankedCandidate(id: $0.id, similarity: 1 - $0.distance, vector: reranker.raw.reconstruct($0.id)) }
    }

    func vectors(_ ids: [Int64], raw: Bool) async throws -> [Int64: [Float]] {
        let store = raw ? reranker.raw : reranker.ranked
        var out: [Int64: [Float]] = [:]
        for id in ids { out[id] = store.reconstruct(id) }
        return out
    }

    func diffusionGraph(query: Int64, start: LibraryStart, candidates: [RankedCandidate]) async throws -> DiffusionGraph? {
        reranker.diffuses(libraryId: query) ? reranker.graph : nil
    }

    private func search(_ vector: [Float], k: Int, in index: any VectorIndex, excluding: Set<Int64>) async throws -> [Neighbor] {
        var p = parameters
        p.excluding = excluding
        if let batcher { return try await batcher.search(vector, k: k, in: index, parameters: p) }
        return try index.search(vector, k: k, parameters: p)
    }
}
