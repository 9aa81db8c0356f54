// The change journal: triggers on `embedding` append one `change` row per vector added, replaced or
// removed (see Migrations v2), so its last sequence number is the catalogue's change counter. A
// snapshot records the counter it reflects; a reader (search, serve) catches up by asking for the
// net changes after that counter. The one writer (`index`) prunes entries a fresh snapshot covers
// and records how far it pruned (the floor): a reader whose counter is below the floor cannot catch
// up from the journal and rebuilds from the catalogue instead.
import Foundation
import GRDB

/// Net effect of the journal after a counter: ids whose vector is new or replaced, ids removed.
public struct CatalogueChanges: Sendable, Equatable {
    public var counter: Int64
    public var added: Set<Int64> = []
    public var removed: Set<Int64> = []
    public var isEmpty: Bool { added.isEmpty && removed.isEmpty }

    package init(counter: Int64, added: Set<Int64> = [], removed: Set<Int64> = []) {
        self.counter = counter
        self.added = added
        self.removed = removed
    }
}

extension Catalogue {
    static let journalFloorKey = "journal.floor"

    static func journalFloor(_ db: Database) throws -> Int64 {
        try MetaRecord.fetchOne(db, key: journalFloorKey).flatMap { Int64($0.value) } ?? 0
    }

    static func changeCounter(_ db: Database) throws -> Int64 {
        let last = try Int64.fetchOne(db, ChangeRecord.select(max(ChangeRecord.Columns.seq))) ?? 0
        return max(last, try journalFloor(db))
    }

    /// The sequence number of the last change (0 for a library that never changed since v2).
    public func changeCounter() throws -> Int64 {
        try pool.read { db in try Self.changeCounter(db) }
    }

    /// Net changes of `model`'s `variant` vectors after `counter`; nil when the journal was pruned
    /// past it (the caller must rebuild from the catalogue).
    public func changes(after counter: Int64, model: String, variant: String = EmbeddingVariant.raw) throws -> CatalogueChanges? {
        try pool.read { db in
            guard counter >= (try Self.journalFloor(db)) else { return nil }
            var result = CatalogueChanges(counter: try Self.changeCounter(db))
            let entries = try ChangeRecord.all().after(counter).of(model: model, variant: variant).fetchCursor(db)
            while let entry = try entries.next() {
                switch entry.op {
                case .add: result.added.insert(entry.imageId); result.removed.remove(entry.imageId)
                case .remove: result.removed.insert(entry.imageId); result.added.remove(entry.imageId)
                }
            }
            return result
        }
    }

    /// Drops journal entries up to and including `seq` (the writer, after a snapshot covers them).
    public func pruneJournal(through seq: Int64) throws {
        try pool.write { db in
            guard seq > (try Self.journalFloor(db)) else { return }
            _ = try ChangeRecord.filter(ChangeRecord.Columns.seq <= seq).deleteAll(db)
            try MetaRecord(key: Self.journalFloorKey, value: String(seq)).save(db)
        }
    }

    /// Entries currently in the journal.
    public func journalLength() throws -> Int {
        try pool.read { db in try ChangeRecord.fetchCount(db) }
    }
}
