// Trained hash encoders in the catalogue (`trainedModel` table, Migrations v2): one per bit count,
// named `hash:<bits>` (the descriptor of the index that uses it), with its kind (itq or
// supervised), the embedding model it was trained on, the encoder bytes and a one-line summary.
import Foundation
import GRDB
import LookalikeCatalogue
import LookalikeIndex

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

    /// Stores (or replaces) a trained model. (The `imageCode` table of migration v2 is no longer
    /// written: every index codes its images with the encoder; v6 drops it.)
    public func save(hashModel: HashModel, model: String) throws {
        try pool.write { db in
            try TrainedModelRecord(name: hashModel.name, kind: hashModel.kind, model: model, dimension: hashModel.encoder.dimension,
                                   bits: hashModel.encoder.bits, parameters: hashModel.encoder.serialized(),
                                   summary: hashModel.summary, trainedAt: hashModel.trainedAt).save(db)
        }
    }
}
