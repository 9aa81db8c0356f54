// Incremental, crash-safe indexing of folders into the catalogue. A run scans the folders, compares
// each file with what the catalogue knows (size + mtime, confirmed by a content hash when they
// differ), embeds only new content (decode and network pipelined over both cores by the engine),
// and commits results in small transactions as they arrive: a kill -9 loses at most the batch in
// flight, and the rerun picks up where it stopped with no duplicates. Paths whose content is already
// in the library are linked to it instead of embedded again.
import Dispatch
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeVerification

public struct IndexSummary: Sendable, Codable {
    public var scanned = 0
    public var indexed = 0
    public var unchanged = 0
    public var updated = 0
    public var removed = 0
    /// Files in the library that are gone from disk (removed only with --prune).
    public var missing = 0
    public var failures: [IndexFailure] = []
    /// Folders given to the run that do not exist.
    public var missingRoots: [String] = []
    public var seconds = 0.0
    public var embedded = 0
    /// Roots whose files --prune kept because the root looked unmounted (see `--force`).
    public var protectedRoots: [ProtectedRoot] = []
    /// Images indexed earlier whose photo facts were read in this run.
    public var metadataFilled = 0
    /// What happened to the snapshots and derived vectors after the run.
    public var maintenance: LibrarySnapshot.Maintenance?
    /// What happened to the approximate index files beside the catalogue (those that exist).
    public var indexes: [LibraryIndexes.Update] = []
    /// What happened to the library's local features (visual words) here, when few enough changed.
    public var visualWords: VisualWordIndex.BuildSummary?
    /// Images whose local features are still to make (or 1 when the file holds removed images):
    /// the background job's work (`LocalFeaturesJob`), which the command line starts.
    public var localFeaturesPending = 0
    public var failed: Int { failures.count }
}

public struct ProtectedRoot: Sendable, Codable {
    public let root: String
    public let files: Int
    public let reason: String
}

public struct IndexFailure: Sendable, Codable {
    public let path: String
    public let reason: String
}

/// Progress events for the interface to draw.
public struct IndexProgress: Sendable {
    public enum Phase: String, Sendable { case hashing, embedding }
    public var phase: Phase = .embedding
    public let done: Int
    public let total: Int
    public let elapsed: Double
    public var rate: Double { elapsed > 0 ? Double(done) / elapsed : 0 }
    public var eta: Double? { rate > 0 ? Double(total - done) / rate : nil }
}

public final class Indexer: Sendable {
    public let catalogue: Catalogue
    let embedder: Embedder
    /// Results are committed when this many are pending, or `commitInterval` seconds passed.
    let batchSize: Int
    let commitInterval: Double
    /// Rewrite the library snapshot after a run (the indexer is the one writer of derived files).
    let writesSnapshot: Bool
    /// The re-ranking whose derived vectors (database-side augmentation) the run keeps in step.
    let reranking: Reranking

    public init(catalogue: Catalogue, embedder: Embedder, batchSize: Int = 64, commitInterval: Double = 1.0,
                writesSnapshot: Bool = true, reranking: Reranking = .libraryDefault) {
        self.catalogue = catalogue
        self.embedder = embedder
        self.batchSize = batchSize
        self.commitInterval = commitInterval
        self.writesSnapshot = writesSnapshot
        self.reranking = reranking
    }

    /// What the run knows after looking at the files: what to embed, what to link, what failed.
    struct Plan {
        var items: [IndexedItem] = []
        var toEmbed: [(file: ScannedFile, hash: String)] = []
        var links: [IndexedItem] = []
    }

