// The `hnsw` index: a hierarchical navigable small-world graph (Malkov & Yashunin), through
// hnswlib (CHNSW). Descriptor `hnsw:M` (links per node, default 32; `hnsw:M:ef=E` sets the
// construction beam, default 200); the search beam is SearchParameters.efSearch (default 64).
// This is what a user would pick for speed at high recall. The graph keeps its own Float32 copy of
// the vectors (hnswlib routes by distances to stored points; faiss's IndexHNSWFlat does the same),
// so it costs D x 4 + about 2M x 4 bytes per image on top of the shared store, which still serves
// `reconstruct` and the re-rank of metrics the graph does not serve (chi2, manhattan, chebyshev:
// the best max(efSearch, 4k) by inner product are re-ranked exactly). Cosine and Euclidean are
// native (both monotonic in the dot product of unit vectors). Removal is hnswlib's markDelete: the
// node stays for routing and is skipped in results; `lookalike index` rebuilds the graph when
// tombstones reach a quarter (`needsCompaction`).
import CHNSW
import Dispatch
import Foundation
import LookalikeEngine

public final class HNSWIndex: VectorIndex, @unchecked Sendable {
    // The graph handle is guarded by `lock`: hnswlib searches run concurrently under the read
    // lock; add, markDelete and resize take the write lock.
    public static let methodName = "hnsw"
    public static let defaultM = 32
    /// 200, not hnswlib's usual 100: at 100 hnswlib's graph finds less per efSearch than faiss's
    /// (recall@10 0.9859 at efSearch 16 on 100k tiled Caltech vectors, faiss 0.9956; why is not
    /// settled, see docs/approximate-methods.md, "HNSW against faiss"). At 200 both reach nearly the
    /// same recall at every efSearch (within 0.005), and the build costs about 2.2x (same page).
    public static let defaultEfConstruction = 200
    public static let defaultEfSearch = 64

    public let descriptor: IndexDescriptor
    public let dimension: Int
    public let store: VectorStore
    private let ownsStore: Bool
    public let m: Int
    public let efConstruction: Int
    private let lock = ReadWriteLock()
    private let handle: OpaquePointer
    private var live = Set<Int64>()
    private var buildSeconds = 0.0

    public init(descriptor: IndexDescriptor, dimension: Int, store: VectorStore?) throws {
        let options = try DescriptorOptions(descriptor, allowedKeys: ["ef"], maxNumbers: 1)
        m = options.numbers.first ?? Self.defaultM
        efConstruction = options.int("ef") ?? Self.defaultEfConstruction
        guard (2...256).contains(m), (1...4096).contains(efConstruction) else {
            throw IndexError("hnsw index: M = \(m), ef = \(efConstruction); use M in 2...256 and ef in 1...4096 (hnsw:M[:ef=E])")
        }
        self.descriptor = descriptor
        self.dimension = dimension
        let rerank = try RerankStore(dimension: dimension, shared: store)
        self.store = rerank.store
        ownsStore = rerank.owned
        var error = [CChar](repeating: 0, count: 256)
        guard let h = lk_hnsw_create(dimension, 1024, m, efConstruction, 100, &error, error.count) else {
            throw IndexError("hnsw index: \(String(cString: error))")
        }
        handle = h
    }

    private init(descriptor: IndexDescriptor, dimension: Int, store: VectorStore, handle: OpaquePointer) throws {
        // Checked before any property is set: a throwing init must not run deinit (which frees the handle).
        let options = try DescriptorOptions(descriptor, allowedKeys: ["ef"], maxNumbers: 1)
        guard lk_hnsw_M(handle) == options.numbers.first ?? Self.defaultM, lk_hnsw_dim(handle) == dimension else {
            throw IndexError("hnsw graph has M = \(lk_hnsw_M(handle)) but its descriptor says \(descriptor.name)")
        }
        self.descriptor = descriptor
        self.dimension = dimension
        self.store = store
        ownsStore = false
        m = lk_hnsw_M(handle)
        efConstruction = lk_hnsw_ef_construction(handle)
        self.handle = handle
    }

    deinit { lk_hnsw_free(handle) }

    public var count: Int { lock.read { live.count } }
    public var nativeMetrics: Set<Metric> { [.cosine, .euclidean] }
    public var isTrained: Bool { true }
    public func train(_ vectors: [Float]) throws {}

    /// Tombstones in the graph.
    public var tombstones: Int { lock.read { lk_hnsw_deleted(handle) } }
    /// True when a quarter of the graph's nodes are tombstones: rebuild it from the store.
    public var needsCompaction: Bool { lock.read { let d = lk_hnsw_deleted(handle); return d > 64 && d * 4 > lk_hnsw_count(handle) } }

    public func add(ids: [Int64], vectors: [Float]) throws {
        guard vectors.count == ids.count * dimension else {
            throw IndexError("add: \(vectors.count) values for \(ids.count) vectors of dimension \(dimension)")
        }
        guard ids.allSatisfy({ $0 >= 0 }) else { throw IndexError("hnsw index: ids must be non-negative") }
        let started = Date()
        if ownsStore { try store.add(ids: ids, vectors: vectors) }
        try lock.write {
            var error = [CChar](repeating: 0, count: 256)
            let labels = ids.map { UInt64($0) }
            let threads = ProcessInfo.processInfo.activeProcessorCount
            guard lk_hnsw_add(handle, labels, vectors, ids.count, threads, &error, error.count) == 0 else {
                throw IndexError("hnsw index: \(String(cString: error))")
            }
            live.formUnion(ids)
            buildSeconds += Date().timeIntervalSince(started)
        }
    }

