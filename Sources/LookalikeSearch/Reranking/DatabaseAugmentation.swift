// Database-side augmentation kept in the catalogue: the writer (`lookalike index`) stores each
// image's augmented vector as embedding variant `dba:N` (with the neighbours it was computed from),
// so searches re-rank without recomputing anything and live libraries follow it like the raw
// vectors (journal + snapshot). Incremental: after a run only the touched images are recomputed:
// new ones, the images near a new one (its 2N nearest: the ones whose neighbour lists it may
// enter), and those whose neighbour list held an image that is gone. A journal pruned past the
// last refresh, or a first run, recomputes everything.
//
// Cost: one search of the raw vectors per recomputed image (exact here: O(library) each, so a
// full build is O(n^2 d): ~2 s for 10k images, hours at 1M; at that size the neighbours should
// come from an approximate index), plus a second copy of the vectors in memory when searching.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public enum DatabaseAugmentation {
    /// The embedding variant holding vectors augmented with `neighbours` neighbours and `alpha`.
    public static func variant(neighbours: Int, alpha: Double) -> String {
        // The fade (Reranking.neighbourhoodScale) is part of the name: vectors made before it, or
        // with another, are a different variant, recomputed by the next `index`.
        "dba:\(neighbours),alpha=\(alpha),fade=\(Reranking.neighbourhoodScale)"
    }

    static func counterKey(_ variant: String) -> String { "augmentation.\(variant).counter" }

    /// Above this many images a first (full) build with exact neighbours would take hours, so the
    /// writer skips it (searches then run without the augmentation and say so) until the
    /// neighbours come from an approximate index.
    public static let maximumFullBuild = 200_000

    public struct Refresh: Sendable, Codable {
        public var variant: String
        public var full: Bool
        public var recomputed: Int
        public var seconds: Double
        /// Why nothing was computed, when it was skipped.
        public var skipped: String? = nil
    }

    /// Brings the `variant` vectors in step with the raw ones in `raw` (which reflects the catalogue
    /// at `rawCounter`).
    @discardableResult
    public static func refresh(catalogue: Catalogue, model: ModelInfo, raw: VectorStore, rawCounter: Int64,
                               neighbours n: Int, alpha: Double) throws -> Refresh {
        let started = Date()
        let variant = variant(neighbours: n, alpha: alpha)
        let index = ExactIndex(store: raw, descriptor: IndexDescriptor(method: ExactIndex.methodName))
        var full = true
        var affected = Set<Int64>()
        if let last = try catalogue.fact(counterKey(variant)).flatMap(Int64.init),
           let changes = try catalogue.changes(after: last, model: model.id, variant: EmbeddingVariant.raw),
           try catalogue.vectorCount(model: model.id, variant: variant) > 0 {
            full = false
            affected = changes.added
            // Images near a new one may take it as a neighbour.
            let addedIds = Array(changes.added)
            for chunk in addedIds.chunked(256) {
                var queries: [Float] = []
                for id in chunk { if let v = raw.reconstruct(id) { queries.append(contentsOf: v) } }
                guard !queries.isEmpty else { continue }
                for found in try index.search(batch: queries, k: 2 * n + 1, parameters: SearchParameters()) {
                    affected.formUnion(found.map(\.id))
                }
            }
            // Images that used a removed (or replaced) one.
            affected.formUnion(try catalogue.imagesDerived(from: changes.removed.union(changes.added), variant: variant))
            affected = affected.filter { raw.contains($0) }
        } else {
            guard raw.count <= maximumFullBuild else {
                return Refresh(variant: variant, full: true, recomputed: 0, seconds: 0,
                               skipped: "\(raw.count) images: a full build with exact neighbours is O(n^2); skipped above \(maximumFullBuild)")
            }
            affected = Set(raw.liveIds)
        }
        let ordered = affected.sorted()
        for chunk in ordered.chunked(512) {
            var queries: [Float] = []
            var ids: [Int64] = []
            for id in chunk {
                guard let v = raw.reconstruct(id) else { continue }
                ids.append(id)
                queries.append(contentsOf: v)
            }
            guard !ids.isEmpty else { continue }
            let rows = try Reranker.augmentedRows(ids: ids, vectors: queries, store: raw, index: index, neighbours: n, alpha: alpha)
            try catalogue.storeDerived(rows.map { ($0.id, $0.vector, $0.neighbours) }, model: model.id, variant: variant)
        }
        // Our own writes moved the counter; the raw vectors did not change meanwhile (one writer),
        // so the augmentation is current as of the latest counter.
        var current = rawCounter
        if let later = try catalogue.changes(after: rawCounter, model: model.id, variant: EmbeddingVariant.raw), later.isEmpty {
            current = later.counter
        }
        try catalogue.setFact(counterKey(variant), String(current))
        return Refresh(variant: variant, full: full, recomputed: ordered.count, seconds: Date().timeIntervalSince(started))
    }
}
