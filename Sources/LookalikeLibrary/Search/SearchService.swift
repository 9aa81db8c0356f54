// Search over a live library, end to end: resolve the query, rank with the chosen method and metric,
// and present the results (path, label, tags, a score a person can read). Library queries exclude
// the query image itself unless asked to include it. Results whose image was deleted between the
// ranking and the presentation are dropped, never shown as unknown paths.
import Foundation
import LookalikeEngine

public struct SearchResult: Sendable, Codable {
    public let rank: Int
    public let id: Int64
    public let path: String
    public let label: String
    public let tags: String
    public let score: Float
    public let distance: Float
}

public struct SearchRequest: Sendable {
    public var k: Int
    public var metric: Metric
    public var method: IndexDescriptor
    public var includeSelf: Bool
    public var parameters: SearchParameters
    /// Re-ranking of cosine searches (other metrics rank plainly); applied where the library has
    /// the derived vectors it needs, and each answer says what was applied.
    public var reranking: Reranking

    public init(k: Int = 10, metric: Metric = .cosine, method: IndexDescriptor = IndexDescriptor(method: ExactIndex.methodName),
                includeSelf: Bool = false, parameters: SearchParameters = SearchParameters(),
                reranking: Reranking = .libraryDefault) {
        self.k = k
        self.metric = metric
        self.method = method
        self.includeSelf = includeSelf
        self.parameters = parameters
        self.reranking = reranking
    }
}

public struct SearchAnswer: Sendable, Codable {
    public let query: String
    public let queryId: Int64?
    public let metric: String
    public let method: String
    /// The re-ranking applied ("none", "dba:15+qe:10"...); scores stay raw cosine similarities.
    public let reranking: String
    /// Milliseconds ranking (and presenting) took.
    public let searchMilliseconds: Double
    /// Milliseconds decoding and embedding the query took (0 for library images).
    public let embedMilliseconds: Double
    public let results: [SearchResult]
}

public final class SearchService: Sendable {
    public let library: LiveLibrary
    public let resolver: QueryResolver

    public init(library: LiveLibrary, resolver: QueryResolver) {
        self.library = library
        self.resolver = resolver
    }

    /// A library with a resolver that loads the default engine on first need.
    public convenience init(catalogue: Catalogue, precision: StoragePrecision = .float32,
                            weightsURL: URL? = nil) throws {
        let library = try LiveLibrary(catalogue: catalogue, precision: precision)
        self.init(library: library, resolver: QueryResolver(library: library) { try Embedder(weightsURL: weightsURL) })
    }

    public var catalogue: Catalogue { library.catalogue }

    public func search(_ source: QuerySource, _ request: SearchRequest) async throws -> SearchAnswer {
        let query = try await resolver.resolve(source)
        let started = Date()
        var parameters = request.parameters
        if let id = query.imageId, !request.includeSelf { parameters.excluding.insert(id) }
        let (results, applied) = try rankExplained(vector: query.vector, libraryId: query.imageId, request: request, parameters: parameters)
        return SearchAnswer(query: query.summary, queryId: query.imageId, metric: request.metric.rawValue,
                            method: request.method.name, reranking: applied.description, searchMilliseconds: Date().timeIntervalSince(started) * 1000,
                            embedMilliseconds: query.embedMilliseconds, results: results)
    }

    /// Ranks the library against a query vector (L2-normalised) and presents the results.
    public func rank(vector: [Float], request: SearchRequest, parameters: SearchParameters? = nil) throws -> [SearchResult] {
        try rankExplained(vector: vector, libraryId: nil, request: request, parameters: parameters).0
    }

    /// Ranks and says which re-ranking was applied. A library image (`libraryId`) is searched
    /// with its augmented vector when the library has them.
    public func rankExplained(vector: [Float], libraryId: Int64?, request: SearchRequest,
                              parameters: SearchParameters? = nil) throws -> ([SearchResult], Reranking) {
        var parameters = parameters ?? request.parameters
        parameters.metric = request.metric
        let index = try library.index(for: request.method.with(metric: request.metric))
        if request.metric == .cosine && !request.reranking.isNone {
            let reranker = try Reranker(library: library, index: index, options: request.reranking,
                                        filter: parameters.filter, computeMissing: false)
            let neighbors = try reranker.search(vector: vector, libraryId: libraryId, k: request.k, parameters: parameters)
            return (try present(neighbors, metric: .cosine), reranker.options)
        }
        let neighbors = try index.search(vector, k: request.k, parameters: parameters)
        return (try present(neighbors, metric: request.metric), .none)
    }

    /// Paths, labels and readable scores for ranked neighbours.
    public func present(_ neighbors: [Neighbor], metric: Metric) throws -> [SearchResult] {
        let summaries = try catalogue.summaries(imageIds: neighbors.map(\.id))
        let dimension = library.model.dimension
        return neighbors.compactMap { n -> (Neighbor, ImageSummary)? in summaries[n.id].map { (n, $0) } }
            .enumerated().map { i, pair in
                let (n, s) = pair
                return SearchResult(rank: i + 1, id: n.id, path: s.path, label: s.label, tags: s.tags,
                                    score: metric.score(distance: n.distance, dimension: dimension), distance: n.distance)
            }
    }

    // Synchronous conveniences for library images and vectors (tests, evaluation).

    public func search(vector: [Float], k: Int, metric: Metric, excluding: Set<Int64> = [],
                       reranking: Reranking = .none) throws -> [SearchResult] {
        try rank(vector: vector, request: SearchRequest(k: k, metric: metric, reranking: reranking),
                 parameters: SearchParameters(excluding: excluding))
    }

    public func search(imageId: Int64, k: Int, metric: Metric, includeSelf: Bool = false,
                       reranking: Reranking = .none) throws -> [SearchResult] {
        guard let vector = try library.store.reconstruct(imageId) ?? catalogue.vector(imageId: imageId) else {
            throw QueryError(.notFound, "no image with id \(imageId) in \(catalogue.path)")
        }
        return try rankExplained(vector: vector, libraryId: imageId, request: SearchRequest(k: k, metric: metric, reranking: reranking),
                                 parameters: SearchParameters(excluding: includeSelf ? [] : [imageId])).0
    }

    public func search(path: String, k: Int, metric: Metric, includeSelf: Bool = false) throws -> [SearchResult] {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let id = try catalogue.imageId(path: absolute) else {
            throw QueryError(.notFound, "\(path) is not in the library \(catalogue.path)")
        }
        return try search(imageId: id, k: k, metric: metric, includeSelf: includeSelf)
    }
}
