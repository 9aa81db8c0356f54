// The catalogue: the SQLite database (through GRDB, WAL mode) that holds the image library. It owns
// opening and migrating the file, the model check (a library built with one model's vectors is never
// mixed with another's), the atomic batch commit used by the indexer (every image, its paths and its
// embedding land in one transaction, so a kill -9 loses at most the batch in flight and never leaves
// half-written rows), pruning, and the read side used by search (vectors loaded in one pass).
import Foundation
import GRDB
import LookalikeEngine

public struct CatalogueError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What the catalogue knows about one file path, for incremental indexing.
public struct FileState: Sendable {
    public var fileId: Int64
    public var imageId: Int64
    public var fileSize: Int64
    public var mtime: Double
    public var contentHash: String
}

/// One outcome of indexing a file, committed in batches by `Catalogue.commit`.
public enum IndexedItem: Sendable {
    /// A file whose content is not in the library yet, with its embedding.
    case newImage(path: String, label: String, fileSize: Int64, mtime: Double, contentHash: String,
                  width: Int, height: Int, tags: String, vector: [Float], norm: Float)
    /// A file whose content is already in the library (a duplicate, or a rename).
    case link(path: String, label: String, fileSize: Int64, mtime: Double, contentHash: String)
    /// A file whose size or mtime changed but whose content did not.
    case touch(path: String, fileSize: Int64, mtime: Double)
    /// A file that could not be indexed.
    case failure(path: String, reason: String, fileSize: Int64, mtime: Double)
}

/// A library entry as search results show it: an image and its first path.
public struct ImageSummary: Sendable, Codable {
    public let imageId: Int64
    public let path: String
    public let label: String
    public let width: Int
    public let height: Int
}

public struct LibraryInfo: Sendable, Codable {
    public let databasePath: String
    public let databaseBytes: Int64
    public let images: Int
    public let files: Int
    public let labels: Int
    public let failures: Int
    public let model: String?
    public let modelChecksum: String?
    public let lastRun: IndexRunRecord?
}

public final class Catalogue: Sendable {
    public let path: String
    let pool: DatabasePool

