// Batches in-library searches that arrive together into one matrix product. A server answering many
// clients at once would otherwise scan the whole vector store once per query (a memory-bound sgemv
// each); gathered into a batch, the store is read once for all of them (one sgemm), which is what
// keeps the tail latency low under load. The first query of a quiet moment waits `window` for
// company; while a batch runs, newcomers gather and go together in the next one, which under load
// waits a few milliseconds more for a bigger batch (see `drain`). At most
// `concurrency` batches run at once, on Dispatch threads (never on the callers' async executors).
// Queries share a scan when they search the same index object (same method, metric and vectors:
// the library's own, or the augmented vectors of re-ranking, whose two stages, query expansion and
// the final ranking, each go through here); queries with a filter (label / folder restriction) run
// alone. Each query's own exclusions (itself) are applied after the shared scan, which asks for
// enough extra neighbours. An exact scan large enough to be screened (VectorStore.screen) is split:
// the bf16 scan of the whole batch runs here, and each query's exact ranking of its few hundred
// candidates runs on the caller's own task, in parallel, so that only the scan is serialised (on
// 2 cores under load the batch thread was the bottleneck).
import Dispatch
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public final class SearchBatcher: Sendable {
    public let library: LiveLibrary
    public let window: Double
    public let maxBatch: Int
    public let concurrency: Int
    /// Under load, a batch waits up to `gatherSeconds` for `gatherQueries` queries (see `drain`).
    public let gatherQueries: Int
    public let gatherSeconds: Double

    struct Item: Sendable {
        let vector: [Float]
        let k: Int
        let index: any VectorIndex
        let parameters: SearchParameters
        let continuation: CheckedContinuation<Answer, Error>
    }

    /// What the batch thread hands back: the neighbours, or screened candidates for the caller to rank.
    enum Answer: Sendable {
        case neighbors([Neighbor])
        case screened(VectorStore, ScreenedCandidates)
    }

    private struct State: Sendable {
        var pending: [Item] = []
        var running = 0
        /// Queries answered and batches run (for statistics and tests).
        var queries = 0
        var batches = 0
        var largestBatch = 0
    }
    private let state = Locked(State())
    private let queue = DispatchQueue(label: "lookalike.search-batcher", qos: .userInitiated, attributes: .concurrent)

    /// `window`: seconds the first query waits for others (1 ms by default).
    public init(library: LiveLibrary, window: Double = 0.001, maxBatch: Int = 64, concurrency: Int = 2,
                gatherQueries: Int = 24, gatherSeconds: Double = 0.004) {
        self.library = library
        self.window = window
        self.maxBatch = max(1, maxBatch)
        self.concurrency = max(1, concurrency)
        self.gatherQueries = min(max(1, gatherQueries), self.maxBatch)
        self.gatherSeconds = max(0, gatherSeconds)
    }

    public struct Statistics: Sendable, Codable {
        public let queries: Int
        public let batches: Int
        public let largestBatch: Int
    }

    public var statistics: Statistics {
        let s = state.value
        return Statistics(queries: s.queries, batches: s.batches, largestBatch: s.largestBatch)
    }

    /// The `k` nearest neighbours of `vector` under `descriptor` in the library, batched with
    /// concurrent callers.
    public func search(_ vector: [Float], k: Int, descriptor: IndexDescriptor,
                       parameters: SearchParameters = SearchParameters()) async throws -> [Neighbor] {
        try await search(vector, k: k, in: try library.index(for: descriptor), parameters: parameters)
    }

    /// The `k` nearest neighbours of `vector` in `index`, batched with concurrent callers of the same
    /// index object.
    public func search(_ vector: [Float], k: Int, in index: any VectorIndex,
                       parameters: SearchParameters = SearchParameters()) async throws -> [Neighbor] {
        let answer: Answer = try await withCheckedThrowingContinuation { continuation in
            let item = Item(vector: vector, k: k, index: index, parameters: parameters, continuation: continuation)
            let start = state.withLock { s -> Bool in
                s.pending.append(item)
                guard s.running < concurrency else { return false }
                s.running += 1
                return true
            }
            if start {
                queue.asyncAfter(deadline: .now() + window) { self.drain() }
            }
        }
        switch answer {
        case .neighbors(let neighbors):
            return neighbors
        case .screened(let store, let candidates):
            let excluding = parameters.excluding
            return Array(store.rankScreened(candidates).lazy.filter { !excluding.contains($0.id) }.prefix(k))
        }
    }

    /// Runs batches until nothing is pending.
    private func drain() {
        var lastBatch = 0
        while true {
            // Under load (the last batch was big), gather a bigger one: a scan reads the whole
            // store whatever the batch size, so its cost per query falls with the batch (bf16
            // screening, 9,144 x 1280 rows, cold cache: 0.33 ms a query at 8 queries, 0.17 at 32),
            // and the CPU saved serves the other requests sooner. A lone query never waits here.
            if lastBatch >= max(2, gatherQueries / 3) {
                let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(gatherSeconds * 1e9)
                while state.withLock({ $0.pending.count }) < gatherQueries && DispatchTime.now().uptimeNanoseconds < deadline {
                    usleep(250)
                }
            }
            let batch = state.withLock { s -> [Item] in
                guard !s.pending.isEmpty else {
                    s.running -= 1
                    return []
                }
                let taken = Array(s.pending.prefix(maxBatch))
                s.pending.removeFirst(taken.count)
                s.batches += 1
                s.queries += taken.count
                s.largestBatch = max(s.largestBatch, taken.count)
                return taken
            }
            if batch.isEmpty { return }
            lastBatch = batch.count
            run(batch)
        }
    }

    private func run(_ batch: [Item]) {
        // Groups that can share one scan: the same index and metric, no filter. Exact indexes are
        // light views made per request, so theirs is the identity of the store they scan.
        struct Key: Hashable {
            let index: ObjectIdentifier
            let name: String
            let metric: Metric?
        }
        var groups: [Key: [Item]] = [:]
        var alone: [Item] = []
        for item in batch {
            if item.parameters.filter != nil {
                alone.append(item)
            } else {
                let object = (item.index as? ExactIndex).map { ObjectIdentifier($0.store) } ?? ObjectIdentifier(item.index)
                groups[Key(index: object, name: item.index.descriptor.name, metric: item.parameters.metric), default: []].append(item)
            }
        }
        for item in alone { answer([item]) }
        for (_, items) in groups { answer(items) }
    }

    private func answer(_ items: [Item]) {
        guard let first = items.first else { return }
        do {
            let index = first.index
            if items.count == 1 && !(index is ExactIndex && first.parameters.filter == nil) {
                let neighbors = try index.search(first.vector, k: first.k, parameters: first.parameters)
                first.continuation.resume(returning: .neighbors(neighbors))
                return
            }
            var queries: [Float] = []
            queries.reserveCapacity(items.count * index.dimension)
            for item in items {
                guard item.vector.count == index.dimension else {
                    throw IndexError("query has \(item.vector.count) dimensions, the index \(index.dimension)")
                }
                queries.append(contentsOf: item.vector)
            }
            // Enough neighbours for every query after its own exclusions are removed.
            let k = items.map { $0.k + $0.parameters.excluding.count }.max() ?? first.k
            var shared = SearchParameters(metric: first.parameters.metric)
            shared.candidates = first.parameters.candidates
            shared.efSearch = first.parameters.efSearch
            shared.probes = first.parameters.probes
            if let exact = index as? ExactIndex,
               let screened = exact.store.screen(queries, k: k, metric: shared.metric ?? exact.descriptor.metric, parameters: shared) {
                for (item, candidates) in zip(items, screened) {
                    item.continuation.resume(returning: .screened(exact.store, candidates))
                }
                return
            }
            let results = try index.search(batch: queries, k: k, parameters: shared)
            for (item, neighbors) in zip(items, results) {
                let kept = neighbors.lazy.filter { !item.parameters.excluding.contains($0.id) }.prefix(item.k)
                item.continuation.resume(returning: .neighbors(Array(kept)))
            }
        } catch {
            for item in items { item.continuation.resume(throwing: error) }
        }
    }
}