    public func run(roots: [String], prune: Bool = false, force: Bool = false,
                    progress: (@Sendable (IndexProgress) -> Void)? = nil) throws -> IndexSummary {
        let started = Date()
        let model = embedder.model
        try catalogue.adopt(model: model)
        var run = try catalogue.beginRun(roots: roots)
        var summary = IndexSummary()

        let excluded: Set<String> = Set(["", "-wal", "-shm", "-journal"].map {
            URL(fileURLWithPath: catalogue.path + $0).standardizedFileURL.path
        })
        let (files, missingRoots) = FolderScanner.scan(roots, skipping: excluded)
        summary.missingRoots = missingRoots
        summary.scanned = files.count
        let known = try catalogue.fileStates()

        let plan = try classify(files, known: known, summary: &summary, progress: progress)
        try catalogue.commit(plan.items, model: model.id)
        let failed = try embed(plan.toEmbed, known: known, summary: &summary, progress: progress)
        try link(plan.links, known: known, failedTwins: failed, jobs: plan.toEmbed, summary: &summary)
        try forgetGone(files: files, roots: roots, known: known, prune: prune, force: force, summary: &summary)
        summary.metadataFilled = try fillMetadata()

        if writesSnapshot {
            // Index files first: the snapshot step may prune the journal they are replayed from.
            // Both work from one opened store (opening verifies the whole snapshot: 5 GB at 1M).
            let opened = try LibrarySnapshot.openStore(catalogue: catalogue, model: model, precision: .float32)
            summary.indexes = try LibraryIndexes.update(catalogue: catalogue, model: model, store: opened.0)
            summary.maintenance = try LibrarySnapshot.maintain(catalogue: catalogue, model: model, reranking: reranking,
                                                               opened: opened)
            // The words only add candidates to verified searches: a failure to update them is
            // reported, never a failed run (the catalogue and vectors above are already stored).
            do {
                (summary.visualWords, summary.localFeaturesPending) = try VisualWordIndex.refresh(catalogue: catalogue, liveIds: opened.0.liveIds)
            } catch {
                summary.failures.append(IndexFailure(path: VisualWordIndex.url(for: catalogue).path,
                                                     reason: "visual words not updated: \(error)"))
            }
        }
        summary.seconds = Date().timeIntervalSince(started)
        run.indexed = summary.indexed
        run.unchanged = summary.unchanged
        run.updated = summary.updated
        run.removed = summary.removed
        run.failed = summary.failed
        try catalogue.finish(run: run)
        summary.failures.sort { $0.path < $1.path }
        return summary
    }

