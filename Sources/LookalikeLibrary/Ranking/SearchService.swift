// Search over a library: loads the catalogue's vectors into an index once, then answers queries
// (a vector from the engine, or an image already in the library by id or path) with ranked,
// described results. Library queries exclude the query image itself unless asked to include it.
import Foundation
import LookalikeEngine

public struct SearchResult: Sendable, Codable {
    public let rank: Int
    public let id: Int64
    public let path: String
    public let label: String
    public let score: Float
    public let distance: Float
}

public final class SearchService: Sendable {
    public let catalogue: Catalogue
    public let index: any VectorIndex
    public let model: ModelInfo
    public let loadSeconds: Double

    /// Loads every embedding of the library's model into an index of the given method.
    public init(catalogue: Catalogue, method: String = ExactIndex.methodName,
                precision: StoragePrecision = .float32) throws {
        let started = Date()
        guard let model = try catalogue.storedModel() else {
            throw CatalogueError("library \(catalogue.path) is empty: index a folder first (`lookalike index <folder>`)")
        }
        self.catalogue = catalogue
        self.model = model
        let index = try IndexMethods.make(method, dimension: model.dimension, precision: precision)
        let (ids, vectors) = try catalogue.loadVectors(model: model.id, dimension: model.dimension)
        try index.add(ids: ids, vectors: vectors)
        self.index = index
        self.loadSeconds = Date().timeIntervalSince(started)
    }

    /// Ranks the library against a query vector (L2-normalised).
    public func search(vector: [Float], k: Int, metric: Metric, excluding: Set<Int64> = []) throws -> [SearchResult] {
        let neighbors = try index.search(vector, k: k, metric: metric, excluding: excluding)
        let summaries = try catalogue.summaries(imageIds: neighbors.map(\.id))
        return neighbors.enumerated().map { i, n in
            let s = summaries[n.id]
            return SearchResult(rank: i + 1, id: n.id, path: s?.path ?? "?", label: s?.label ?? "",
                                score: metric.score(distance: n.distance, dimension: index.dimension), distance: n.distance)
        }
    }

    /// Ranks the library against one of its own images.
    public func search(imageId: Int64, k: Int, metric: Metric, includeSelf: Bool = false) throws -> [SearchResult] {
        guard let vector = try catalogue.vector(imageId: imageId) else {
            throw CatalogueError("no image with id \(imageId) in \(catalogue.path)")
        }
        return try search(vector: vector, k: k, metric: metric, excluding: includeSelf ? [] : [imageId])
    }

    /// Ranks the library against the image stored under `path`.
    public func search(path: String, k: Int, metric: Metric, includeSelf: Bool = false) throws -> [SearchResult] {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let id = try catalogue.imageId(path: absolute) else {
            throw CatalogueError("\(path) is not in the library \(catalogue.path)")
        }
        return try search(imageId: id, k: k, metric: metric, includeSelf: includeSelf)
    }
}
