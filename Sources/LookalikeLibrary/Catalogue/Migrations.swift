// Schema migrations of the catalogue. Each migration is append-only: a released migration is never
// edited, a change is a new migration, so any older database upgrades in place when opened.
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
        return migrator
    }
}
