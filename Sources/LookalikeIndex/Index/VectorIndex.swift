// Index/ owns the search structures, shaped after faiss's `Index`: every method is a `VectorIndex`
// made from a short descriptor string (`exact`, `exact:f16`, later `hash:64`, `hnsw:32`) by one
// factory, with the metric fixed in its descriptor, the same few verbs everywhere (train, add,
// remove, search a batch of queries, reconstruct a stored vector), statistics, and one file format
// whose leading tag lets the free function `readIndex(url:store:)` load any method. The stored
// vectors live in a `VectorStore` apart from the structures, so coarse methods re-rank their
// candidates against the one shared copy instead of each keeping its own.
import Foundation

/// What an index is: its method, the method's options and the metric it ranks by.
/// Text form: `method[:option...][,metric=NAME]`, e.g. `exact`, `exact:f16`, `exact,metric=chi2`.
public struct IndexDescriptor: Sendable, Hashable, CustomStringConvertible, Codable {
    public let method: String
    public let options: [String]
    public let metric: Metric

    public init(method: String, options: [String] = [], metric: Metric = .cosine) {
        self.method = method
        self.options = options
        self.metric = metric
    }

    /// Parses the text form; `metric` applies when the text names none.
    public init(parsing text: String, metric: Metric = .cosine) throws {
        var metric = metric
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        for extra in parts.dropFirst() {
            let pair = extra.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[0] == "metric", let m = Metric(rawValue: pair[1]) else {
                throw IndexError("index descriptor '\(text)': unknown setting '\(extra)' (expected metric=\(Metric.allCases.map(\.rawValue).joined(separator: "|")))")
            }
            metric = m
        }
        let head = (parts.first.map(String.init) ?? "").split(separator: ":").map(String.init)
        guard let method = head.first, !method.isEmpty else {
            throw IndexError("index descriptor '\(text)': empty method name")
        }
        self.init(method: method.lowercased(), options: Array(head.dropFirst()), metric: metric)
    }

    /// `exact:f16` (the metric is added only when it is not cosine).
    public var description: String {
        metric == .cosine ? name : name + ",metric=\(metric.rawValue)"
    }

    /// Method and options without the metric: `exact:f16`.
    public var name: String { ([method] + options).joined(separator: ":") }

    /// The same method and options with another metric.
    public func with(metric: Metric) -> IndexDescriptor {
        IndexDescriptor(method: method, options: options, metric: metric)
    }
}

/// Search-time settings (like faiss's SearchParameters: knobs are passed per search, not baked in).
public struct SearchParameters: Sendable {
    /// The metric to rank by; nil means the index's own. Methods that do not serve it natively
    /// re-rank their candidates against the vector store with it.
    public var metric: Metric?
    /// Ids never returned (e.g. the query image itself).
    public var excluding: Set<Int64>
    /// When set, only ids for which it returns true are returned (a label or folder restriction).
    public var filter: (@Sendable (Int64) -> Bool)?
    /// Coarse methods: how many candidates to re-rank exactly (method default when nil).
    public var candidates: Int?
    /// Graph methods: the search beam width (method default when nil).
    public var efSearch: Int?
    /// Bucket methods: how many nearby buckets to probe per table (method default when nil).
    public var probes: Int?

    public init(metric: Metric? = nil, excluding: Set<Int64> = [], filter: (@Sendable (Int64) -> Bool)? = nil,
                candidates: Int? = nil, efSearch: Int? = nil, probes: Int? = nil) {
        self.metric = metric
        self.excluding = excluding
        self.filter = filter
        self.candidates = candidates
        self.efSearch = efSearch
        self.probes = probes
    }

    /// True when `id` may be returned.
    @inlinable public func admits(_ id: Int64) -> Bool {
        !excluding.contains(id) && (filter?(id) ?? true)
    }

    var restricts: Bool { !excluding.isEmpty || filter != nil }
}

/// What an index costs.
public struct IndexStatistics: Sendable, Codable, Equatable {
    public var count: Int
    /// Bytes of the index's own structures (codes, graph, tables), not counting the shared vectors.
    public var structureBytes: Int
    /// Bytes of the vectors it reads (the shared store for coarse methods, its rows for exact).
    public var vectorBytes: Int
    /// Seconds spent in the last train + build.
    public var buildSeconds: Double

    public init(count: Int, structureBytes: Int, vectorBytes: Int, buildSeconds: Double) {
        self.count = count
        self.structureBytes = structureBytes
        self.vectorBytes = vectorBytes
        self.buildSeconds = buildSeconds
    }

    public var bytesPerImage: Double {
        count > 0 ? Double(structureBytes + vectorBytes) / Double(count) : 0
    }
}

public protocol VectorIndex: AnyObject, Sendable {
    var descriptor: IndexDescriptor { get }
    var dimension: Int { get }
    /// Vectors searchable now (removed ones excluded).
    var count: Int { get }
    /// Metrics ranked without a re-rank pass; others are re-ranked from the vector store.
    var nativeMetrics: Set<Metric> { get }
    /// False until `train` ran for methods that learn (flat methods are always trained).
    var isTrained: Bool { get }
    /// Learns what the method needs from sample vectors (`vectors.count / dimension` rows).
    func train(_ vectors: [Float]) throws
    /// Adds `ids.count` vectors, stored row after row in `vectors` (L2-normalised).
    func add(ids: [Int64], vectors: [Float]) throws
    /// Removes the given ids (unknown ids are ignored); returns how many were removed.
    @discardableResult func remove(ids: Set<Int64>) -> Int
    /// For each of the `queries.count / dimension` queries, the `k` nearest, nearest first.
    func search(batch queries: [Float], k: Int, parameters: SearchParameters) throws -> [[Neighbor]]
    /// The stored vector of `id` (Float32), nil when unknown.
    func reconstruct(_ id: Int64) -> [Float]?
    var statistics: IndexStatistics { get }
    /// Writes the index to `url` (atomically), in the `IndexFile` format with this method's tag.
    func write(to url: URL, origin: FileOrigin) throws
}

extension VectorIndex {
    /// One query.
    public func search(_ query: [Float], k: Int, parameters: SearchParameters = SearchParameters()) throws -> [Neighbor] {
        guard query.count == dimension else {
            throw IndexError("query has \(query.count) dimensions, the index \(dimension)")
        }
        return try search(batch: query, k: k, parameters: parameters).first ?? []
    }

    /// One query under `metric`, skipping `excluding`.
    public func search(_ query: [Float], k: Int, metric: Metric, excluding: Set<Int64> = []) throws -> [Neighbor] {
        try search(query, k: k, parameters: SearchParameters(metric: metric, excluding: excluding))
    }

    public func write(to url: URL) throws { try write(to: url, origin: .detached) }

    /// Checks a batch of queries' shape.
    func queryCount(_ queries: [Float]) throws -> Int {
        guard dimension > 0, queries.count % dimension == 0 else {
            throw IndexError("queries have \(queries.count) values, not a multiple of the index's \(dimension) dimensions")
        }
        return queries.count / dimension
    }
}

public struct IndexError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
