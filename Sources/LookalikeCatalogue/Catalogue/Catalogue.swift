// Catalogue/ owns the SQLite database (through GRDB, WAL mode: many readers, one writer) that holds
// the image library: records, migrations, and the `Catalogue` type, split by concern into
// extensions: this file (opening, migrating, the model check: a library built with one model's
// vectors is never mixed with another's), +Indexing (the indexer's atomic batch commits: every image,
// its paths and its embedding land in one transaction, so a kill -9 loses at most the batch in
// flight; pruning; runs), +Reading (vectors streamed in batches, summaries, info) and +Journal (the
// change counter and journal that snapshots and live followers catch up from).
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
                  width: Int, height: Int, tags: String, vector: [Float], norm: Float, metadata: PhotoMetadata)
    /// A file whose content is already in the library (a duplicate, or a rename).
    case link(path: String, label: String, fileSize: Int64, mtime: Double, contentHash: String)
    /// A file whose size or mtime changed but whose content did not.
    case touch(path: String, fileSize: Int64, mtime: Double)
    /// A file that could not be indexed.
    case failure(path: String, reason: String, fileSize: Int64, mtime: Double)
}

extension ImageRecord {
    /// Takes what the photo's file says about itself (EXIF: capture date, camera, GPS).
    mutating func apply(_ facts: PhotoMetadata) {
        capturedAt = facts.capturedAt
        cameraMake = facts.cameraMake
        cameraModel = facts.cameraModel
        gpsLatitude = facts.gpsLatitude
        gpsLongitude = facts.gpsLongitude
        metadataRead = true
    }
}

/// A library entry as search results show it: an image and its first path.
public struct ImageSummary: Sendable, Codable {
    public let imageId: Int64
    public let path: String
    public let label: String
    public let width: Int
    public let height: Int
    /// Top-5 ImageNet labels as "name:prob; ..." (see `ImageRecord.tags`).
    public let tags: String
    /// When and with what the photo was taken, where its file says (EXIF).
    public var facts: PhotoFacts? = nil

    package init(imageId: Int64, path: String, label: String, width: Int, height: Int, tags: String, facts: PhotoFacts? = nil) {
        self.imageId = imageId
        self.path = path
        self.label = label
        self.width = width
        self.height = height
        self.tags = tags
        self.facts = facts
    }
}

/// What a photo's file says about it: capture date (ISO 8601, with offset when recorded), camera,
/// GPS position. Shown by `info --path` and `search --json`; the server hides GPS unless told.
public struct PhotoFacts: Sendable, Codable, Equatable {
    public var capturedAt: String?
    public var cameraMake: String?
    public var cameraModel: String?
    public var gpsLatitude: Double?
    public var gpsLongitude: Double?

    package init(capturedAt: String?) {
        self.capturedAt = capturedAt
    }

    init?(_ image: ImageRecord) {
        guard image.capturedAt != nil || image.cameraMake != nil || image.cameraModel != nil || image.gpsLatitude != nil
        else { return nil }
        capturedAt = image.capturedAt
        cameraMake = image.cameraMake
        cameraModel = image.cameraModel
        gpsLatitude = image.gpsLatitude
        gpsLongitude = image.gpsLongitude
    }
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
    /// The catalogue's identity: a random id given when it was created. Files derived from it
    /// (snapshots, indexes, graphs, answer lists, visual words) record it and are rebuilt, never
    /// trusted, when it differs (see DerivedFiles).
    public let identity: String
    package let pool: DatabasePool
    static let identityKey = "catalogue.identity"

    /// The folder beside the catalogue that holds every file derived from it (`<db>.indexes`).
    public var derivedFolder: URL { URL(fileURLWithPath: path + ".indexes") }

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
            identity = try pool.read { db in try MetaRecord.fetchOne(db, key: Self.identityKey)?.value } ?? ""
        } catch let error as DatabaseError {
            throw CatalogueError("cannot open library \(path): \(error.message ?? error.description)")
        }
    }

    // MARK: model

    static let modelKeys = (id: "model.id", checksum: "model.checksum", dimension: "model.dimension")

    public func storedModel() throws -> ModelInfo? {
        try pool.read { db in try Self.storedModel(db) }
    }

    static func storedModel(_ db: Database) throws -> ModelInfo? {
        let meta = try MetaRecord.fetchAll(db)
        let values = Dictionary(meta.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        guard let id = values[modelKeys.id], let checksum = values[modelKeys.checksum],
              let dim = values[modelKeys.dimension].flatMap(Int.init) else { return nil }
        return ModelInfo(id: id, checksum: checksum, dimension: dim)
    }

    /// The descriptor the library's vectors were made with; a library with none yet gets the
    /// standard one.
    public func storedDescriptor() throws -> Descriptor {
        try storedModel().map { Descriptor(modelID: $0.id) } ?? .standard
    }

    /// Records `model` in an empty library, or refuses a library built with another model. The
    /// check and the write are one transaction, so two indexers starting together cannot both adopt.
    public func adopt(model: ModelInfo) throws {
        try pool.write { db in
            if let stored = try Self.storedModel(db) {
                try Self.check(stored: stored, against: model, path: path)
                return
            }
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
}
