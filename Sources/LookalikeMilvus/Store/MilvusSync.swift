// Pushes a local library into a Milvus collection, idempotently and crash-safely. The local
// catalogue is the worker's record (table remoteSent): an image is marked sent only after Milvus
// acknowledged its insert. Before inserting, the batch's hashes are looked up in Milvus, so an image
// another worker (or this one, killed between insert and mark) already sent is marked, not sent
// twice. Milvus reads are eventually consistent (Bounded staleness: a fresh insert is invisible to
// queries for up to a few seconds, and REST v1 takes no consistency level), so two workers pushing
// the same bytes at the same moment can both insert; the run therefore ends by waiting until its
// own inserts are visible, then deleting every duplicate of the hashes it touched except the row
// with the smallest id: every worker converges on the same survivor.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeSearch

public struct MilvusPushSummary: Sendable, Codable {
    public var store: String
    /// Rows inserted by this run.
    public var inserted = 0
    /// Images found already in the store (another worker, or an interrupted run), marked sent.
    public var alreadyThere = 0
    /// Images deleted from the store because they left the library (--prune).
    public var deleted = 0
    /// Duplicate rows removed (concurrent inserts of the same content).
    public var duplicatesRemoved = 0
    /// Images this library has in the store after the run.
    public var sent = 0
    public var seconds = 0.0
    /// Inserted vectors per second over the sending loop (lookups by hash and inserts, with
    /// `inFlight` requests at once).
    public var insertRate = 0.0
    /// What Milvus says about the collection: its index and metric.
    public var index = ""
}

public struct MilvusSync: Sendable {
    public let catalogue: Catalogue
    public let store: MilvusStore
    public let model: ModelInfo
    public var batchSize: Int
    /// Insert requests in flight at once.
    public var inFlight: Int
    /// Longest wait for the store to show this run's writes before reconciling.
    public var settleTimeout: Double

    public init(catalogue: Catalogue, store: MilvusStore, model: ModelInfo, batchSize: Int = 512, inFlight: Int = 2,
                settleTimeout: Double = 60) {
        self.catalogue = catalogue
        self.store = store
        self.model = model
        self.batchSize = max(1, batchSize)
        self.inFlight = max(1, inFlight)
        self.settleTimeout = settleTimeout
    }

    var key: String { store.address.description }

    public func push(prune: Bool, progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> MilvusPushSummary {
        let started = Date()
        var summary = MilvusPushSummary(store: key)
        let collection = try await store.prepare(model: model)
        summary.index = "\(collection.indexName ?? "?") (\(collection.metric ?? "?"))"
        let pending = try catalogue.unsentImageIds(store: key, model: model.id)
        var touched: [String] = []
        // Batches go in a sliding window of `inFlight` requests: Milvus parses each insert's JSON on
        // one core, so two requests at once keep both of a small server's cores busy.
        struct Sent: Sendable {
            let hashes: [String]
            let inserted: [String]
            let count: Int
        }
        let batches = pending.chunked(batchSize).map(Array.init)
        let loopStarted = Date()
        var done = 0
        try await withThrowingTaskGroup(of: Sent.self) { group in
            var next = 0
            func launch() throws {
                guard next < batches.count else { return }
                let ids = batches[next]
                next += 1
                let entities = try catalogue.remoteEntities(imageIds: ids, model: model.id)
                group.addTask { [store] in
                    let existing = try await store.ids(forHashes: entities.map(\.contentHash))
                    let missing = entities.filter { existing[$0.contentHash] == nil }
                    try await store.insert(missing)
                    return Sent(hashes: entities.map(\.contentHash), inserted: missing.map(\.contentHash), count: ids.count)
                }
            }
            for _ in 0..<inFlight { try launch() }
            while let sent = try await group.next() {
                // Marked only now that Milvus acknowledged: a kill before this line re-sends nothing
                // visible and leaves at most a duplicate that the reconcile step removes.
                try catalogue.markSent(store: key, hashes: sent.hashes)
                summary.inserted += sent.inserted.count
                summary.alreadyThere += sent.hashes.count - sent.inserted.count
                touched += sent.inserted
                done += sent.count
                progress?(done, pending.count)
                try launch()
            }
        }
        let inserting = Date().timeIntervalSince(loopStarted)
        if prune {
            let gone = try catalogue.sentButGone(store: key)
            if !gone.isEmpty {
                try await store.delete(hashes: gone)
                try catalogue.forgetSent(store: key, hashes: gone)
                summary.deleted = gone.count
                try await waitUntil("the deletions") { try await store.ids(forHashes: gone).isEmpty }
            }
        }
        if !touched.isEmpty {
            try await waitUntil("this run's inserts") { try await store.ids(forHashes: touched).count == Set(touched).count }
            let rows = try await store.ids(forHashes: touched)
            let extra = rows.values.flatMap { ids in ids.sorted().dropFirst() }
            if !extra.isEmpty {
                try await store.delete(ids: extra)
                summary.duplicatesRemoved = extra.count
                try await waitUntil("the duplicate removals") {
                    try await store.ids(forHashes: touched).values.allSatisfy { $0.count == 1 }
                }
            }
        }
        summary.sent = try catalogue.sentCount(store: key)
        summary.seconds = Date().timeIntervalSince(started)
        summary.insertRate = inserting > 0 ? Double(summary.inserted) / inserting : 0
        return summary
    }

    /// Polls `condition` until it holds (Milvus shows writes after its staleness bound).
    func waitUntil(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(settleTimeout)
        while true {
            if try await condition() { return }
            guard Date() < deadline else {
                throw StoreError(store: key, "\(what) did not become visible within \(Int(settleTimeout)) s")
            }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
    }
}
