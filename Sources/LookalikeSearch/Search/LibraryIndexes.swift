// The approximate indexes of a library (lsh, hash, hnsw), as files beside its catalogue
// (`<db>.indexes/<method>-<options>.lkix`, e.g. `hnsw-32.lkix`, `hash-64.lkix`) and in memory.
//
// Readers (search, serve) load a file when it is valid (checksum, tag, dimension), the journal
// still reaches back to its change counter and, for `hash`, it was built with the catalogue's
// current trained model; they then replay the journal's changes into it. Otherwise they build the
// index in memory from the shared vector store, and never write. The one writer (`lookalike
// index`, after a run; `prepare index`; `prepare hash`) brings every existing file up to date
// incrementally (adds and removes from the journal; an HNSW graph with a quarter tombstones, or an
// invalid file, is rebuilt) before the snapshot step prunes the journal, and `prepare index` creates
// new ones. A `hash` index uses the catalogue's trained model `hash:<bits>` when there is one; a
// writer without one trains PCA + ITQ and stores it there; a reader without one trains in memory.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public enum LibraryIndexes {
    /// File of the index `descriptor` (its metric is not part of it: structures are metric-free).
    public static func url(for catalogue: Catalogue, descriptor: IndexDescriptor) -> URL {
        LibrarySnapshot.folder(for: catalogue)
            .appendingPathComponent(DerivedFiles.fileName(descriptor.name) + ".lkix")
    }

    /// Index files present (the manifest's approximate indexes, not the other derived files).
    public static func existingFiles(_ catalogue: Catalogue) -> [URL] {
        let folder = LibrarySnapshot.folder(for: catalogue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { DerivedFiles.kind(of: $0)?.prefix.isEmpty == true }.sorted()
            .map { folder.appendingPathComponent($0) }
    }

    /// The smallest change counter of this catalogue's index files (nil: none), which the journal
    /// must still reach for readers to replay the changes since.
    static func oldestCounter(_ catalogue: Catalogue) -> Int64? {
        existingFiles(catalogue).compactMap { try? IndexFile.read($0, catalogue: catalogue.identity, verifyChecksum: false).header.catalogueCounter }.min()
    }

    /// The descriptor a file name stands for (`hnsw-32.lkix` -> hnsw:32), for files too damaged to read.
    static func descriptor(fileName: String) throws -> IndexDescriptor {
        try IndexDescriptor(parsing: String(fileName.dropLast(".lkix".count)).replacingOccurrences(of: "-", with: ":"))
    }

    /// How an index was opened.
    public struct Opening: Sendable, Codable {
        /// "file" or "memory".
        public var source: String
        /// Why the file was not used, when it was not.
        public var fileProblem: String?
        public var counter: Int64
        public var seconds: Double
    }

    /// An empty index for `descriptor` over `store`, with the catalogue's trained model for `hash`.
    static func makeIndex(_ descriptor: IndexDescriptor, store: VectorStore, catalogue: Catalogue,
                          model: ModelInfo) throws -> any VectorIndex {
        let index = try IndexFactory.make(descriptor.with(metric: .cosine), dimension: store.dimension, store: store)
        if let hash = index as? HashIndex, let trained = try catalogue.hashModel(name: HashModel.name(bits: hash.bits), model: model.id) {
            try hash.use(trained)
        }
        return index
    }

    /// Builds `descriptor` in memory from every vector of `store` (training it on them if needed).
    static func build(_ descriptor: IndexDescriptor, store: VectorStore, catalogue: Catalogue, model: ModelInfo,
                      trainedModel: HashModel? = nil) throws -> any VectorIndex {
        let index = try makeIndex(descriptor, store: store, catalogue: catalogue, model: model)
        if let hash = index as? HashIndex, let trainedModel, !hash.isTrained { try hash.use(trainedModel) }
        if !index.isTrained {
            var sample: [Float] = []
            store.forEachBatch { _, rows in sample.append(contentsOf: rows) }
            try index.train(sample)
        }
        try store.forEachBatch(8192) { ids, rows in try index.add(ids: ids, vectors: rows) }
        return index
    }

    /// The file's index when it can be trusted, caught up with the journal; throws the reason otherwise.
    static func load(_ url: URL, descriptor: IndexDescriptor, store: VectorStore, catalogue: Catalogue,
                     model: ModelInfo) throws -> (index: any VectorIndex, changes: CatalogueChanges) {
        guard FileManager.default.fileExists(atPath: url.path) else { throw IndexError("no index file yet") }
        let contents = try IndexFile.read(url, catalogue: catalogue.identity)
        guard try contents.descriptor.name == descriptor.name else {
            throw IndexError("\(url.path): holds \(contents.tag), expected \(descriptor.name)")
        }
        guard contents.header.dimension == store.dimension else {
            throw IndexError("\(url.path): \(contents.header.dimension) dimensions, the library has \(store.dimension)")
        }
        if descriptor.method == HashIndex.methodName {
            let bits = try HashIndex(descriptor: descriptor, dimension: store.dimension, store: store).bits
            let current = try catalogue.hashModel(name: HashModel.name(bits: bits), model: model.id)?.stamp
            guard contents.header.fields["trainedModel"] == current else {
                throw IndexError("\(url.path): built with trained model \(contents.header.fields["trainedModel"] ?? "none"), the catalogue has \(current ?? "none")")
            }
        }
        guard let changes = try catalogue.changes(after: contents.header.catalogueCounter, model: model.id) else {
            throw IndexError("\(url.path): index (change \(contents.header.catalogueCounter)) is older than the change journal reaches")
        }
        guard let read = try IndexFactory.methods[descriptor.method]?.read(contents, store) else {
            throw IndexError("\(url.path): unknown method \(descriptor.method)")
        }
        try apply(changes, to: read, catalogue: catalogue, model: model)
        return (read, changes)
    }

    /// Applies net journal changes to an index: removals, then new or replaced vectors (read from
    /// the catalogue, so an index may run ahead of a store; replaying a change twice is harmless).
    static func apply(_ changes: CatalogueChanges, to index: any VectorIndex, catalogue: Catalogue, model: ModelInfo) throws {
        if !changes.removed.isEmpty { index.remove(ids: changes.removed) }
        guard !changes.added.isEmpty else { return }
        try catalogue.forEachVectorBatch(model: model.id, variant: EmbeddingVariant.raw, dimension: model.dimension,
                                         ids: Array(changes.added)) { ids, rows in
            try index.add(ids: ids, vectors: Array(rows))
        }
    }

    /// For a reader: the file's index when valid, else one built in memory. Never writes.
    static func open(_ descriptor: IndexDescriptor, store: VectorStore, catalogue: Catalogue,
                     model: ModelInfo) throws -> (any VectorIndex, Opening) {
        let started = Date()
        let url = url(for: catalogue, descriptor: descriptor)
        do {
            let (index, changes) = try load(url, descriptor: descriptor, store: store, catalogue: catalogue, model: model)
            return (index, Opening(source: "file", fileProblem: nil, counter: changes.counter, seconds: Date().timeIntervalSince(started)))
        } catch {
            let counter = try catalogue.changeCounter()
            let index = try build(descriptor, store: store, catalogue: catalogue, model: model)
            return (index, Opening(source: "memory", fileProblem: String(describing: error), counter: counter,
                                   seconds: Date().timeIntervalSince(started)))
        }
    }

    /// What the writer did to one file.
    public struct Update: Sendable, Codable {
        public var file: String
        public var descriptor: String
        /// "current", "updated" (journal replayed), "rebuilt" (invalid, stale or compacted) or "built".
        public var action: String
        public var reason: String
        public var count: Int
        public var seconds: Double
    }

    /// The writer: brings every existing index file up to date (see the file comment). Runs before
    /// the snapshot step, which may prune the journal these files were replayed from. `store`: the
    /// library's current raw vectors when the caller has them open already.
    @discardableResult
    public static func update(catalogue: Catalogue, model: ModelInfo, store opened: VectorStore? = nil) throws -> [Update] {
        let files = existingFiles(catalogue)
        guard !files.isEmpty else { return [] }
        let store = try opened ?? LibrarySnapshot.openStore(catalogue: catalogue, model: model, precision: .float32).0
        return try files.map { url in
            let descriptor: IndexDescriptor
            if let contents = try? IndexFile.read(url, catalogue: nil, verifyChecksum: false), let d = try? contents.descriptor {
                descriptor = d
            } else {
                descriptor = try self.descriptor(fileName: url.lastPathComponent)
            }
            return try write(descriptor, store: store, catalogue: catalogue, model: model, rebuild: false)
        }
    }

    /// The writer: (re)builds the file of `descriptor` (`rebuild`), or brings it up to date.
    @discardableResult
    public static func build(_ descriptor: IndexDescriptor, catalogue: Catalogue, model: ModelInfo) throws -> Update {
        let (store, _) = try LibrarySnapshot.openStore(catalogue: catalogue, model: model, precision: .float32)
        return try write(descriptor, store: store, catalogue: catalogue, model: model, rebuild: true)
    }

    private static func write(_ descriptor: IndexDescriptor, store: VectorStore, catalogue: Catalogue, model: ModelInfo,
                              rebuild: Bool) throws -> Update {
        let started = Date()
        let url = url(for: catalogue, descriptor: descriptor)
        // The counter is read before the vectors: later changes are replayed by readers (harmless twice).
        let counter = try catalogue.changeCounter()
        var reason = rebuild ? "asked to build" : ""
        if !rebuild {
            do {
                let (index, changes) = try load(url, descriptor: descriptor, store: store, catalogue: catalogue, model: model)
                if let graph = index as? HNSWIndex, graph.needsCompaction {
                    reason = "\(graph.tombstones) tombstones: graph rebuilt"
                } else {
                    if !changes.isEmpty { try index.write(to: url, origin: FileOrigin(catalogue: catalogue.identity, counter: changes.counter)) }
                    return Update(file: url.lastPathComponent, descriptor: descriptor.name, action: changes.isEmpty ? "current" : "updated",
                                  reason: changes.isEmpty ? "no changes" : "+\(changes.added.count) -\(changes.removed.count) from the journal",
                                  count: index.count, seconds: Date().timeIntervalSince(started))
                }
            } catch {
                reason = String(describing: error)
            }
        }
        var trained: HashModel?
        if descriptor.method == HashIndex.methodName {
            let bits = try HashIndex(descriptor: descriptor, dimension: store.dimension, store: store).bits
            let name = HashModel.name(bits: bits)
            if try catalogue.hashModel(name: name, model: model.id) == nil {
                // The writer keeps what it learns: the encoder goes to the catalogue, so readers and
                // later images use the same codes.
                var sample: [Float] = []
                store.forEachBatch { _, rows in sample.append(contentsOf: rows) }
                let result = try ITQTrainer.train(vectors: sample, dimension: store.dimension, bits: bits)
                let model2 = HashModel(name: name, kind: "itq", encoder: result.encoder,
                                       summary: "PCA+ITQ on \(result.samples) vectors, variance kept \(String(format: "%.3f", result.explainedVariance))",
                                       trainedAt: Date())
                try catalogue.save(hashModel: model2, model: model.id)
                // Read back, so the stamp is the catalogue's (its dates have millisecond precision).
                trained = try catalogue.hashModel(name: name, model: model.id)
            }
        }
        let index = try build(descriptor, store: store, catalogue: catalogue, model: model, trainedModel: trained)
        try index.write(to: url, origin: FileOrigin(catalogue: catalogue.identity, counter: counter))
        return Update(file: url.lastPathComponent, descriptor: descriptor.name, action: rebuild ? "built" : "rebuilt",
                      reason: reason, count: index.count, seconds: Date().timeIntervalSince(started))
    }
}
