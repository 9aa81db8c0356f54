// Records of the catalogue, one struct per table (GRDB records, no SQL strings). An `ImageRecord`
// is one distinct image content (keyed by its SHA-256); `FileRecord`s are the paths where that
// content lives (two files with the same bytes share one image and one embedding); an
// `EmbeddingRecord` is the network's L2-normalised vector for an image under a given model;
// `FailureRecord` remembers files that could not be indexed and why; `IndexRunRecord` is the
// summary of one `lookalike index` run; `MetaRecord` holds key/value facts (the model in use).
import Foundation
import GRDB

public struct ImageRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord, TableRecord {
    public static let databaseTableName = "image"
    public var id: Int64?
    public var contentHash: String
    public var byteSize: Int64
    public var width: Int
    public var height: Int
    /// Top-5 ImageNet labels as "name:prob" joined with "; " (useful as tags).
    public var tags: String
    public var createdAt: Date

    public static let files = hasMany(FileRecord.self)
    public static let embedding = hasOne(EmbeddingRecord.self)

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let contentHash = Column(CodingKeys.contentHash)
    }
}

public struct FileRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord, TableRecord {
    public static let databaseTableName = "file"
    public var id: Int64?
    public var path: String
    public var imageId: Int64
    /// The parent folder's name: the class label used by evaluation and training.
    public var label: String
    public var fileSize: Int64
    /// Modification time as seconds since 1970 (sub-second precision kept).
    public var mtime: Double
    public var indexedAt: Date

    public static let image = belongsTo(ImageRecord.self)
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    public enum Columns {
        public static let path = Column(CodingKeys.path)
        public static let imageId = Column(CodingKeys.imageId)
        public static let label = Column(CodingKeys.label)
    }
}

public struct EmbeddingRecord: Codable, Sendable, FetchableRecord, PersistableRecord, TableRecord {
    public static let databaseTableName = "embedding"
    public var imageId: Int64
    public var model: String
    /// Float32 little-endian, L2-normalised, `dimension` values.
    public var vector: Data
    /// L2 norm of the raw pooled feature (feature = vector * norm).
    public var norm: Double

    public static let image = belongsTo(ImageRecord.self)

    public enum Columns {
        public static let imageId = Column(CodingKeys.imageId)
        public static let model = Column(CodingKeys.model)
        public static let vector = Column(CodingKeys.vector)
    }
}

public struct FailureRecord: Codable, Sendable, FetchableRecord, PersistableRecord, TableRecord {
    public static let databaseTableName = "failure"
    public var path: String
    public var reason: String
    public var fileSize: Int64
    public var mtime: Double
    public var failedAt: Date
}

public struct IndexRunRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord, TableRecord {
    public static let databaseTableName = "indexRun"
    public var id: Int64?
    public var roots: String
    public var startedAt: Date
    public var finishedAt: Date?
    public var indexed: Int
    public var unchanged: Int
    public var updated: Int
    public var removed: Int
    public var failed: Int
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

public struct MetaRecord: Codable, Sendable, FetchableRecord, PersistableRecord, TableRecord {
    public static let databaseTableName = "meta"
    public var key: String
    public var value: String
}
