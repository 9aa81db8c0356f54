// Incremental, crash-safe indexing of folders into the catalogue. A run scans the folders, compares
// each file with what the catalogue knows (size + mtime, confirmed by a content hash when they
// differ), embeds only new content (decode and network pipelined over both cores by the engine),
// and commits results in small transactions as they arrive: a kill -9 loses at most the batch in
// flight, and the rerun picks up where it stopped with no duplicates. Paths whose content is already
// in the library are linked to it instead of embedded again.
import Dispatch
import Foundation
import LookalikeEngine

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
    public var failed: Int { failures.count }
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
    let catalogue: Catalogue
    let embedder: Embedder
    /// Results are committed when this many are pending, or `commitInterval` seconds passed.
    let batchSize: Int
    let commitInterval: Double

    public init(catalogue: Catalogue, embedder: Embedder, batchSize: Int = 64, commitInterval: Double = 1.0) {
        self.catalogue = catalogue
        self.embedder = embedder
        self.batchSize = batchSize
        self.commitInterval = commitInterval
    }

    public func run(roots: [String], prune: Bool = false,
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
        var knownHashes = try catalogue.knownHashes()
        let previousFailures = Dictionary(try catalogue.failures().map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })

        // 1. Classify by size + mtime; files that need a look get hashed (in parallel).
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
        let hashes = Self.hashAll(needHash, progress: progress)

        var items: [IndexedItem] = []
        var toEmbed: [(file: ScannedFile, hash: String)] = []
        var links: [IndexedItem] = []
        var pendingHashes = Set<String>()
        for (file, hashResult) in zip(needHash, hashes) {
            let hash: String
            switch hashResult {
            case .success(let h): hash = h
            case .failure(let error):
                let reason = "cannot read: \(error.localizedDescription)"
                summary.failures.append(IndexFailure(path: file.path, reason: reason))
                items.append(.failure(path: file.path, reason: reason, fileSize: file.fileSize, mtime: file.mtime))
                continue
            }
            let state = known[file.path]
            if let state, state.contentHash == hash {
                summary.unchanged += 1
                items.append(.touch(path: file.path, fileSize: file.fileSize, mtime: file.mtime))
                continue
            }
            if state != nil { summary.updated += 1 } else { summary.indexed += 1 }
            if knownHashes.contains(hash) || pendingHashes.contains(hash) {
                // Same bytes as an image already stored (or being embedded in this run): link after
                // the embeddings are committed.
                links.append(.link(path: file.path, label: file.label, fileSize: file.fileSize,
                                   mtime: file.mtime, contentHash: hash))
            } else {
                pendingHashes.insert(hash)
                toEmbed.append((file, hash))
            }
        }
        try catalogue.commit(items, model: model.id)

        // 2. Embed new content, committing as results arrive.
        let total = toEmbed.count
        let writer = BatchWriter(catalogue: catalogue, model: model.id, batchSize: batchSize,
                                 interval: commitInterval, total: total, started: Date(), progress: progress)
        let jobs = toEmbed
        embedder.embedFiles(jobs.map { $0.file.path }) { index, _, result in
            let (file, hash) = jobs[index]
            switch result {
            case .success(let (image, embedding)):
                let tags = embedding.top5.map { "\($0.name):\(String(format: "%.3f", $0.probability))" }.joined(separator: "; ")
                let norm = embedding.feature.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                writer.add(.newImage(path: file.path, label: file.label, fileSize: file.fileSize,
                                     mtime: file.mtime, contentHash: hash, width: image.width,
                                     height: image.height, tags: tags, vector: embedding.vector, norm: norm))
            case .failure(let error):
                writer.add(.failure(path: file.path, reason: Self.reason(error, path: file.path),
                                    fileSize: file.fileSize, mtime: file.mtime))
            }
        }
        try writer.flush()
        let writerState = writer.finish()
        for failure in writerState.failures { summary.failures.append(failure) }
        summary.embedded = writerState.stored
        // A file counted as new or updated whose embedding failed is a failure, not indexed.
        for failure in writerState.failures {
            if known[failure.path] != nil { summary.updated -= 1 } else { summary.indexed -= 1 }
        }
        if let error = writerState.error { throw error }

        // 3. Links (duplicates, renames) once their content is committed.
        knownHashes = try catalogue.knownHashes()
        let linkable = links.filter {
            if case let .link(_, _, _, _, hash) = $0 { return knownHashes.contains(hash) }
            return false
        }
        try catalogue.commit(linkable, model: model.id)
        for case let .link(path, _, size, mtime, hash) in links where !knownHashes.contains(hash) {
            // Its twin failed to decode, so this copy fails the same way.
            let reason = previousFailureReason(writerState.failures, hash: hash, jobs: jobs) ?? "content could not be decoded"
            summary.failures.append(IndexFailure(path: path, reason: reason))
            if known[path] != nil { summary.updated -= 1 } else { summary.indexed -= 1 }
            try catalogue.commit([.failure(path: path, reason: reason, fileSize: size, mtime: mtime)], model: model.id)
        }

        // 4. Files that are gone.
        let seen = Set(files.map(\.path))
        let rootPrefixes = roots.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let gone = known.keys.filter { path in
            !seen.contains(path)
                && rootPrefixes.contains(where: { path == $0 || path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") })
                && !FileManager.default.fileExists(atPath: path)
        }
        if prune {
            summary.removed = try catalogue.remove(paths: gone.sorted())
        } else {
            summary.missing = gone.count
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

    private func previousFailureReason(_ failures: [IndexFailure], hash: String,
                                       jobs: [(file: ScannedFile, hash: String)]) -> String? {
        guard let twin = jobs.first(where: { $0.hash == hash }) else { return nil }
        return failures.first(where: { $0.path == twin.file.path }).map { "same content as \(twin.file.path): \($0.reason)" }
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
        let results = ResultBox<Result<String, Error>>(count: files.count)
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: files.count) { i in
            let done = results.set(i, Result<String, Error> { try ContentHash.sha256(path: files[i].path) })
            progress?(IndexProgress(phase: .hashing, done: done, total: files.count,
                                    elapsed: Date().timeIntervalSince(started)))
        }
        return results.values
    }
}

/// Collects indexing results from the engine's callback thread and commits them in batches.
final class BatchWriter: @unchecked Sendable {
    private let lock = NSLock()
    private let catalogue: Catalogue
    private let model: String
    private let batchSize: Int
    private let interval: Double
    private let total: Int
    private let started: Date
    private let progress: (@Sendable (IndexProgress) -> Void)?
    private var pending: [IndexedItem] = []
    private var lastCommit = Date()
    private var done = 0
    private var stored = 0
    private var failures: [IndexFailure] = []
    private var error: Error?

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
        lock.lock()
        defer { lock.unlock() }
        pending.append(item)
        done += 1
        if case let .failure(path, reason, _, _) = item { failures.append(IndexFailure(path: path, reason: reason)) }
        if pending.count >= batchSize || Date().timeIntervalSince(lastCommit) >= interval {
            commitLocked()
        }
        progress?(IndexProgress(done: done, total: total, elapsed: Date().timeIntervalSince(started)))
    }

    func flush() throws {
        lock.lock()
        defer { lock.unlock() }
        commitLocked()
        if let error { throw error }
    }

    func finish() -> (stored: Int, failures: [IndexFailure], error: Error?) {
        lock.withLock { (stored, failures, error) }
    }

    private func commitLocked() {
        guard !pending.isEmpty, error == nil else { return }
        do {
            try catalogue.commit(pending, model: model)
            stored += pending.reduce(0) { count, item in
                if case .newImage = item { return count + 1 }
                return count
            }
            pending.removeAll(keepingCapacity: true)
            lastCommit = Date()
        } catch {
            self.error = error
        }
    }
}

/// Per-index result slots filled from a parallel loop.
final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [T?]
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    private var filled = 0
    /// Stores a value; returns how many slots are filled.
    @discardableResult
    func set(_ i: Int, _ value: T) -> Int {
        lock.withLock {
            storage[i] = value
            filled += 1
            return filled
        }
    }
    var values: [T] { lock.withLock { storage.compactMap { $0 } } }
}
