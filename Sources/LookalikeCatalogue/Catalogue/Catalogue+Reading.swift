// The read side of the catalogue: vectors streamed in batches (no whole-library copy), single
// vectors, paths and summaries for presenting results, duplicates, and the library's info.
import Foundation
import GRDB
import LookalikeEngine

extension Catalogue {
    /// Streams the vectors of `model` / `variant` in image-id order, `batch` rows at a time, each
    /// batch as ids and one contiguous Float32 buffer (valid during the call). Memory stays at one
    /// batch whatever the library's size; the caller copies rows where it keeps them.
    public func forEachVectorBatch(model: String, variant: String = EmbeddingVariant.raw, dimension: Int,
                                   ids only: [Int64]? = nil, batch: Int = 4096,
                                   _ body: ([Int64], UnsafeBufferPointer<Float>) throws -> Void) throws {
        let bytesPerRow = dimension * MemoryLayout<Float>.size
        var request = EmbeddingRecord.all().of(model: model, variant: variant)
        if let only { request = request.filter(only.contains(EmbeddingRecord.Columns.imageId)) }
        try pool.read { db in
            let rows = try Row.fetchCursor(db, request
                .select(EmbeddingRecord.Columns.imageId, EmbeddingRecord.Columns.vector)
                .order(EmbeddingRecord.Columns.imageId))
            var ids: [Int64] = []
            ids.reserveCapacity(batch)
            var values = [Float](repeating: 0, count: batch * dimension)
            func flush() throws {
                guard !ids.isEmpty else { return }
                try values.withUnsafeBufferPointer { try body(ids, UnsafeBufferPointer(rebasing: $0[0..<ids.count * dimension])) }
                ids.removeAll(keepingCapacity: true)
            }
            while let row = try rows.next() {
                let at = ids.count
                let copied = try row.withUnsafeData(atIndex: 1) { blob -> Bool in
                    guard let blob, blob.count == bytesPerRow else { return false }
                    values.withUnsafeMutableBytes { dest in
                        blob.withUnsafeBytes { src in
                            if let from = src.baseAddress, let to = dest.baseAddress {
                                (to + at * bytesPerRow).copyMemory(from: from, byteCount: bytesPerRow)
                            }
                        }
                    }
                    return true
                }
                guard copied else {
                    throw CatalogueError("embedding of image \(row[0] as Int64) has a wrong size")
                }
                ids.append(row[0])
                if ids.count == batch { try flush() }
            }
            try flush()
        }
    }

    /// How many vectors of `model` / `variant` the library holds.
    public func vectorCount(model: String, variant: String = EmbeddingVariant.raw) throws -> Int {
        try pool.read { db in try EmbeddingRecord.all().of(model: model, variant: variant).fetchCount(db) }
    }

    /// All vectors of `model` in one buffer (for export; search streams into its store instead).
    public func loadVectors(model: String, variant: String = EmbeddingVariant.raw, dimension: Int) throws -> (ids: [Int64], vectors: [Float]) {
        var ids: [Int64] = []
        var vectors: [Float] = []
        try forEachVectorBatch(model: model, variant: variant, dimension: dimension) { batchIds, rows in
            ids.append(contentsOf: batchIds)
            vectors.append(contentsOf: rows)
        }
        return (ids, vectors)
    }

    /// The stored vector of one image.
    public func vector(imageId: Int64) throws -> [Float]? {
        try pool.read { db in
            guard let model = try Self.storedModel(db),
                  let record = try EmbeddingRecord.fetchOne(db, key: ["imageId": imageId, "model": model.id, "variant": EmbeddingVariant.raw])
            else { return nil }
            return Self.floats(record.vector)
        }
    }

    public func imageId(path: String) throws -> Int64? {
        try pool.read { db in
            try FileRecord.all().filter(path: path).fetchOne(db)?.imageId
        }
    }

    /// Image summaries (first path, label, size) for the given ids.
    public func summaries(imageIds: [Int64]) throws -> [Int64: ImageSummary] {
        guard !imageIds.isEmpty else { return [:] }
        return try pool.read { db in
            Self.summarize(images: try ImageRecord.filter(keys: imageIds).fetchAll(db),
                           files: try FileRecord.all().filter(imageIds: imageIds).inInsertionOrder().fetchAll(db))
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
                                      width: image.width, height: image.height, tags: image.tags, facts: PhotoFacts(image))
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
            Self.summarize(images: try ImageRecord.fetchAll(db), files: try FileRecord.all().inInsertionOrder().fetchAll(db))
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

    package static func floats(_ data: Data) -> [Float] {
        let count = data.count / MemoryLayout<Float>.size
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            _ = data.copyBytes(to: buffer)
            initialized = count
        }
    }
}
