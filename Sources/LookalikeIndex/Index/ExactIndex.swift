// The exact (brute-force) index: a scan of the whole vector store, so it serves all five metrics
// natively and is the ground truth the approximate methods are measured against. Descriptor
// `exact` (Float32 rows) or `exact:f16` (Float16 rows: half the memory, the same ranking to within
// rounding). Nothing is learned; its file is the store's rows.
import Foundation
import LookalikeEngine

public final class ExactIndex: VectorIndex {
    public static let methodName = "exact"
    public let descriptor: IndexDescriptor
    public let store: VectorStore
    private let built = Locked<Double>(0)

    /// An empty index; `exact:f16` stores Float16 rows.
    public init(descriptor: IndexDescriptor, dimension: Int) throws {
        self.descriptor = descriptor
        store = VectorStore(dimension: dimension, precision: try Self.precision(descriptor))
    }

    public convenience init(dimension: Int, precision: StoragePrecision = .float32, metric: Metric = .cosine) {
        let descriptor = IndexDescriptor(method: Self.methodName, options: precision == .float16 ? ["f16"] : [], metric: metric)
        self.init(store: VectorStore(dimension: dimension, precision: precision), descriptor: descriptor)
    }

    /// An index over an existing store (a library snapshot).
    public init(store: VectorStore, descriptor: IndexDescriptor) {
        self.store = store
        self.descriptor = descriptor
    }

    package static func precision(_ descriptor: IndexDescriptor) throws -> StoragePrecision {
        switch descriptor.options {
        case [], ["f32"]: return .float32
        case ["f16"]: return .float16
        default: throw IndexError("exact index: unknown options '\(descriptor.options.joined(separator: ":"))' (use exact or exact:f16)")
        }
    }

    public var dimension: Int { store.dimension }
    public var count: Int { store.count }
    public var precision: StoragePrecision { store.precision }
    public var nativeMetrics: Set<Metric> { Set(Metric.allCases) }
    public var isTrained: Bool { true }
    public var vectorBytes: Int { store.vectorBytes }

    public func train(_ vectors: [Float]) throws {}

    public func add(ids: [Int64], vectors: [Float]) throws {
        let started = Date()
        try store.add(ids: ids, vectors: vectors)
        let seconds = Date().timeIntervalSince(started)
        built.withLock { $0 += seconds }
    }

    @discardableResult
    public func remove(ids: Set<Int64>) -> Int { store.remove(ids: ids) }

    public func search(batch queries: [Float], k: Int, parameters: SearchParameters) throws -> [[Neighbor]] {
        _ = try queryCount(queries)
        return store.search(queries, k: k, metric: parameters.metric ?? descriptor.metric, parameters: parameters)
    }

    public func reconstruct(_ id: Int64) -> [Float]? { store.reconstruct(id) }

    public var statistics: IndexStatistics {
        IndexStatistics(count: store.count, structureBytes: 0, vectorBytes: store.vectorBytes, buildSeconds: built.value)
    }

    public func write(to url: URL, origin: FileOrigin) throws {
        try store.write(to: url, tag: descriptor.description, origin: origin)
    }

    static func read(_ contents: IndexFile.Contents) throws -> ExactIndex {
        let descriptor = try contents.descriptor
        let store = try VectorStore.load(contents, precision: try precision(descriptor))
        return ExactIndex(store: store, descriptor: descriptor)
    }
}
