// The indexer's side of the catalogue: what it knows about each path, the atomic batch commit of
// indexing outcomes, removal of gone files (images without a path go with them, and by cascade
// their embeddings, which the journal records), and the run log.
import Foundation
import GRDB

extension Catalogue {
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
                case let .newImage(path, label, size, mtime, hash, width, height, tags, vector, norm, metadata):
                    let imageId: Int64
                    if let existing = try ImageRecord.all().filter(contentHash: hash).fetchOne(db),
                       let id = existing.id {
                        imageId = id
                    } else {
                        var image = ImageRecord(id: nil, contentHash: hash, byteSize: size, width: width,
                                                height: height, tags: tags, createdAt: now)
                        image.apply(metadata)
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
                    guard let image = try ImageRecord.all().filter(contentHash: hash).fetchOne(db),
                          let imageId = image.id else {
                        throw CatalogueError("\(path): content \(hash.prefix(12)) vanished from the library")
                    }
                    if let old = try Self.upsertFile(db, path: path, label: label, imageId: imageId,
                                                     size: size, mtime: mtime, now: now) {
                        touchedImages.insert(old)
                    }
                    try FailureRecord.deleteOne(db, key: path)
                case let .touch(path, size, mtime):
                    if var file = try FileRecord.all().filter(path: path).fetchOne(db) {
                        file.fileSize = size
                        file.mtime = mtime
                        try file.update(db)
                    }
                case let .failure(path, reason, size, mtime):
                    try FailureRecord(path: path, reason: reason, fileSize: size, mtime: mtime, failedAt: now).save(db)
                    // A file that changed into something unreadable no longer shows its old content.
                    if let stale = try FileRecord.all().filter(path: path).fetchOne(db) {
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
        if var file = try FileRecord.all().filter(path: path).fetchOne(db) {
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
        for id in candidates where try FileRecord.all().filter(imageId: id).fetchCount(db) == 0 {
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
                if let file = try FileRecord.all().filter(path: path).fetchOne(db) {
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
            var run = IndexRunRecord(id: nil, roots: roots.map { URL(fileURLWithPath: $0).standardizedFileURL.path }.joined(separator: "\n"), startedAt: Date(), finishedAt: nil,
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

}