    @discardableResult
    public func remove(ids: Set<Int64>) -> Int {
        if ownsStore { store.remove(ids: ids) }
        return lock.write {
            var removed = 0
            for id in ids where id >= 0 && live.contains(id) {
                if lk_hnsw_mark_deleted(handle, UInt64(id)) == 1 { removed += 1 }
                live.remove(id)
            }
            return removed
        }
    }

    /// The nearest `want` live labels by inner product, nearest first.
    private func graphSearch(_ query: UnsafePointer<Float>, want: Int, ef: Int) throws -> [Neighbor] {
        var labels = [UInt64](repeating: 0, count: want)
        var distances = [Float](repeating: 0, count: want)
        var error = [CChar](repeating: 0, count: 256)
        let found = lk_hnsw_search(handle, query, want, max(ef, want), &labels, &distances, &error, error.count)
        guard found >= 0 else { throw IndexError("hnsw search: \(String(cString: error))") }
        return (0..<found).map { Neighbor(id: Int64(labels[$0]), distance: distances[$0]) }
    }

    public func search(batch queries: [Float], k: Int, parameters: SearchParameters) throws -> [[Neighbor]] {
        let m = try queryCount(queries)
        guard m > 0, k > 0 else { return Array(repeating: [], count: m) }
        let metric = parameters.metric ?? descriptor.metric
        let ef = parameters.efSearch ?? Self.defaultEfSearch
        let native = nativeMetrics.contains(metric)
        let one = { (qi: Int) throws -> [Neighbor] in
            try queries.withUnsafeBufferPointer { qb in
                guard let base = qb.baseAddress else { return [] }
                let q = base + qi * self.dimension
                return try self.lock.read {
                    let total = self.live.count
                    // Other metrics: a wider inner-product shortlist, re-ranked exactly below.
                    var want = native ? k : max(ef, parameters.candidates ?? 4 * k)
                    want += parameters.excluding.count
                    while true {
                        let found = try self.graphSearch(q, want: min(want, max(total, 1)), ef: ef)
                        let admitted = parameters.restricts ? found.filter { parameters.admits($0.id) } : found
                        // Too few left after the filter: widen the search (up to the whole graph).
                        if admitted.count >= (native ? k : min(k, total)) || want >= total {
                            if native {
                                return admitted.prefix(k).map { n in
                                    Neighbor(id: n.id, distance: metric == .cosine ? n.distance : max(0, 2 * n.distance).squareRoot())
                                }
                            }
                            let query = Array(UnsafeBufferPointer(start: q, count: self.dimension))
                            return self.store.rank(query, candidates: admitted.map(\.id), k: k, metric: metric, parameters: parameters)
                        }
                        want *= 4
                    }
                }
            }
        }
        return try BatchQueries.run(m, one)
    }

    public func reconstruct(_ id: Int64) -> [Float]? {
        lock.read { live.contains(id) } ? store.reconstruct(id) : nil
    }

    public var statistics: IndexStatistics {
        lock.read {
            IndexStatistics(count: live.count, structureBytes: lk_hnsw_memory_bytes(handle) + live.count * 16,
                            vectorBytes: store.vectorBytes, buildSeconds: buildSeconds)
        }
    }

    // MARK: file: the serialised graph (hnswlib's layout), tombstones included

    public func write(to url: URL, origin: FileOrigin) throws {
        try lock.read {
            let size = lk_hnsw_serialized_size(handle)
            var bytes = [UInt8](repeating: 0, count: size)
            var error = [CChar](repeating: 0, count: 256)
            guard lk_hnsw_serialize(handle, &bytes, size, &error, error.count) == 0 else {
                throw IndexError("hnsw index: \(String(cString: error))")
            }
            let header = IndexFileHeader(dimension: dimension, count: live.count, origin: origin,
                                         payloadBytes: size,
                                         fields: ["M": String(m), "efConstruction": String(efConstruction)])
            try IndexFile.write(to: url, tag: descriptor.description, header: header) { writer in
                try writer.append(array: bytes)
            }
        }
    }

    static func read(_ contents: IndexFile.Contents, store: VectorStore?) throws -> HNSWIndex {
        let source = contents.mapping.path
        let shared = try RerankStore.required(store, contents)
        var error = [CChar](repeating: 0, count: 256)
        guard let base = contents.payload.baseAddress,
              let h = lk_hnsw_deserialize(base, contents.payload.count, contents.header.dimension, &error, error.count) else {
            throw IndexError("\(source): \(String(cString: error))")
        }
        let index: HNSWIndex
        do {
            index = try HNSWIndex(descriptor: try contents.descriptor, dimension: contents.header.dimension, store: shared, handle: h)
        } catch {
            lk_hnsw_free(h)
            throw IndexError("\(source): \(error)")
        }
        // Live labels: every node not tombstoned.
        let total = lk_hnsw_count(h)
        var labels = [UInt64](repeating: 0, count: total)
        let liveCount = lk_hnsw_live_labels(h, &labels, total)
        index.live = Set(labels.prefix(liveCount).map { Int64($0) })
        guard index.live.count == contents.header.count else {
            throw IndexError("\(source): \(index.live.count) live nodes, header says \(contents.header.count)")
        }
        return index
    }
}
