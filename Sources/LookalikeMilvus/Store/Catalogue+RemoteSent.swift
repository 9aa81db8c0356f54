// The catalogue's side of pushing to a remote store: which images (by content hash) a store has
// acknowledged (table `remoteSent`, migration v4), what is still to send with everything the store
// keeps about it, and what was sent but has since left the library (to delete remotely on --prune).
import Foundation
import GRDB
import LookalikeCatalogue
import LookalikeIndex
import LookalikeSearch

/// One image as a remote store keeps it: the identity (content hash), its first path and label, the
/// file size, the top-5 tags, the capture date when the photo says, and its L2-normalised vector.
public struct RemoteEntity: Sendable, Equatable {
    public var contentHash: String
    public var path: String
    public var label: String
    public var size: Int64
    public var tags: String
    public var capturedAt: String?
    public var vector: [Float]
}

struct RemoteSentRecord: Codable, FetchableRecord, PersistableRecord, TableRecord {
    static let databaseTableName = "remoteSent"
    var store: String
    var contentHash: String
    var sentAt: Date
    enum Columns {
        static let store = Column(CodingKeys.store)
        static let contentHash = Column(CodingKeys.contentHash)
    }
}

extension Catalogue {
    /// Ids of the images with a vector of `model` that `store` has not acknowledged, in id order.
    public func unsentImageIds(store: String, model: String) throws -> [Int64] {
        try pool.read { db in
            let sent = Set(try String.fetchAll(db, RemoteSentRecord
                .filter(RemoteSentRecord.Columns.store == store).select(RemoteSentRecord.Columns.contentHash)))
            let withVector = Set(try Int64.fetchAll(db, EmbeddingRecord.all().of(model: model)
                .select(EmbeddingRecord.Columns.imageId)))
            let images = try ImageRecord.order(ImageRecord.Columns.id).fetchAll(db)
            return images.compactMap { image in
                guard let id = image.id, withVector.contains(id), !sent.contains(image.contentHash) else { return nil }
                return id
            }
        }
    }

    /// What a remote store keeps about each of `ids` (images gone meanwhile are left out).
    public func remoteEntities(imageIds ids: [Int64], model: String) throws -> [RemoteEntity] {
        guard !ids.isEmpty else { return [] }
        return try pool.read { db in
            let images = try ImageRecord.filter(keys: ids).fetchAll(db)
            let files = try FileRecord.all().filter(imageIds: ids).inInsertionOrder().fetchAll(db)
            var firstFile: [Int64: FileRecord] = [:]
            for file in files where firstFile[file.imageId] == nil { firstFile[file.imageId] = file }
            let vectors = try EmbeddingRecord.all().of(model: model)
                .filter(ids.contains(EmbeddingRecord.Columns.imageId)).fetchAll(db)
            let vectorOf = Dictionary(vectors.map { ($0.imageId, $0.vector) }, uniquingKeysWith: { a, _ in a })
            return images.compactMap { image in
                guard let id = image.id, let file = firstFile[id], let blob = vectorOf[id] else { return nil }
                return RemoteEntity(contentHash: image.contentHash, path: file.path, label: file.label,
                                    size: image.byteSize, tags: image.tags, capturedAt: image.capturedAt,
                                    vector: Self.floats(blob))
            }
        }
    }

    /// Records that `store` holds these images (written only after the store acknowledged them).
    public func markSent(store: String, hashes: [String]) throws {
        guard !hashes.isEmpty else { return }
        let now = Date()
        try pool.write { db in
            for hash in hashes { try RemoteSentRecord(store: store, contentHash: hash, sentAt: now).save(db) }
        }
    }

    /// Hashes `store` holds whose image has left the library (its last path went).
    public func sentButGone(store: String) throws -> [String] {
        try pool.read { db in
            let sent = try String.fetchAll(db, RemoteSentRecord
                .filter(RemoteSentRecord.Columns.store == store).select(RemoteSentRecord.Columns.contentHash))
            let present = Set(try String.fetchAll(db, ImageRecord.select(ImageRecord.Columns.contentHash)))
            return sent.filter { !present.contains($0) }
        }
    }

    /// Forgets that `store` held these images (after the store deleted them).
    public func forgetSent(store: String, hashes: [String]) throws {
        guard !hashes.isEmpty else { return }
        _ = try pool.write { db in
            try RemoteSentRecord.filter(RemoteSentRecord.Columns.store == store)
                .filter(hashes.contains(RemoteSentRecord.Columns.contentHash)).deleteAll(db)
        }
    }

    /// How many images `store` has acknowledged.
    public func sentCount(store: String) throws -> Int {
        try pool.read { db in try RemoteSentRecord.filter(RemoteSentRecord.Columns.store == store).fetchCount(db) }
    }
}