    /// 1. Classifies by size + mtime; files that need a look get hashed (in parallel) and sorted into
    /// unchanged (touch), new content (embed) and known content (link).
    func classify(_ files: [ScannedFile], known: [String: FileState], summary: inout IndexSummary,
                  progress: (@Sendable (IndexProgress) -> Void)?) throws -> Plan {
        let knownHashes = try catalogue.knownHashes()
        let previousFailures = Dictionary(try catalogue.failures().map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var needHash: [ScannedFile] = []
        for file in files {
            if let state = known[file.path], state.fileSize == file.fileSize, state.mtime == file.mtime {
                summary.unchanged += 1
            } else if let failure = previousFailures[file.path], failure.fileSize == file.fileSize,
                      failure.mtime == file.mtime {
                // Failed before and unchanged since: the decoder would fail the same way.
                summary.failures.append(IndexFailure(path: file.path, reason: failure.reason))
            } else {
                needHash.append(file)
            }
        }
        var plan = Plan()
        var pendingHashes = Set<String>()
        for (file, hashResult) in zip(needHash, Self.hashAll(needHash, progress: progress)) {
            let hash: String
            switch hashResult {
            case .success(let h): hash = h
            case .failure(let error):
                let reason = "cannot read: \(error.localizedDescription)"
                summary.failures.append(IndexFailure(path: file.path, reason: reason))
                plan.items.append(.failure(path: file.path, reason: reason, fileSize: file.fileSize, mtime: file.mtime))
                continue
            }
            let state = known[file.path]
            if let state, state.contentHash == hash {
                summary.unchanged += 1
                plan.items.append(.touch(path: file.path, fileSize: file.fileSize, mtime: file.mtime))
                continue
            }
            if state != nil { summary.updated += 1 } else { summary.indexed += 1 }
            if knownHashes.contains(hash) || pendingHashes.contains(hash) {
                // Same bytes as an image already stored (or being embedded in this run): link after
                // the embeddings are committed.
                plan.links.append(.link(path: file.path, label: file.label, fileSize: file.fileSize,
                                        mtime: file.mtime, contentHash: hash))
            } else {
                pendingHashes.insert(hash)
                plan.toEmbed.append((file, hash))
            }
        }
        return plan
    }

    /// 2. Embeds new content, committing as results arrive; returns the failures.
    func embed(_ jobs: [(file: ScannedFile, hash: String)], known: [String: FileState], summary: inout IndexSummary,
               progress: (@Sendable (IndexProgress) -> Void)?) throws -> [IndexFailure] {
        let writer = BatchWriter(catalogue: catalogue, model: embedder.model.id, batchSize: batchSize,
                                 interval: commitInterval, total: jobs.count, started: Date(), progress: progress)
        embedder.embedFiles(jobs.map { $0.file.path }) { index, _, result in
            let (file, hash) = jobs[index]
            switch result {
            case .success(let (image, embedding)):
                let tags = embedding.top5.map { "\($0.name):\(String(format: "%.3f", $0.probability))" }.joined(separator: "; ")
                let norm = embedding.feature.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                writer.add(.newImage(path: file.path, label: file.label, fileSize: file.fileSize,
                                     mtime: file.mtime, contentHash: hash, width: image.width,
                                     height: image.height, tags: tags, vector: embedding.vector, norm: norm,
                                     metadata: image.metadata))
            case .failure(let error):
                writer.add(.failure(path: file.path, reason: Self.reason(error, path: file.path),
                                    fileSize: file.fileSize, mtime: file.mtime))
            }
        }
        try writer.flush()
        let state = writer.finish()
        summary.failures.append(contentsOf: state.failures)
        summary.embedded = state.stored
        // A file counted as new or updated whose embedding failed is a failure, not indexed.
        for failure in state.failures {
            if known[failure.path] != nil { summary.updated -= 1 } else { summary.indexed -= 1 }
        }
        if let error = state.error { throw error }
        return state.failures
    }

    /// 3. Links (duplicates, renames) once their content is committed; a copy whose twin failed
    /// to decode fails the same way.
    func link(_ links: [IndexedItem], known: [String: FileState], failedTwins: [IndexFailure],
              jobs: [(file: ScannedFile, hash: String)], summary: inout IndexSummary) throws {
        let knownHashes = try catalogue.knownHashes()
        let linkable = links.filter {
            if case let .link(_, _, _, _, hash) = $0 { return knownHashes.contains(hash) }
            return false
        }
        try catalogue.commit(linkable, model: embedder.model.id)
        for case let .link(path, _, size, mtime, hash) in links where !knownHashes.contains(hash) {
            let twin = jobs.first(where: { $0.hash == hash })
            let twinFailure = twin.flatMap { t in failedTwins.first(where: { $0.path == t.file.path }) }
            let reason = twinFailure.map { "same content as \(twin?.file.path ?? "?"): \($0.reason)" } ?? "content could not be decoded"
            summary.failures.append(IndexFailure(path: path, reason: reason))
            if known[path] != nil { summary.updated -= 1 } else { summary.indexed -= 1 }
            try catalogue.commit([.failure(path: path, reason: reason, fileSize: size, mtime: mtime)], model: embedder.model.id)
        }
    }

    /// 4. Files that are gone: counted, or removed with `prune`. A root that is missing,
    /// unreadable or suddenly empty while the library holds files under it looks like an unmounted
    /// drive, not a deletion: its files are kept unless `force`.
    func forgetGone(files: [ScannedFile], roots: [String], known: [String: FileState], prune: Bool, force: Bool,
                    summary: inout IndexSummary) throws {
        let seen = Set(files.map(\.path))
        func prefix(_ root: String) -> String {
            let p = URL(fileURLWithPath: root).standardizedFileURL.path
            return p.hasSuffix("/") ? p : p + "/"
        }
        func under(_ path: String, _ root: String) -> Bool {
            path == URL(fileURLWithPath: root).standardizedFileURL.path || path.hasPrefix(prefix(root))
        }
        var gone: [String] = []
        for root in roots {
            let candidates = known.keys.filter { under($0, root) && !seen.contains($0) && !FileManager.default.fileExists(atPath: $0) }
            guard !candidates.isEmpty else { continue }
            let rootPath = URL(fileURLWithPath: root).standardizedFileURL.path
            let present = FileManager.default.isReadableFile(atPath: rootPath)
            let scannedHere = files.contains { under($0.path, root) }
            if prune && !force && (!present || !scannedHere) {
                summary.protectedRoots.append(ProtectedRoot(
                    root: root, files: candidates.count,
                    reason: present ? "no images found under it any more" : "it is missing or unreadable"))
                summary.missing += candidates.count
                continue
            }
            gone.append(contentsOf: candidates)
        }
        if prune {
            summary.removed = try catalogue.remove(paths: Array(Set(gone)).sorted())
        } else {
            summary.missing += Set(gone).count
        }
    }

    /// 5. Photo facts (capture date, camera, GPS) for images indexed before the catalogue kept them:
    /// read from the file's header only (no decode, no re-embedding), committed in batches.
    func fillMetadata() throws -> Int {
        let pending = try catalogue.imagesWithoutMetadata()
        guard !pending.isEmpty else { return 0 }
        let results = Locked<[(Int64, PhotoMetadata)]>([])
        DispatchQueue.concurrentPerform(iterations: pending.count) { i in
            let (id, path) = pending[i]
            // A file that cannot be read now keeps its flag and is tried again next run; one that is
            // read but carries no EXIF gets empty facts.
            guard let facts = try? ImageDecoder.metadata(path: path) else {
                if !FileManager.default.fileExists(atPath: path) { return }
                results.withLock { $0.append((id, .empty)) }
                return
            }
            results.withLock { $0.append((id, facts)) }
        }
        let found = results.value
        for chunk in found.chunked(500) { try catalogue.storeMetadata(Array(chunk)) }
        return found.count
    }

    /// The error's message without the path prefix (the failures list shows the path already).
    static func reason(_ error: Error, path: String) -> String {
        let text = String(describing: error)
        for prefix in [path + ": ", URL(fileURLWithPath: path).lastPathComponent + ": "] where text.hasPrefix(prefix) {
            return String(text.dropFirst(prefix.count))
        }
        return text
    }

    /// SHA-256 of each file, in parallel, reporting progress as the "hashing" phase.
    static func hashAll(_ files: [ScannedFile], progress: (@Sendable (IndexProgress) -> Void)?) -> [Result<String, Error>] {
        let results = Locked<[Result<String, Error>?]>(Array(repeating: nil, count: files.count))
        let done = Locked(0)
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: files.count) { i in
            let result = Result<String, Error> { try ContentHash.sha256(path: files[i].path) }
            results.withLock { $0[i] = result }
            let count = done.withLock { n -> Int in n += 1; return n }
            progress?(IndexProgress(phase: .hashing, done: count, total: files.count,
                                    elapsed: Date().timeIntervalSince(started)))
        }
        return results.value.compactMap { $0 }
    }
}

