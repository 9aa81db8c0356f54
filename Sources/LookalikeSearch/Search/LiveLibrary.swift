// A library open for search that follows its catalogue: it opens from the snapshot (or the
// catalogue), then `refresh()` replays the journal's changes since its counter, so a long-running
// process (a server) sees images that another process (`lookalike index`) adds, changes or deletes
// within seconds, without a restart. Changes are applied in place under the store's write lock
// (searches hold its read lock and run concurrently with each other), and to every approximate
// index loaded so far (`index(for:)`: from its file beside the catalogue when valid, else built in
// memory, see LibraryIndexes); when the journal no longer reaches back to the counter, a fresh
// store is opened and swapped in atomically, and the indexes are opened again on demand.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public final class LiveLibrary: Sendable {
    public let catalogue: Catalogue
    public let model: ModelInfo
    /// The descriptor the library's vectors were made with (its model id names it).
    public let descriptor: Descriptor
    public let precision: StoragePrecision
    public let opening: LibrarySnapshot.Opening

    private struct Generation: Sendable {
        var store: VectorStore
        var exact: ExactIndex
        /// The re-ranking vectors (database-side augmentation) when the writer stored them.
        var augmented: VectorStore?
        var counter: Int64
        var lastCheck: Date
        /// Approximate indexes opened so far, by descriptor name (metric-free), and how.
        var indexes: [String: any VectorIndex] = [:]
        var openings: [String: LibraryIndexes.Opening] = [:]
    }
    /// The embedding variant of the augmented vectors searched with the default re-ranking.
    public let augmentedVariant: String?
    private let generation: Locked<Generation>
    /// Serialises refreshes (searches do not take it).
    private let refreshing = Locked<Void>(())
    /// The diffusion graph of the current vectors (rebuilt when the library changes), by key.
    private let diffusion = Locked(DiffusionState())
    /// The answer lists of the current images, by key (see `answerLists`).
    private let answers = Locked(AnswerListsState())
    private struct AnswerListsState: Sendable {
        var key = ""
        var lists: AnswerLists?
        var checked = Date.distantPast
        var loading = false
        /// The file's modification time and size when last read (unchanged: not read again).
        var file: String?
    }
    private struct DiffusionState: Sendable {
        var current: (key: String, graph: DiffusionGraph?)?
        /// The key a background rebuild is making.
        var building: String?
    }

    /// Opens the library at `catalogue` for search.
    public init(catalogue: Catalogue, precision: StoragePrecision = .float32) throws {
        guard let model = try catalogue.storedModel() else {
            throw CatalogueError("library \(catalogue.path) is empty: index a folder first (`lookalike index <folder>`)")
        }
        self.catalogue = catalogue
        self.model = model
        descriptor = Descriptor(modelID: model.id)
        self.precision = precision
        let (store, opening) = try LibrarySnapshot.openStore(catalogue: catalogue, model: model, precision: precision)
        self.opening = opening
        let defaults = Reranking.libraryDefault
        var variant: String?
        if defaults.augmentation > 0 {
            let v = DatabaseAugmentation.variant(neighbours: defaults.augmentation, alpha: defaults.alpha(for: descriptor))
            if try catalogue.vectorCount(model: model.id, variant: v) > 0 { variant = v }
        }
        augmentedVariant = variant
        let augmented = try variant.map { try LibrarySnapshot.openStore(catalogue: catalogue, model: model, precision: precision, variant: $0).0 }
        generation = Locked(Generation(store: store, exact: Self.exactIndex(store), augmented: augmented,
                                       counter: opening.counter, lastCheck: Date()))
    }

    /// The augmented vectors (current generation), when the library has them.
    public var augmented: VectorStore? { generation.value.augmented }

    /// The mutual `neighbours`-NN diffusion graph over `store` (this library's raw or augmented
    /// vectors), nil above `DiffusionGraph.maximumGraph` images: from memory, else from the file the
    /// writer keeps beside the snapshots, else built now in memory (seconds at 10k images; readers
    /// never write: `index` writes the file).
    /// A graph over other images than the current ones (the library changed since) is used while
    /// one rebuild runs in the background, so no search waits for it: images added since are then
    /// ranked by cosine alone, deleted ones are never shown.
    public func diffusionGraph(neighbours: Int, over store: VectorStore) throws -> DiffusionGraph? {
        let key = graphKey(neighbours: neighbours, over: store)
        let current = diffusion.value.current
        if let current, current.key == key { return current.graph }
        let variant = store === generation.value.augmented ? (augmentedVariant ?? EmbeddingVariant.raw) : EmbeddingVariant.raw
        let url = DiffusionGraph.url(for: catalogue, variant: variant, neighbours: neighbours)
        let model = self.model.checksum
        let identity = catalogue.identity
        // The file when it is over these images, else a graph built now (in memory only).
        @Sendable func upToDate(fingerprint: String, file: (graph: DiffusionGraph, fingerprint: String)?) throws -> DiffusionGraph? {
            if let file, file.fingerprint == fingerprint { return file.graph }
            return try DiffusionGraph.build(store: store, neighbours: neighbours)
        }
        // The library changed since the graph in memory: searches keep it (the fingerprint, a sort
        // of every id, is not taken on their path) while one background task brings it up to date.
        if let current, let stale = current.graph, current.key.hasSuffix(":\(neighbours)") {
            refreshInBackground(key) {
                try upToDate(fingerprint: DiffusionGraph.fingerprint(store),
                             file: DiffusionGraph.read(url, catalogue: identity, model: model, variant: variant, neighbours: neighbours))
            }
            return stale
        }
        let fingerprint = DiffusionGraph.fingerprint(store)
        let file = DiffusionGraph.read(url, catalogue: identity, model: model, variant: variant, neighbours: neighbours)
        if let file, file.fingerprint != fingerprint {
            // Kept in memory as the stale graph, so the next searches neither read the file again
            // nor take the fingerprint while the rebuild runs.
            diffusion.withLock { if $0.current == nil { $0.current = ("file:\(neighbours)", file.graph) } }
            refreshInBackground(key) { try upToDate(fingerprint: fingerprint, file: nil) }
            return file.graph
        }
        let graph = try upToDate(fingerprint: fingerprint, file: file)
        diffusion.withLock { $0.current = (key, graph) }
        return graph
    }

    /// The answer lists the writer made over `store`'s current images with `identity` (see
    /// AnswerLists), nil until they are read: the file is read off the caller's path the first time
    /// a key (these images, this re-ranking) is asked for, and looked at again every 2 s while it
    /// is missing or over other images (the writer makes it after the vectors a search sees).
    public func answerLists(over store: VectorStore, neighbours: Int, identity rerankingIdentity: String) -> AnswerLists? {
        // One reading of the generation: the key and the counter the file must have been made at.
        let at = generation.value.counter
        let key = graphKey(neighbours: neighbours, over: store, at: at) + "|" + rerankingIdentity
        let now = Date()
        let (found, load) = answers.withLock { s -> (AnswerLists?, Bool) in
            if s.key == key, let lists = s.lists { return (lists, false) }
            if s.key != key { s = AnswerListsState(key: key) }
            guard !s.loading, now.timeIntervalSince(s.checked) >= 2 else { return (nil, false) }
            s.loading = true
            s.checked = now
            return (nil, true)
        }
        guard load else { return found }
        let variant = store === generation.value.augmented ? (augmentedVariant ?? EmbeddingVariant.raw) : EmbeddingVariant.raw
        let url = AnswerLists.url(for: catalogue, variant: variant)
        let model = self.model.checksum
        let identity = catalogue.identity
        Task.detached(priority: .utility) { [weak self] in
            guard let self else { return }
            let stamp = (try? FileManager.default.attributesOfItem(atPath: url.path)).map {
                "\(($0[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)/\(($0[.size] as? Int) ?? 0)"
            }
            let seen = answers.withLock { $0.key == key ? $0.file : nil }
            var lists: AnswerLists?
            if let stamp, stamp != seen, let file = AnswerLists.read(url, catalogue: identity, model: model, variant: variant, reranking: rerankingIdentity),
               file.counter == at, file.fingerprint == DiffusionGraph.fingerprint(store) {
                lists = file
            }
            answers.withLock { s in
                guard s.key == key else { return }
                s.loading = false
                s.file = stamp
                if let lists { s.lists = lists }
            }
        }
        return nil
    }

    /// Names the graph over `store`'s images as they are now.
    /// `at`: the catalogue counter to name (default: the current generation's).
    private func graphKey(neighbours: Int, over store: VectorStore, at: Int64? = nil) -> String {
        "\(ObjectIdentifier(store).hashValue)@\(at ?? counter)/\(store.count):\(neighbours)"
    }

    /// Whether `graph` (from `diffusionGraph(neighbours:over:)`) is over the library's current
    /// images (not one kept while it is rebuilt), so its neighbour lists are the current ones.
    public func diffusionGraphIsCurrent(_ graph: DiffusionGraph?, neighbours: Int, over store: VectorStore) -> Bool {
        guard let graph, let current = diffusion.value.current else { return false }
        return current.key == graphKey(neighbours: neighbours, over: store) && current.graph === graph
    }

    /// Runs `make` once per key off the caller's thread and keeps what it made as the graph.
    private func refreshInBackground(_ key: String, _ make: @escaping @Sendable () throws -> DiffusionGraph?) {
        let start = diffusion.withLock { state -> Bool in
            guard state.building != key else { return false }
            state.building = key
            return true
        }
        guard start else { return }
        Task.detached(priority: .utility) { [weak self] in
            let graph = try? make()
            self?.diffusion.withLock { state in
                state.current = (key, graph)
                state.building = nil
            }
        }
    }

    private static func exactIndex(_ store: VectorStore) -> ExactIndex {
        ExactIndex(store: store, descriptor: IndexDescriptor(method: ExactIndex.methodName,
                                                             options: store.precision == .float16 ? ["f16"] : []))
    }

    /// The shared vector store (current generation).
    public var store: VectorStore { generation.value.store }
    /// The catalogue change the library reflects.
    public var counter: Int64 { generation.value.counter }
    public var count: Int { store.count }

    /// The index serving `descriptor`. Exact search is a scan of the shared store under any metric;
    /// the approximate methods are opened once (file or memory) and then kept in step by `refresh`.
    public func index(for descriptor: IndexDescriptor) throws -> any VectorIndex {
        let current = generation.value
        switch descriptor.method {
        case ExactIndex.methodName:
            _ = try ExactIndex.precision(descriptor)
            return ExactIndex(store: current.store, descriptor: descriptor.with(metric: descriptor.metric))
        default:
            guard IndexFactory.names.contains(descriptor.method) else {
                throw IndexError("unknown index method '\(descriptor.method)'; known: \(IndexFactory.names.joined(separator: ", "))")
            }
            if let open = current.indexes[descriptor.name] { return open }
            // Opening is serialised with refreshes, so no change can slip between the store and the index.
            return try refreshing.withLock { _ in
                let current = generation.value
                if let open = current.indexes[descriptor.name] { return open }
                let (index, opening) = try LibraryIndexes.open(descriptor, store: current.store, catalogue: catalogue, model: model)
                generation.withLock {
                    $0.indexes[descriptor.name] = index
                    $0.openings[descriptor.name] = opening
                }
                return index
            }
        }
    }

    /// How the approximate index `name` (e.g. "hnsw:32") was opened, nil when it was not.
    public func opening(ofIndex name: String) -> LibraryIndexes.Opening? { generation.value.openings[name] }

    /// Replays the catalogue's changes since the last refresh. With `ifOlderThan`, does nothing when
    /// the last look was more recent (cheap to call before every search). Returns the changes applied.
    @discardableResult
    public func refresh(ifOlderThan interval: TimeInterval = 0) throws -> CatalogueChanges? {
        try refreshing.withLock { _ in
            let current = generation.value
            if interval > 0 && Date().timeIntervalSince(current.lastCheck) < interval { return nil }
            let latest = try catalogue.changeCounter()
            if latest == current.counter {
                generation.withLock { $0.lastCheck = Date() }
                return nil
            }
            if let changes = try catalogue.changes(after: current.counter, model: model.id),
               let augmentedChanges = try augmentedVariant.map({ try catalogue.changes(after: current.counter, model: model.id, variant: $0) }) ?? CatalogueChanges(counter: changes.counter) {
                try LibrarySnapshot.apply(changes, to: current.store, catalogue: catalogue, model: model,
                                          variant: EmbeddingVariant.raw)
                if let variant = augmentedVariant, let augmented = current.augmented {
                    try LibrarySnapshot.apply(augmentedChanges, to: augmented, catalogue: catalogue, model: model, variant: variant)
                }
                for index in current.indexes.values {
                    try LibraryIndexes.apply(changes, to: index, catalogue: catalogue, model: model)
                }
                generation.withLock {
                    $0.counter = changes.counter
                    $0.lastCheck = Date()
                }
                return changes
            }
            // The journal was pruned past our counter: open afresh and swap.
            let (store, opening) = try LibrarySnapshot.openStore(catalogue: catalogue, model: model, precision: precision)
            let augmented = try augmentedVariant.map { try LibrarySnapshot.openStore(catalogue: catalogue, model: model, precision: precision, variant: $0).0 }
            generation.withLock { $0 = Generation(store: store, exact: Self.exactIndex(store), augmented: augmented,
                                                  counter: opening.counter, lastCheck: Date()) }
            return CatalogueChanges(counter: opening.counter)
        }
    }

    /// Follows the catalogue in the background, refreshing every `interval` seconds until cancelled.
    public func follow(every interval: TimeInterval = 1, onError: @escaping @Sendable (Error) -> Void = { _ in }) -> Task<Void, Never> {
        Task.detached { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(interval))
                guard let self else { return }
                do { try self.refresh() } catch { onError(error) }
            }
        }
    }
}
