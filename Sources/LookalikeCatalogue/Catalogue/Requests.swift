// The catalogue's recurring requests as methods on GRDB's request types, so call sites read
// `FileRecord.all().filter(path: p)` or `EmbeddingRecord.all().of(model: m)` instead of repeating
// column filters (and no SQL strings appear outside the migrations).
import GRDB

extension DerivableRequest<FileRecord> {
    func filter(path: String) -> Self { filter(FileRecord.Columns.path == path) }
    func filter(imageId: Int64) -> Self { filter(FileRecord.Columns.imageId == imageId) }
    package func filter(imageIds: [Int64]) -> Self { filter(imageIds.contains(FileRecord.Columns.imageId)) }
    /// Files in insertion order (an image's first path is its display path).
    package func inInsertionOrder() -> Self { order(Column("id")) }
}

extension DerivableRequest<ImageRecord> {
    func filter(contentHash: String) -> Self { filter(ImageRecord.Columns.contentHash == contentHash) }
}

extension DerivableRequest<EmbeddingRecord> {
    /// Vectors of one model and variant (the raw network vectors by default).
    package func of(model: String, variant: String = EmbeddingVariant.raw) -> Self {
        filter(EmbeddingRecord.Columns.model == model && EmbeddingRecord.Columns.variant == variant)
    }
}

extension DerivableRequest<ChangeRecord> {
    /// Journal entries after `seq`, oldest first.
    func after(_ seq: Int64) -> Self { filter(ChangeRecord.Columns.seq > seq).order(ChangeRecord.Columns.seq) }
    func of(model: String, variant: String) -> Self {
        filter(ChangeRecord.Columns.model == model && ChangeRecord.Columns.variant == variant)
    }
}