/// Collects indexing results from the engine's callback thread and commits them in batches.
final class BatchWriter: Sendable {
    private struct State: Sendable {
        var pending: [IndexedItem] = []
        var lastCommit = Date()
        var done = 0
        var stored = 0
        var failures: [IndexFailure] = []
        var error: CatalogueError?
    }
    private let state = Locked(State())
    private let catalogue: Catalogue
    private let model: String
    private let batchSize: Int
    private let interval: Double
    private let total: Int
    private let started: Date
    private let progress: (@Sendable (IndexProgress) -> Void)?

    init(catalogue: Catalogue, model: String, batchSize: Int, interval: Double, total: Int, started: Date,
         progress: (@Sendable (IndexProgress) -> Void)?) {
        self.catalogue = catalogue
        self.model = model
        self.batchSize = batchSize
        self.interval = interval
        self.total = total
        self.started = started
        self.progress = progress
    }

    func add(_ item: IndexedItem) {
        let done = state.withLock { s -> Int in
            s.pending.append(item)
            s.done += 1
            if case let .failure(path, reason, _, _) = item { s.failures.append(IndexFailure(path: path, reason: reason)) }
            if s.pending.count >= batchSize || Date().timeIntervalSince(s.lastCommit) >= interval { commit(&s) }
            return s.done
        }
        progress?(IndexProgress(done: done, total: total, elapsed: Date().timeIntervalSince(started)))
    }

    func flush() throws {
        try state.withLock { s in
            commit(&s)
            if let error = s.error { throw error }
        }
    }

    func finish() -> (stored: Int, failures: [IndexFailure], error: CatalogueError?) {
        state.withLock { ($0.stored, $0.failures, $0.error) }
    }

    /// Commits under the state's lock, so batches reach the catalogue in order, one at a time.
    private func commit(_ s: inout State) {
        guard !s.pending.isEmpty, s.error == nil else { return }
        do {
            try catalogue.commit(s.pending, model: model)
            s.stored += s.pending.reduce(0) { count, item in
                if case .newImage = item { return count + 1 }
                return count
            }
            s.pending.removeAll(keepingCapacity: true)
            s.lastCommit = Date()
        } catch {
            s.error = CatalogueError("cannot save indexing results: \(error)")
        }
    }
}
