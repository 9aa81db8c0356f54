// Candidates from any method, ranked exactly over other vectors: faiss's IndexRefine. It is how an
// approximate method (hnsw, lsh, hash) composes with the library's re-ranking (an exact scan,
// exact:f16 included, scans the stored augmented vectors directly): the method finds the query's neighbourhood over the raw vectors it was
// built on (the augmented vectors are a weighted mean of each image and its nearest, so an image
// near the query after augmentation is near it before), then the `refinement` vectors (the stored
// augmented ones) rank `factor` times as many candidates as asked exactly. Without it, a search
// through an approximate method lost DBA and built a diffusion graph over the raw vectors on first
// use (63 % of its top 10 shared with the exact default on Caltech-101).
import Foundation
import LookalikeCatalogue
import LookalikeIndex

final class RefinedIndex: VectorIndex {
    let base: any VectorIndex
    let refinement: VectorStore
    /// Candidates taken from `base` per result asked, and at least `minimum` of them.
    let factor: Int
    let minimum: Int

    init(base: any VectorIndex, refinement: VectorStore, factor: Int = 4, minimum: Int = 100) {
        self.base = base
        self.refinement = refinement
        self.factor = factor
        self.minimum = minimum
    }

    var descriptor: IndexDescriptor { base.descriptor }
    var dimension: Int { base.dimension }
    var count: Int { refinement.count }
    var nativeMetrics: Set<Metric> { [.cosine] }
    var isTrained: Bool { true }

    func train(_ vectors: [Float]) throws {}
    // The two halves follow the library on their own (the live library updates both); a
    // refinement is a view over them and is never changed through itself.
    func add(ids: [Int64], vectors: [Float]) throws {
        throw IndexError("a refined index is a view over the library's indexes: add to those")
    }
    @discardableResult func remove(ids: Set<Int64>) -> Int { 0 }

    func search(batch queries: [Float], k: Int, parameters: SearchParameters) throws -> [[Neighbor]] {
        guard k > 0 else { return [] }
        var wide = parameters
        wide.metric = .cosine
        let found = try base.search(batch: queries, k: max(k * factor, minimum), parameters: wide)
        let d = dimension
        return found.enumerated().map { i, candidates in
            let query = Array(queries[(i * d)..<((i + 1) * d)])
            return refinement.rank(query, candidates: candidates.map(\.id), k: k, metric: .cosine, parameters: parameters)
        }
    }

    func reconstruct(_ id: Int64) -> [Float]? { refinement.reconstruct(id) }
    var statistics: IndexStatistics { base.statistics }

    func write(to url: URL, origin: FileOrigin) throws {
        throw IndexError("a refined index is a view over the library's indexes and is not written")
    }
}
