// A Milvus collection as a RankingSource, so a store's searches and evaluation run the library's
// own query plan (QueryPlan) instead of a copy of it. The ranked vectors are the re-ranking
// companion's (augmented, each row with its neighbour list and degree for diffusion) when it serves
// the request, else the collection's own; the raw vectors are the collection's. Images are named by
// their content-hash key (StoreLibrary.key); the hashes met on the way are kept, so that vectors and
// rows can be fetched by key afterwards.
import Foundation
import LookalikeEngine
import LookalikeIndex
import LookalikeSearch

package final class StoreRankingSource: RankingSource {
    let library: MilvusStore
    /// The companion when it serves the request; nil: the collection's own vectors are ranked.
    let companion: StoreReranking?
    /// A Milvus expression on the label (the search's restriction).
    let filter: String?
    /// The query's content hash when it is a store image.
    let queryHash: String?
    private let hashes = Locked<[Int64: String]>([:])

    package init(library: MilvusStore, companion: StoreReranking?, filter: String?, queryHash: String?) {
        self.library = library
        self.companion = companion
        self.filter = filter
        self.queryHash = queryHash
        if let queryHash, let key = StoreLibrary.key(hash: queryHash) { hashes.withLock { $0[key] = queryHash } }
    }

    /// The plan a request gets from a store with this companion (nil: none serves it): what the
    /// local library's Reranker would run with the same stored data.
    package static func plan(_ wanted: Reranking, companion: StoreReranking?, descriptor: Descriptor) -> QueryPlan {
        QueryPlan(expansion: wanted.expansion, alpha: wanted.alpha(for: descriptor),
                  diffusion: companion.map { wanted.diffusion > 0 && wanted.diffusion == $0.built.diffusion } ?? false,
                  mergesNearCopies: (companion?.built.augmentation ?? 0) > 0 || wanted.expansion > 0)
    }

    /// What ran, for the answer.
    package static func applied(_ wanted: Reranking, companion: StoreReranking?, diffused: Bool) -> Reranking {
        Reranking(augmentation: companion?.built.augmentation ?? 0, expansion: wanted.expansion,
                  diffusion: diffused ? wanted.diffusion : 0, alpha: wanted.alpha)
    }

    /// The content hash of an image this source has met (every answer's images are).
    package func hash(of key: Int64) -> String? { hashes.withLock { $0[key] } }

    private var ranked: MilvusStore { companion?.companion ?? library }

    package func start(of id: Int64) async throws -> LibraryStart? {
        guard let queryHash, StoreLibrary.key(hash: queryHash) == id else { return nil }
        // Whether a label restriction admits the image itself is known only if a search finds it.
        let admitted = filter == nil
        guard let companion else { return LibraryStart(vector: nil, diffusible: false, admitted: admitted) }
        let rows = try await companion.companion.query(filter: "hash == \(MilvusStore.literal(queryHash))",
                                                       fields: ["vector", "neighbours", "degree"], limit: 16)
        guard let row = rows.min(by: { ($0["id"].flatMap(MilvusStore.int64) ?? 0) < ($1["id"].flatMap(MilvusStore.int64) ?? 0) }) else {
            return LibraryStart(vector: nil, diffusible: false, admitted: admitted)
        }
        let facts = StoreReranking.facts(row)
        return LibraryStart(vector: MilvusStore.floats(row["vector"]), diffusible: facts != nil && companion.built.diffusion > 0,
                            facts: facts, admitted: admitted)
    }

    package func nearest(_ vector: [Float], k: Int, excluding: Set<Int64>, vectors: Bool, facts: Bool) async throws -> [RankedCandidate] {
        var fields = ["hash"]
        if vectors { fields.append("vector") }
        guard facts else { return try await search(ranked, vector, k: k, excluding: excluding, fields: fields) }
        // Diffusion reads the facts of its candidates only; a longer answer (an evaluation's)
        // continues with the scan's order, read without them.
        let head = try await search(ranked, vector, k: min(k, DiffusionGraph.candidates), excluding: excluding,
                                    fields: fields + ["neighbours", "degree"])
        guard k > head.count, head.count == DiffusionGraph.candidates else { return head }
        let all = try await search(ranked, vector, k: k, excluding: excluding, fields: fields)
        let inHead = Set(head.map(\.id))
        return head + all.filter { !inHead.contains($0.id) }.prefix(k - head.count)
    }

    package func listedNeighbours(of id: Int64, count: Int) async throws -> [RankedCandidate]? { nil }

    package func nearestRaw(_ vector: [Float], k: Int, excluding: Set<Int64>) async throws -> [RankedCandidate] {
        try await search(library, vector, k: k, excluding: excluding, fields: ["hash", "vector"])
    }

    package func vectors(_ ids: [Int64], raw: Bool) async throws -> [Int64: [Float]] {
        let wanted = hashes.withLock { known in ids.compactMap { known[$0] } }
        var out: [Int64: [Float]] = [:]
        for row in try await (raw ? library : ranked).rows(hashes: wanted, fields: ["hash", "vector"]) {
            guard let hash = row["hash"] as? String, let key = StoreLibrary.key(hash: hash), out[key] == nil,
                  let v = MilvusStore.floats(row["vector"]) else { continue }
            out[key] = v
        }
        return out
    }

    /// The principal submatrix of the whole graph: the query's node and its candidates' nodes,
    /// rebuilt from their neighbour lists and degrees (the numbers the local library uses).
    package func diffusionGraph(query: Int64, start: LibraryStart, candidates: [RankedCandidate]) async throws -> DiffusionGraph? {
        guard let companion, let node = start.facts, companion.built.diffusion > 0 else { return nil }
        var ids: [Int64] = [query]
        var facts: [DiffusionGraph.NodeFacts] = [node]
        var seen: Set<Int64> = [query]
        for c in candidates.prefix(DiffusionGraph.candidates) {
            guard let f = c.facts, seen.insert(c.id).inserted else { continue }
            ids.append(c.id)
            facts.append(f)
        }
        return DiffusionGraph.subgraph(ids: ids, facts: facts, neighbours: companion.built.diffusion)
    }

    /// A store search as candidates: each image once (duplicate rows of one image, a race two
    /// workers can leave, answer as its first), `excluding` left out, the best `k`.
    private func search(_ store: MilvusStore, _ vector: [Float], k: Int, excluding: Set<Int64>,
                        fields: [String]) async throws -> [RankedCandidate] {
        let rows = try await store.searchRows(vector: vector, k: min(k + excluding.count, MilvusStore.queryWindow),
                                              fields: fields, filter: filter)
        var out: [RankedCandidate] = []
        var met: [Int64: String] = [:]
        for row in rows where out.count < k {
            guard let hash = row["hash"] as? String, let key = StoreLibrary.key(hash: hash), met[key] == nil,
                  !excluding.contains(key) else { continue }
            met[key] = hash
            out.append(RankedCandidate(id: key, similarity: StoreReranking.similarity(row), vector: MilvusStore.floats(row["vector"]),
                                       facts: StoreReranking.facts(row)))
        }
        hashes.withLock { $0.merge(met) { a, _ in a } }
        return out
    }
}
