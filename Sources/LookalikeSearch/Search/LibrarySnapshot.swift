// Search/ owns answering queries over a library: the snapshot of its vectors kept beside the
// catalogue (this file), the live library that follows the catalogue's changes (LiveLibrary), turning
// a query (file, URL, upload, id, path) into a vector (QueryResolver, ImageFetcher) and presenting
// ranked results (SearchService). The CLI and the server are thin callers of these.
//
// A snapshot is the library's raw vectors as one `IndexFile` (`<db>.indexes/vectors-raw.lkix`),
// with the catalogue's change counter and the model's checksum in its header and a SHA-256 at its
// end. Opening a library maps it (no copy, no SQLite read of every vector) and replays the journal
// after its counter. A snapshot that is missing, corrupt, of another model or older than the
// journal reaches is never trusted: the vectors are streamed from the catalogue instead. Only the
// writer (`lookalike index`) writes snapshots, and it rewrites one only when enough changed.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public enum LibrarySnapshot {
    /// Where a catalogue's snapshots and index files live.
    public static func folder(for catalogue: Catalogue) -> URL {
        catalogue.derivedFolder
    }

    public static func url(for catalogue: Catalogue, variant: String = EmbeddingVariant.raw) -> URL {
        folder(for: catalogue).appendingPathComponent("vectors-\(DerivedFiles.fileName(variant)).lkix")
    }

    static let tag = "exact"

    /// How a store was opened.
    public struct Opening: Sendable, Codable {
        /// "snapshot" or "catalogue".
        public var source: String
        /// Why the snapshot was not used (missing, corrupt, stale...), when it was not.
        public var snapshotProblem: String?
        public var counter: Int64
        /// The change counter the snapshot file itself records (nil when streamed from the catalogue):
        /// the journal must still reach it for readers to use the file.
        public var fileCounter: Int64? = nil
        public var replayedAdds: Int
        public var replayedRemovals: Int
        public var seconds: Double
    }

    /// The library's vectors: from the snapshot plus the journal when it is valid, else streamed
    /// from the catalogue. Never writes.
    static func openStore(catalogue: Catalogue, model: ModelInfo, precision: StoragePrecision,
                          variant: String = EmbeddingVariant.raw) throws -> (VectorStore, Opening) {
        let started = Date()
        let url = url(for: catalogue, variant: variant)
        var problem: String?
        if FileManager.default.fileExists(atPath: url.path) {
            do {
                let contents = try IndexFile.read(url, catalogue: catalogue.identity)
                let header = contents.header
                guard header.model == model.checksum, header.variant == variant, header.dimension == model.dimension else {
                    throw IndexError("snapshot was written for other vectors (model \(header.model?.prefix(12) ?? "?"), variant \(header.variant ?? "?"))")
                }
                guard let changes = try catalogue.changes(after: header.catalogueCounter, model: model.id, variant: variant) else {
                    throw IndexError("snapshot (change \(header.catalogueCounter)) is older than the change journal reaches")
                }
                let store = try VectorStore.load(contents, precision: precision)
                try apply(changes, to: store, catalogue: catalogue, model: model, variant: variant)
                return (store, Opening(source: "snapshot", snapshotProblem: nil, counter: changes.counter,
                                       fileCounter: header.catalogueCounter,
                                       replayedAdds: changes.added.count, replayedRemovals: changes.removed.count,
                                       seconds: Date().timeIntervalSince(started)))
            } catch {
                problem = String(describing: error)
            }
        } else {
            problem = "no snapshot yet"
        }
        let (store, counter) = try streamStore(catalogue: catalogue, model: model, precision: precision, variant: variant)
        return (store, Opening(source: "catalogue", snapshotProblem: problem, counter: counter, replayedAdds: 0,
                               replayedRemovals: 0, seconds: Date().timeIntervalSince(started)))
    }

    /// Every vector streamed from the catalogue into a new store. The counter is read first: the
    /// changes after it are replayed later, and replaying a change already included is harmless.
    static func streamStore(catalogue: Catalogue, model: ModelInfo, precision: StoragePrecision,
                            variant: String) throws -> (VectorStore, Int64) {
        let counter = try catalogue.changeCounter()
        let store = VectorStore(dimension: model.dimension, precision: precision)
        store.reserveCapacity(try catalogue.vectorCount(model: model.id, variant: variant))
        try catalogue.forEachVectorBatch(model: model.id, variant: variant, dimension: model.dimension) { ids, rows in
            try store.add(ids: ids, vectors: Array(rows))
        }
        return (store, counter)
    }

    /// Applies net journal changes to a store (removals, then new or replaced vectors).
    static func apply(_ changes: CatalogueChanges, to store: VectorStore, catalogue: Catalogue, model: ModelInfo,
                      variant: String) throws {
        store.remove(ids: changes.removed)
        guard !changes.added.isEmpty else { return }
        try catalogue.forEachVectorBatch(model: model.id, variant: variant, dimension: model.dimension,
                                         ids: Array(changes.added)) { ids, rows in
            try store.add(ids: ids, vectors: Array(rows))
        }
    }

    /// What the writer did.
    public struct Refresh: Sendable, Codable {
        /// "written", "current" (nothing to do) or "deferred" (few changes: readers replay them).
        public var action: String
        public var reason: String
        public var count: Int
        public var counter: Int64
        public var seconds: Double
    }

    /// Rewrites the snapshot of `variant` when it is missing, invalid or `rewriteFraction` of the
    /// library changed since it (else readers replay the journal); returns what it did and the
    /// counter the snapshot now reflects. `opened` reuses a store the caller already opened.
    @discardableResult
    public static func refresh(catalogue: Catalogue, model: ModelInfo, variant: String = EmbeddingVariant.raw,
                               rewriteFraction: Double = 0.05, minimumChanges: Int = 1000, prune: Bool = true,
                               opened: (VectorStore, Opening)? = nil) throws -> Refresh {
        let started = Date()
        let url = url(for: catalogue, variant: variant)
        let (store, opening) = try opened ?? openStore(catalogue: catalogue, model: model, precision: .float32, variant: variant)
        let changed = opening.replayedAdds + opening.replayedRemovals
        var reason = opening.snapshotProblem ?? ""
        var result: Refresh?
        if opening.source == "snapshot" {
            // Kept, the file stays at its own counter: readers check that the journal reaches it, so
            // the journal after it is kept (replayed changes, or other variants' changes since).
            let fileCounter = opening.fileCounter ?? 0
            if changed == 0 {
                result = Refresh(action: "current", reason: "no changes since the snapshot", count: store.count,
                                 counter: fileCounter, seconds: 0)
            } else if changed < max(minimumChanges, Int(rewriteFraction * Double(store.count))) {
                result = Refresh(action: "deferred", reason: "\(changed) changes since the snapshot are replayed from the journal",
                                 count: store.count, counter: fileCounter, seconds: 0)
            } else {
                reason = "\(changed) changes since the snapshot"
            }
        }
        if result == nil {
            try store.write(to: url, tag: tag, origin: FileOrigin(catalogue: catalogue.identity, counter: opening.counter),
                            model: model.checksum, variant: variant)
            result = Refresh(action: "written", reason: reason, count: store.count, counter: opening.counter, seconds: 0)
        }
        guard var done = result else { throw IndexError("snapshot refresh produced no result") }
        if prune { try catalogue.pruneJournal(through: done.counter) }
        done.seconds = Date().timeIntervalSince(started)
        return done
    }

    /// What the writer did after a run.
    public struct Maintenance: Sendable, Codable {
        public var snapshot: Refresh
        public var augmentation: DatabaseAugmentation.Refresh?
        public var augmentedSnapshot: Refresh?
        public var diffusion: DiffusionGraph.Refresh? = nil
        /// Every image's re-ranked answer (made from the graph and the augmented vectors).
        public var answers: AnswerLists.Refresh? = nil
        /// Re-ranking variants and files no longer used, removed.
        public var removed: [String] = []
    }

    /// The writer's step after indexing: derived vectors (re-ranking) brought in step, snapshots of
    /// every variant refreshed, then the journal pruned up to the oldest snapshot's counter.
    /// `opened`: the raw store (Float32) and how it was opened, when the caller has it already.
    public static func maintain(catalogue: Catalogue, model: ModelInfo, reranking: Reranking,
                                opened alreadyOpened: (VectorStore, Opening)? = nil) throws -> Maintenance {
        var opened = try alreadyOpened ?? openStore(catalogue: catalogue, model: model, precision: .float32)
        var augmentation: DatabaseAugmentation.Refresh?
        var augmentedSnapshot: Refresh?
        if reranking.augmentation > 0 {
            augmentation = try DatabaseAugmentation.refresh(catalogue: catalogue, model: model, raw: opened.0,
                                                            rawCounter: opened.1.counter,
                                                            neighbours: reranking.augmentation, alpha: reranking.alpha(for: Descriptor(modelID: model.id)))
        }
        // Only derived vectors changed since the raw store was read (one writer): it is current.
        if let later = try catalogue.changes(after: opened.1.counter, model: model.id), later.isEmpty {
            opened.1.counter = later.counter
        }
        let snapshot = try refresh(catalogue: catalogue, model: model, prune: false, opened: opened)
        if let variant = augmentation?.variant, augmentation?.skipped == nil {
            augmentedSnapshot = try refresh(catalogue: catalogue, model: model, variant: variant, prune: false)
        }
        // Not past an index file's counter either: the writer stamped them before the augmented
        // vectors' changes of this run, and a file the journal no longer reaches is not used.
        try catalogue.pruneJournal(through: min(snapshot.counter, augmentedSnapshot?.counter ?? snapshot.counter,
                                                LibraryIndexes.oldestCounter(catalogue) ?? snapshot.counter))
        // The diffusion graph over what searches rank: the augmented vectors when stored, else the raw.
        var diffusion: DiffusionGraph.Refresh?
        if reranking.diffusion > 0 {
            var (ranked, variant) = (opened.0, EmbeddingVariant.raw)
            if let stored = augmentation?.variant, augmentation?.skipped == nil {
                (ranked, variant) = (try openStore(catalogue: catalogue, model: model, precision: .float32, variant: stored).0, stored)
            }
            diffusion = try DiffusionGraph.refresh(catalogue: catalogue, model: model, store: ranked, variant: variant,
                                                   neighbours: reranking.diffusion)
        }
        // The answer lists come last (they are made from everything above). Searches work without
        // them, so a failure here is reported, never a failed run.
        var answers: AnswerLists.Refresh?
        if let diffusion, diffusion.skipped == nil {
            do {
                answers = try AnswerLists.refresh(catalogue: catalogue, reranking: reranking)
            } catch {
                answers = AnswerLists.Refresh(file: "", images: 0, rebuilt: false, seconds: 0, skipped: "failed: \(error)")
            }
        }
        // What this re-ranking no longer uses goes: vectors of other re-ranking settings (made
        // before a change of the default, say) and the files made from them.
        let augmentedVariant = augmentation.flatMap { $0.skipped == nil ? $0.variant : nil }
        var removed = try catalogue.dropDerivedVariants(model: model.id, keeping: Set([augmentedVariant].compactMap { $0 }))
        removed += removeUnplannedFiles(catalogue: catalogue, keeping: [
            url(for: catalogue), augmentedVariant.map { url(for: catalogue, variant: $0) },
            diffusion.map { _ in DiffusionGraph.url(for: catalogue, variant: augmentedVariant ?? EmbeddingVariant.raw, neighbours: reranking.diffusion) },
            answers.map { _ in AnswerLists.url(for: catalogue, variant: augmentedVariant ?? EmbeddingVariant.raw) },
        ].compactMap { $0 })
        return Maintenance(snapshot: snapshot, augmentation: augmentation, augmentedSnapshot: augmentedSnapshot, diffusion: diffusion,
                           answers: answers, removed: removed)
    }

    /// Deletes the snapshots, graphs and answer lists beside the library that this run did not
    /// plan (other variants); approximate indexes and visual words are the user's and stay.
    static func removeUnplannedFiles(catalogue: Catalogue, keeping: [URL]) -> [String] {
        let folder = folder(for: catalogue)
        let kept = Set(keeping.map(\.lastPathComponent))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().filter { name in
            guard let kind = DerivedFiles.kind(of: name), ["vectors-", "diffusion-", "answers-"].contains(kind.prefix),
                  !kept.contains(name) else { return false }
            return (try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))) != nil
        }
    }
}
