// The indexer's side of the catalogue: what it knows about each path, the atomic batch commit of
// indexing outcomes, removal of gone files (images without a path go with them, and by cascade
// their embeddings, which the journal records), and the run log.
import Foundation
import GRDB
import LookalikeEngine

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

// MARK: derived vectors (re-ranking)

extension Catalogue {
    /// Stores derived vectors of `variant` (replacing earlier ones) with the neighbours each was
    /// computed from, in one transaction.
    public func storeDerived(_ rows: [(imageId: Int64, vector: [Float], neighbours: [Int64])], model: String,
                             variant: String) throws {
        guard !rows.isEmpty else { return }
        try pool.write { db in
            for row in rows where try ImageRecord.exists(db, key: row.imageId) {
                try EmbeddingRecord(imageId: row.imageId, model: model, variant: variant, vector: Self.blob(row.vector), norm: 1).save(db)
                _ = try NeighbourEdgeRecord.filter(NeighbourEdgeRecord.Columns.imageId == row.imageId
                                                   && NeighbourEdgeRecord.Columns.variant == variant).deleteAll(db)
                for (rank, neighbour) in row.neighbours.enumerated() {
                    try NeighbourEdgeRecord(imageId: row.imageId, variant: variant, rank: rank, neighbourId: neighbour).insert(db)
                }
            }
        }
    }

    /// Forgets the derived vectors of every variant of `model` but `raw` and `keeping` (re-ranking
    /// vectors of settings no longer used, e.g. made before a change of the re-ranking): their
    /// vectors, neighbour lists and bookkeeping facts; returns the variants dropped.
    @discardableResult
    public func dropDerivedVariants(model: String, keeping: Set<String>) throws -> [String] {
        try pool.write { db in
            let variants = try String.fetchAll(db, sql: "SELECT DISTINCT variant FROM embedding WHERE model = ?", arguments: [model])
            let dropped = variants.filter { $0 != "raw" && !keeping.contains($0) }
            for variant in dropped {
                try db.execute(sql: "DELETE FROM embedding WHERE model = ? AND variant = ?", arguments: [model, variant])
                try db.execute(sql: "DELETE FROM neighbourEdge WHERE variant = ?", arguments: [variant])
                try db.execute(sql: "DELETE FROM meta WHERE key LIKE ?", arguments: ["augmentation.\(variant).%"])
            }
            return dropped
        }
    }

    /// Images whose `variant` vector was computed from any of `ids`.
    public func imagesDerived(from ids: Set<Int64>, variant: String) throws -> Set<Int64> {
        guard !ids.isEmpty else { return [] }
        return try pool.read { db in
            var found = Set<Int64>()
            for chunk in Array(ids).chunked(500) {
                let rows = try NeighbourEdgeRecord
                    .filter(NeighbourEdgeRecord.Columns.variant == variant && chunk.contains(NeighbourEdgeRecord.Columns.neighbourId))
                    .select(NeighbourEdgeRecord.Columns.imageId, as: Int64.self).fetchAll(db)
                found.formUnion(rows)
            }
            return found
        }
    }

    /// A stored fact (meta key/value).
    public func fact(_ key: String) throws -> String? {
        try pool.read { db in try MetaRecord.fetchOne(db, key: key)?.value }
    }

    public func setFact(_ key: String, _ value: String?) throws {
        try pool.write { db in
            if let value { try MetaRecord(key: key, value: value).save(db) } else { _ = try MetaRecord.deleteOne(db, key: key) }
        }
    }
}

extension Array {
    package func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min(count, $0 + size)] }
    }
}

// MARK: photo facts

extension Catalogue {
    /// Images whose photo facts were never read, with their first path.
    public func imagesWithoutMetadata() throws -> [(Int64, String)] {
        try pool.read { db in
            let ids = try ImageRecord.filter(Column("metadataRead") == false).select(ImageRecord.Columns.id, as: Int64.self).fetchAll(db)
            guard !ids.isEmpty else { return [] }
            var firstPath: [Int64: String] = [:]
            for file in try FileRecord.all().inInsertionOrder().fetchAll(db) where firstPath[file.imageId] == nil {
                firstPath[file.imageId] = file.path
            }
            return ids.compactMap { id in firstPath[id].map { (id, $0) } }
        }
    }

    /// Stores read photo facts (one transaction per call).
    public func storeMetadata(_ facts: [(Int64, PhotoMetadata)]) throws {
        try pool.write { db in
            for (id, metadata) in facts {
                guard var image = try ImageRecord.fetchOne(db, key: id) else { continue }
                image.apply(metadata)
                try image.update(db)
            }
        }
    }

    /// The stored record of one image (size, tags, photo facts).
    public func image(id: Int64) throws -> ImageRecord? {
        try pool.read { db in try ImageRecord.fetchOne(db, key: id) }
    }

    /// Every path of one image, first first.
    public func paths(imageId: Int64) throws -> [String] {
        try pool.read { db in try FileRecord.all().filter(imageId: imageId).inInsertionOrder().fetchAll(db).map(\.path) }
    }
}
