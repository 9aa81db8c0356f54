// Schema migrations of the catalogue. Each migration is append-only: a released migration is never
// edited, a change is a new migration, so any older database upgrades in place when opened.
import Foundation
import GRDB


enum CatalogueMigrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: images, files, embeddings, failures, runs, meta") { db in
            try db.create(table: "image") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("contentHash", .text).notNull().unique()
                t.column("byteSize", .integer).notNull()
                t.column("width", .integer).notNull()
                t.column("height", .integer).notNull()
                t.column("tags", .text).notNull().defaults(to: "")
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "file") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("path", .text).notNull().unique()
                t.belongsTo("image", onDelete: .cascade).notNull()
                t.column("label", .text).notNull()
                t.column("fileSize", .integer).notNull()
                t.column("mtime", .double).notNull()
                t.column("indexedAt", .datetime).notNull()
            }
            try db.create(table: "embedding") { t in
                t.primaryKey { t.belongsTo("image", onDelete: .cascade) }
                t.column("model", .text).notNull()
                t.column("vector", .blob).notNull()
                t.column("norm", .double).notNull()
            }
            try db.create(table: "failure") { t in
                t.primaryKey("path", .text)
                t.column("reason", .text).notNull()
                t.column("fileSize", .integer).notNull()
                t.column("mtime", .double).notNull()
                t.column("failedAt", .datetime).notNull()
            }
            try db.create(table: "indexRun") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("roots", .text).notNull()
                t.column("startedAt", .datetime).notNull()
                t.column("finishedAt", .datetime)
                t.column("indexed", .integer).notNull()
                t.column("unchanged", .integer).notNull()
                t.column("updated", .integer).notNull()
                t.column("removed", .integer).notNull()
                t.column("failed", .integer).notNull()
            }
            try db.create(table: "meta") { t in
                t.primaryKey("key", .text)
                t.column("value", .text).notNull()
            }
        }
        migrator.registerMigration(CatalogueMigrations.v2, migrate: v2)
        migrator.registerMigration("v3: neighbour lists of re-ranking variants") { db in
            // Which images each augmented vector was computed from: when an image goes, the ones
            // that used it are found here (no foreign key on neighbourId: the edge must outlive it).
            try db.create(table: "neighbourEdge") { t in
                t.belongsTo("image", onDelete: .cascade).notNull()
                t.column("variant", .text).notNull()
                t.column("rank", .integer).notNull()
                t.column("neighbourId", .integer).notNull()
                t.primaryKey(["imageId", "variant", "rank"])
            }
            try db.create(index: "neighbourEdge_on_neighbour", on: "neighbourEdge", columns: ["variant", "neighbourId"])
        }
        migrator.registerMigration("v4: images sent to remote vector stores") { db in
            // The worker's crash-safe record of what it pushed to a remote store (Milvus), per
            // store: a row is written only after the store acknowledged the insert. No foreign key
            // on the image: when an image goes, its row must stay until the store forgot it too
            // (`index --prune` finds those rows and deletes them remotely first).
            try db.create(table: "remoteSent") { t in
                t.column("store", .text).notNull()
                t.column("contentHash", .text).notNull()
                t.column("sentAt", .datetime).notNull()
                t.primaryKey(["store", "contentHash"])
            }
        }
        migrator.registerMigration("v5: the catalogue's identity") { db in
            // A random id given once, when the catalogue is created (or first opened by this
            // version): every derived file beside it records it, so a library deleted and made again
            // at the same path never trusts the files of the old one.
            try MetaRecord(key: Catalogue.identityKey, value: UUID().uuidString.lowercased()).insert(db)
        }
        migrator.registerMigration("v6: no cached hash codes") { db in
            // The codes of v2's `imageCode` were written and never read: indexes code with the encoder.
            try db.drop(table: "imageCode")
        }
        return migrator
    }

    static let v2 = "v2: embeddings by (image, model, variant), change journal, photo metadata, trained models, codes"

    /// v2 shapes the catalogue for what search, evaluation and hashing store next:
    /// - `embedding` keyed by (image, model, variant): the raw network vector is variant "raw";
    ///   re-ranked (augmented) vectors or a second model's live beside it;
    /// - `change`: a journal of vectors added and removed, filled by triggers so that no write path
    ///   can forget it (cascade deletes included); its last `seq` is the catalogue's change counter,
    ///   which snapshots record and followers (search, serve) catch up from;
    /// - photo metadata on `image` (capture date, camera, GPS; filled by the indexer);
    /// - `trainedModel` (learned hash codes, projections: parameters as a blob) and `imageCode`
    ///   (an image's code under a trained model).
    static func v2(_ db: Database) throws {
        try db.create(table: "embedding_v2") { t in
            t.belongsTo("image", onDelete: .cascade).notNull()
            t.column("model", .text).notNull()
            t.column("variant", .text).notNull()
            t.column("vector", .blob).notNull()
            t.column("norm", .double).notNull()
            t.primaryKey(["imageId", "model", "variant"])
        }
        try db.execute(sql: """
            INSERT INTO embedding_v2 (imageId, model, variant, vector, norm)
            SELECT imageId, model, 'raw', vector, norm FROM embedding
            """)
        try db.drop(table: "embedding")
        try db.rename(table: "embedding_v2", to: "embedding")
        try db.create(index: "embedding_on_model_variant", on: "embedding", columns: ["model", "variant", "imageId"])

        try db.create(table: "change") { t in
            t.autoIncrementedPrimaryKey("seq")
            // No foreign key: the journal outlives the images it mentions.
            t.column("imageId", .integer).notNull()
            t.column("model", .text).notNull()
            t.column("variant", .text).notNull()
            t.column("op", .text).notNull()  // ChangeRecord.Operation
        }
        for (name, event, row, op) in [("embedding_added", "INSERT", "NEW", "add"),
                                      ("embedding_replaced", "UPDATE OF vector", "NEW", "add"),
                                      ("embedding_removed", "DELETE", "OLD", "remove")] {
            try db.execute(sql: """
                CREATE TRIGGER \(name) AFTER \(event) ON embedding BEGIN
                  INSERT INTO change (imageId, model, variant, op)
                  VALUES (\(row).imageId, \(row).model, \(row).variant, '\(op)');
                END
                """)
        }

        try db.alter(table: "image") { t in
            t.add(column: "capturedAt", .text)
            t.add(column: "cameraMake", .text)
            t.add(column: "cameraModel", .text)
            t.add(column: "gpsLatitude", .double)
            t.add(column: "gpsLongitude", .double)
            t.add(column: "metadataRead", .boolean).notNull().defaults(to: false)
        }

        try db.create(table: "trainedModel") { t in
            t.primaryKey("name", .text)
            t.column("kind", .text).notNull()
            t.column("model", .text).notNull()
            t.column("dimension", .integer).notNull()
            t.column("bits", .integer).notNull()
            t.column("parameters", .blob).notNull()
            t.column("summary", .text).notNull().defaults(to: "")
            t.column("trainedAt", .datetime).notNull()
        }
        try db.create(table: "imageCode") { t in
            t.belongsTo("image", onDelete: .cascade).notNull()
            t.column("trainedModel", .text).notNull().references("trainedModel", onDelete: .cascade)
            t.column("code", .blob).notNull()
            t.primaryKey(["imageId", "trainedModel"])
        }
    }
}