    /// Opens (creating and migrating if needed) the library at `path`.
    /// `mustExist` makes a missing file an error instead of creating an empty library.
    public init(path: String, mustExist: Bool = false) throws {
        self.path = path
        if mustExist && !FileManager.default.fileExists(atPath: path) {
            throw CatalogueError("no library at \(path): build one with `lookalike index <folder> --db \(path)`")
        }
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            // NORMAL is durable across application crashes in WAL mode (only an OS crash can
            // drop the last transactions), and several times faster to commit than FULL.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try CatalogueMigrations.migrator.migrate(pool)
        } catch let error as DatabaseError {
            throw CatalogueError("cannot open library \(path): \(error.message ?? error.description)")
        }
    }

    // MARK: model

    static let modelKeys = (id: "model.id", checksum: "model.checksum", dimension: "model.dimension")

    public func storedModel() throws -> ModelInfo? {
        try pool.read { db in
            let meta = try MetaRecord.fetchAll(db)
            let values = Dictionary(meta.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            guard let id = values[Self.modelKeys.id], let checksum = values[Self.modelKeys.checksum],
                  let dim = values[Self.modelKeys.dimension].flatMap(Int.init) else { return nil }
            return ModelInfo(id: id, checksum: checksum, dimension: dim)
        }
    }

    /// Records `model` in an empty library, or refuses a library built with another model.
    public func adopt(model: ModelInfo) throws {
        if let stored = try storedModel() {
            try Self.check(stored: stored, against: model, path: path)
            return
        }
        try pool.write { db in
            try MetaRecord(key: Self.modelKeys.id, value: model.id).save(db)
            try MetaRecord(key: Self.modelKeys.checksum, value: model.checksum).save(db)
            try MetaRecord(key: Self.modelKeys.dimension, value: String(model.dimension)).save(db)
        }
    }

    /// Refuses to mix vectors of two models.
    public func verify(model: ModelInfo) throws {
        guard let stored = try storedModel() else { return }
        try Self.check(stored: stored, against: model, path: path)
    }

    static func check(stored: ModelInfo, against model: ModelInfo, path: String) throws {
        if stored.id != model.id || stored.checksum != model.checksum || stored.dimension != model.dimension {
            throw CatalogueError("""
                library \(path) was built with model \(stored.id) (weights \(stored.checksum.prefix(12)), \
                \(stored.dimension)-d) but the engine has \(model.id) (weights \(model.checksum.prefix(12)), \
                \(model.dimension)-d); vectors of different models cannot be compared. \
                Re-index into a new database (--db) instead.
                """)
        }
    }

    // MARK: indexing

    /// Every file the library knows, keyed by path.
    public func fileStates() throws -> [String: FileState] {
        try pool.read { db in
            let rows = try Row.fetchCursor(db, FileRecord
                .select(Column("id"), Column("imageId"), Column("fileSize"), Column("mtime"), Column("path"))
                .annotated(withRequired: FileRecord.image.select(ImageRecord.Columns.contentHash)))
            var states: [String: FileState] = [:]
            while let row = try rows.next() {
                states[row["path"]] = FileState(fileId: row["id"], imageId: row["imageId"],
                                                fileSize: row["fileSize"], mtime: row["mtime"],
                                                contentHash: row["contentHash"])
            }
            return states
        }
    }

    /// Content hashes already in the library.
    public func knownHashes() throws -> Set<String> {
        try pool.read { db in
            Set(try String.fetchAll(db, ImageRecord.select(ImageRecord.Columns.contentHash)))
        }
    }

    /// Paths that failed before, with the size/mtime they had then.
    public func failures() throws -> [FailureRecord] {
        try pool.read { db in try FailureRecord.order(Column("path")).fetchAll(db) }
    }

    /// Commits a batch of indexing outcomes in one transaction.
    public func commit(_ items: [IndexedItem], model: String) throws {
        guard !items.isEmpty else { return }
        let now = Date()
        try pool.write { db in
            var touchedImages = Set<Int64>()
            for item in items {
                switch item {
                case let .newImage(path, label, size, mtime, hash, width, height, tags, vector, norm):
                    let imageId: Int64
                    if let existing = try ImageRecord.filter(ImageRecord.Columns.contentHash == hash).fetchOne(db),
                       let id = existing.id {
                        imageId = id
                    } else {
                        var image = ImageRecord(id: nil, contentHash: hash, byteSize: size, width: width,
                                                height: height, tags: tags, createdAt: now)
                        try image.insert(db)
                        guard let id = image.id else { throw CatalogueError("insert of \(path) returned no id") }
                        imageId = id
                        try EmbeddingRecord(imageId: id, model: model, vector: Self.blob(vector),
                                            norm: Double(norm)).insert(db)
                    }
                    if let old = try Self.upsertFile(db, path: path, label: label, imageId: imageId,
                                                     size: size, mtime: mtime, now: now) {
                        touchedImages.insert(old)
                    }
                    try FailureRecord.deleteOne(db, key: path)
                case let .link(path, label, size, mtime, hash):
                    guard let image = try ImageRecord.filter(ImageRecord.Columns.contentHash == hash).fetchOne(db),
                          let imageId = image.id else {
                        throw CatalogueError("\(path): content \(hash.prefix(12)) vanished from the library")
                    }
                    if let old = try Self.upsertFile(db, path: path, label: label, imageId: imageId,
                                                     size: size, mtime: mtime, now: now) {
                        touchedImages.insert(old)
                    }
                    try FailureRecord.deleteOne(db, key: path)
                case let .touch(path, size, mtime):
                    if var file = try FileRecord.filter(FileRecord.Columns.path == path).fetchOne(db) {
                        file.fileSize = size
                        file.mtime = mtime
                        try file.update(db)
                    }
                case let .failure(path, reason, size, mtime):
                    try FailureRecord(path: path, reason: reason, fileSize: size, mtime: mtime, failedAt: now).save(db)
                    // A file that changed into something unreadable no longer shows its old content.
                    if let stale = try FileRecord.filter(FileRecord.Columns.path == path).fetchOne(db) {
                        touchedImages.insert(stale.imageId)
                        try stale.delete(db)
                    }
                }
            }
            try Self.deleteOrphans(db, among: touchedImages)
        }
    }

    /// Inserts or repoints a file row; returns the image it pointed to before if that changed.
    static func upsertFile(_ db: Database, path: String, label: String, imageId: Int64,
                           size: Int64, mtime: Double, now: Date) throws -> Int64? {
        if var file = try FileRecord.filter(FileRecord.Columns.path == path).fetchOne(db) {
            let old = file.imageId
            file.imageId = imageId
            file.label = label
            file.fileSize = size
            file.mtime = mtime
            file.indexedAt = now
            try file.update(db)
            return old == imageId ? nil : old
        }
        var file = FileRecord(id: nil, path: path, imageId: imageId, label: label, fileSize: size,
                              mtime: mtime, indexedAt: now)
        try file.insert(db)
        return nil
    }

    /// Deletes images (and, by cascade, embeddings) that no file points to any more.
    static func deleteOrphans(_ db: Database, among candidates: Set<Int64>) throws {
        for id in candidates where try FileRecord.filter(FileRecord.Columns.imageId == id).fetchCount(db) == 0 {
            _ = try ImageRecord.deleteOne(db, key: id)
        }
    }

    /// Removes the given paths (files that are gone); images left without a path are removed too.
    @discardableResult
    public func remove(paths: [String]) throws -> Int {
        guard !paths.isEmpty else { return 0 }
        return try pool.write { db in
            var touched = Set<Int64>()
            var removed = 0
            for path in paths {
                if let file = try FileRecord.filter(FileRecord.Columns.path == path).fetchOne(db) {
                    touched.insert(file.imageId)
                    try file.delete(db)
                    removed += 1
                }
                try FailureRecord.deleteOne(db, key: path)
            }
            try Self.deleteOrphans(db, among: touched)
            return removed
        }
    }

    public func beginRun(roots: [String]) throws -> IndexRunRecord {
        try pool.write { db in
            var run = IndexRunRecord(id: nil, roots: roots.joined(separator: "\n"), startedAt: Date(), finishedAt: nil,
                                     indexed: 0, unchanged: 0, updated: 0, removed: 0, failed: 0)
            try run.insert(db)
            return run
        }
    }

    public func finish(run: IndexRunRecord) throws {
        var run = run
        run.finishedAt = Date()
        try pool.write { db in try run.update(db) }
    }

    // MARK: reading

    /// All embeddings of `model` in one contiguous buffer, in image-id order.
    public func loadVectors(model: String, dimension: Int) throws -> (ids: [Int64], vectors: [Float]) {
        try pool.read { db in
            let count = try EmbeddingRecord.filter(EmbeddingRecord.Columns.model == model).fetchCount(db)
            var ids: [Int64] = []
            ids.reserveCapacity(count)
            var vectors = [Float](repeating: 0, count: count * dimension)
            let bytesPerRow = dimension * MemoryLayout<Float>.size
            let rows = try Row.fetchCursor(db, EmbeddingRecord
                .filter(EmbeddingRecord.Columns.model == model)
                .select(EmbeddingRecord.Columns.imageId, EmbeddingRecord.Columns.vector)
                .order(EmbeddingRecord.Columns.imageId))
            try vectors.withUnsafeMutableBytes { dest in
                var i = 0
                while let row = try rows.next(), i < count {
                    let copied = try row.withUnsafeData(atIndex: 1) { blob -> Bool in
                        guard let blob, blob.count == bytesPerRow else { return false }
                        blob.withUnsafeBytes { src in
                            if let from = src.baseAddress {
                                dest.baseAddress?.advanced(by: i * bytesPerRow).copyMemory(from: from, byteCount: bytesPerRow)
                            }
                        }
                        return true
                    }
                    guard copied else {
                        throw CatalogueError("embedding of image \(row[0] as Int64) has a wrong size")
                    }
                    ids.append(row[0])
                    i += 1
                }
            }
            return (ids, Array(vectors.prefix(ids.count * dimension)))
        }
    }

    /// The stored vector of one image.
    public func vector(imageId: Int64) throws -> [Float]? {
        try pool.read { db in
            guard let record = try EmbeddingRecord.fetchOne(db, key: imageId) else { return nil }
            return Self.floats(record.vector)
        }
    }

    public func imageId(path: String) throws -> Int64? {
        try pool.read { db in
            try FileRecord.filter(FileRecord.Columns.path == path).fetchOne(db)?.imageId
        }
    }

    /// Image summaries (first path, label, size) for the given ids.
    public func summaries(imageIds: [Int64]) throws -> [Int64: ImageSummary] {
        guard !imageIds.isEmpty else { return [:] }
        return try pool.read { db in
            Self.summarize(images: try ImageRecord.filter(keys: imageIds).fetchAll(db),
                           files: try FileRecord.filter(imageIds.contains(FileRecord.Columns.imageId))
                               .order(Column("id")).fetchAll(db))
        }
    }

    /// Joins images with their first file (files in id order).
    static func summarize(images: [ImageRecord], files: [FileRecord]) -> [Int64: ImageSummary] {
        var firstFile: [Int64: FileRecord] = [:]
        for file in files where firstFile[file.imageId] == nil { firstFile[file.imageId] = file }
        var result: [Int64: ImageSummary] = [:]
        for image in images {
            guard let id = image.id, let file = firstFile[id] else { continue }
            result[id] = ImageSummary(imageId: id, path: file.path, label: file.label,
                                      width: image.width, height: image.height)
        }
        return result
    }

    /// All paths of each image that has more than one (exact duplicates).
    public func exactDuplicates() throws -> [[String]] {
        try pool.read { db in
            let files = try FileRecord.order(FileRecord.Columns.imageId, Column("id")).fetchAll(db)
            var groups: [Int64: [String]] = [:]
            for file in files { groups[file.imageId, default: []].append(file.path) }
            return groups.values.filter { $0.count > 1 }.sorted { $0[0] < $1[0] }
        }
    }

    /// Path and label of every image (first path), keyed by image id.
    public func allSummaries() throws -> [Int64: ImageSummary] {
        try pool.read { db in
            Self.summarize(images: try ImageRecord.fetchAll(db), files: try FileRecord.order(Column("id")).fetchAll(db))
        }
    }

    public func info() throws -> LibraryInfo {
        let model = try storedModel()
        let size = ["", "-wal"].reduce(Int64(0)) { total, suffix in
            let attributes = try? FileManager.default.attributesOfItem(atPath: path + suffix)
            return total + ((attributes?[.size] as? NSNumber)?.int64Value ?? 0)
        }
        return try pool.read { db in
            LibraryInfo(
                databasePath: path, databaseBytes: size,
                images: try ImageRecord.fetchCount(db),
                files: try FileRecord.fetchCount(db),
                labels: try FileRecord.select(FileRecord.Columns.label).distinct().fetchCount(db),
                failures: try FailureRecord.fetchCount(db),
                model: model?.id, modelChecksum: model?.checksum,
                lastRun: try IndexRunRecord.order(Column("id").desc).fetchOne(db))
        }
    }

    // MARK: blobs

    static func blob(_ vector: [Float]) -> Data {
        // Little-endian on every platform Lookalike runs on (x86-64, arm64).
        vector.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    static func floats(_ data: Data) -> [Float] {
        let count = data.count / MemoryLayout<Float>.size
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            _ = data.copyBytes(to: buffer)
            initialized = count
        }
    }
}
