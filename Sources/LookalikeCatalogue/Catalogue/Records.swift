// Records of the catalogue, one struct per table (GRDB records, no SQL strings). An `ImageRecord`
// is one distinct image content (keyed by its SHA-256); `FileRecord`s are the paths where that
// content lives (two files with the same bytes share one image and one embedding); an
// `EmbeddingRecord` is the network's L2-normalised vector for an image under a given model;
// `FailureRecord` remembers files that could not be indexed and why; `IndexRunRecord` is the
// summary of one `lookalike index` run; `MetaRecord` holds key/value facts (the model in use);
// `ChangeRecord` is one entry of the change journal (written by triggers, see Migrations);
// `TrainedModelRecord` holds learned models (hash encoders).
// Requests used in several places are methods on the request types (Requests.swift).
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
    /// When the photo was taken (EXIF DateTimeOriginal, ISO 8601, with offset when known).
    public var capturedAt: String? = nil
    public var cameraMake: String? = nil
    public var cameraModel: String? = nil
    public var gpsLatitude: Double? = nil
    public var gpsLongitude: Double? = nil
    /// True once the file's metadata was read (so images indexed before v2 get it filled in).
    public var metadataRead: Bool = false

    public static let files = hasMany(FileRecord.self)
    public static let embedding = hasOne(EmbeddingRecord.self)

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let contentHash = Column(CodingKeys.contentHash)
        public static let tags = Column(CodingKeys.tags)
    }

    package init(id: Int64? = nil, contentHash: String, byteSize: Int64, width: Int, height: Int, tags: String, createdAt: Date, capturedAt: String? = nil, cameraMake: String? = nil, cameraModel: String? = nil, gpsLatitude: Double? = nil, gpsLongitude: Double? = nil, metadataRead: Bool = false) {
        self.id = id
        self.contentHash = contentHash
        self.byteSize = byteSize
        self.width = width
        self.height = height
        self.tags = tags
        self.createdAt = createdAt
        self.capturedAt = capturedAt
        self.cameraMake = cameraMake
        self.cameraModel = cameraModel
        self.gpsLatitude = gpsLatitude
        self.gpsLongitude = gpsLongitude
        self.metadataRead = metadataRead
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

    package init(id: Int64? = nil, path: String, imageId: Int64, label: String, fileSize: Int64, mtime: Double, indexedAt: Date) {
        self.id = id
        self.path = path
        self.imageId = imageId
        self.label = label
        self.fileSize = fileSize
        self.mtime = mtime
        self.indexedAt = indexedAt
    }
}

/// Which vector of an image: the network's own ("raw"), or one derived from it by re-ranking.
public enum EmbeddingVariant {
    public static let raw = "raw"
}

public struct EmbeddingRecord: Codable, Sendable, FetchableRecord, PersistableRecord, TableRecord {
    public static let databaseTableName = "embedding"
    public var imageId: Int64
    public var model: String
    /// `EmbeddingVariant.raw` for the network's vector.
    public var variant: String = EmbeddingVariant.raw
    /// Float32 little-endian, L2-normalised, `dimension` values.
    public var vector: Data
    /// L2 norm of the raw pooled feature (feature = vector * norm).
    public var norm: Double

    public static let image = belongsTo(ImageRecord.self)

    public enum Columns {
        public static let imageId = Column(CodingKeys.imageId)
        public static let model = Column(CodingKeys.model)
        public static let variant = Column(CodingKeys.variant)
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

public struct ChangeRecord: Codable, Sendable, FetchableRecord, TableRecord {
    public static let databaseTableName = "change"
    public enum Operation: String, Codable, Sendable { case add, remove }
    public var seq: Int64
    public var imageId: Int64
    public var model: String
    public var variant: String
    public var op: Operation

    public enum Columns {
        public static let seq = Column(CodingKeys.seq)
        public static let model = Column(CodingKeys.model)
        public static let variant = Column(CodingKeys.variant)
    }
}

public struct TrainedModelRecord: Codable, Sendable, FetchableRecord, PersistableRecord, TableRecord {
    public static let databaseTableName = "trainedModel"
    /// e.g. "hash:64:itq".
    public var name: String
    public var kind: String
    /// The embedding model whose vectors it was trained on.
    public var model: String
    public var dimension: Int
    public var bits: Int
    public var parameters: Data
    public var summary: String
    public var trainedAt: Date

    package init(name: String, kind: String, model: String, dimension: Int, bits: Int, parameters: Data, summary: String,
                 trainedAt: Date) {
        (self.name, self.kind, self.model, self.dimension, self.bits) = (name, kind, model, dimension, bits)
        (self.parameters, self.summary, self.trainedAt) = (parameters, summary, trainedAt)
    }
}

/// One neighbour an augmented (re-ranking) vector was computed from.
public struct NeighbourEdgeRecord: Codable, Sendable, FetchableRecord, PersistableRecord, TableRecord {
    public static let databaseTableName = "neighbourEdge"
    public var imageId: Int64
    public var variant: String
    public var rank: Int
    public var neighbourId: Int64

    public enum Columns {
        public static let imageId = Column(CodingKeys.imageId)
        public static let variant = Column(CodingKeys.variant)
        public static let neighbourId = Column(CodingKeys.neighbourId)
    }
}
