// Trained hash encoders in the catalogue (`trainedModel` table, Migrations v2): one per bit count,
// named `hash:<bits>` (the descriptor of the index that uses it), with its kind (itq or
// supervised), the embedding model it was trained on, the encoder bytes and a one-line summary.
// Codes of the images present at training time are cached in `imageCode`; later images are coded
// by the encoder when they are added to an index.
import Foundation
import GRDB

public struct HashModel: Sendable {
    public let name: String
    public let kind: String
    public let encoder: LinearHashEncoder
    public let summary: String
    public let trainedAt: Date

    /// What an index file records to know it was built with this very model.
    public var stamp: String { "\(name)@\(Int64((trainedAt.timeIntervalSince1970 * 1000).rounded()))" }

    public static func name(bits: Int) -> String { "hash:\(bits)" }
}

extension Catalogue {
    /// The trained hash model `name` for embedding model `model`, nil when none was trained.
    public func hashModel(name: String, model: String) throws -> HashModel? {
        guard let record = try pool.read({ db in try TrainedModelRecord.fetchOne(db, key: name) }), record.model == model else {
            return nil
        }
        let encoder = try LinearHashEncoder(serialized: record.parameters, source: "\(path): trainedModel '\(name)'")
        guard encoder.bits == record.bits, encoder.dimension == record.dimension else {
            throw CatalogueError("\(path): trainedModel '\(name)' says \(record.dimension) x \(record.bits) but holds \(encoder.dimension) x \(encoder.bits)")
        }
        return HashModel(name: name, kind: record.kind, encoder: encoder, summary: record.summary, trainedAt: record.trainedAt)
    }

    /// Stores (or replaces) a trained model and the codes of the given images under it.
    public func save(hashModel: HashModel, model: String, codes: [(Int64, [UInt64])] = []) throws {
        try pool.write { db in
            try TrainedModelRecord(name: hashModel.name, kind: hashModel.kind, model: model, dimension: hashModel.encoder.dimension,
                                   bits: hashModel.encoder.bits, parameters: hashModel.encoder.serialized(),
                                   summary: hashModel.summary, trainedAt: hashModel.trainedAt).save(db)
            try ImageCodeRecord.filter(Column("trainedModel") == hashModel.name).deleteAll(db)
            for (id, words) in codes {
                var data = Data(capacity: words.count * 8)
                for w in words { withUnsafeBytes(of: w.littleEndian) { data.append(contentsOf: $0) } }
                // An image removed since the vectors were read has no row to reference: skip it.
                guard try ImageRecord.exists(db, key: id) else { continue }
                try ImageCodeRecord(imageId: id, trainedModel: hashModel.name, code: data).insert(db)
            }
        }
    }

    /// Names of the trained models.
    public func trainedModelNames() throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM trainedModel ORDER BY name") }
    }

    /// Cached codes of a trained model, by image id.
    public func imageCodes(trainedModel name: String) throws -> [Int64: [UInt64]] {
        try pool.read { db in
            var out: [Int64: [UInt64]] = [:]
            for record in try ImageCodeRecord.filter(Column("trainedModel") == name).fetchAll(db) {
                let bytes = [UInt8](record.code)
                var words: [UInt64] = []
                var at = 0
                while at + 8 <= bytes.count {
                    var w: UInt64 = 0
                    for b in 0..<8 { w |= UInt64(bytes[at + b]) << UInt64(8 * b) }
                    words.append(w)
                    at += 8
                }
                out[record.imageId] = words
            }
            return out
        }
    }
}
