// The store as an `IndexFile` (snapshots, the exact index's file): written atomically, read back
// with the Float32 rows used in place from the mapping.
import CBLAS
import CKernels
import Dispatch
import Foundation
import HeapModule
import LookalikeEngine

extension VectorStore {
    /// Writes the live rows: ids, then rows in the store's precision (payload of an `IndexFile`).
    package func write(to url: URL, tag: String, origin: FileOrigin, model: String? = nil, variant: String? = nil,
               fields: [String: String] = [:]) throws {
        try lock.read {
            let live = ids.indices.filter { !dead[$0] }
            let idBytes = (live.count * 8 + IndexFile.alignment - 1) / IndexFile.alignment * IndexFile.alignment
            var allFields = fields
            allFields["precision"] = precision.rawValue
            let header = IndexFileHeader(dimension: dimension, count: live.count, origin: origin,
                                         model: model, variant: variant,
                                         payloadBytes: idBytes + live.count * dimension * precision.bytesPerValue,
                                         fields: allFields)
            try IndexFile.write(to: url, tag: tag, header: header) { writer in
                var idData = Data(capacity: idBytes)
                for p in live { withUnsafeBytes(of: ids[p].littleEndian) { idData.append(contentsOf: $0) } }
                idData.append(contentsOf: [UInt8](repeating: 0, count: idBytes - idData.count))
                try writer.append(idData)
                // Runs of consecutive live rows in one segment are written in one piece.
                var i = 0
                while i < live.count {
                    let p = live[i]
                    var j = i + 1
                    let inMapped = p < mappedCount
                    while j < live.count && live[j] == live[j - 1] + 1 && (live[j] < mappedCount) == inMapped { j += 1 }
                    guard let row = rowPointerLocked(p) else { break }
                    let rows = j - i
                    if inMapped && precision == .float16 {
                        var halves = [UInt16](repeating: 0, count: rows * dimension)
                        halves.withUnsafeMutableBufferPointer { h in
                            if let hp = h.baseAddress { lk_f32_to_f16(row.assumingMemoryBound(to: Float.self), hp, rows * dimension) }
                        }
                        try writer.append(array: halves)
                    } else {
                        try writer.append(UnsafeRawBufferPointer(start: row, count: rows * owned.bytesPerRow))
                    }
                    i = j
                }
            }
        }
    }

    /// A store over a verified file's payload: Float32 rows are used in place from the mapping.
    package static func load(_ contents: IndexFile.Contents, precision wanted: StoragePrecision? = nil) throws -> VectorStore {
        let h = contents.header
        guard let stored = StoragePrecision(rawValue: h.fields["precision"] ?? "") else {
            throw IndexError("\(contents.mapping.path): no storage precision in the header")
        }
        let precision = wanted ?? stored
        let idBytes = (h.count * 8 + IndexFile.alignment - 1) / IndexFile.alignment * IndexFile.alignment
        guard h.dimension > 0, h.count >= 0, h.payloadBytes == idBytes + h.count * h.dimension * stored.bytesPerValue else {
            throw IndexError("\(contents.mapping.path): payload size does not match \(h.count) rows of \(h.dimension)")
        }
        let store = VectorStore(dimension: h.dimension, precision: precision)
        let payload = contents.payload
        guard let base = payload.baseAddress else { return store }
        let fileIds = (0..<h.count).map { Int64(littleEndian: payload.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        let rows = base + idBytes
        store.lock.write {
            if stored == .float32 && precision == .float32 {
                store.mapping = contents.mapping
                store.mappedRows = rows.assumingMemoryBound(to: Float.self)
                store.mappedCount = h.count
                if let start = contents.mapping.bytes.baseAddress {
                    store.rowFile = open(contents.mapping.path, O_RDONLY | O_CLOEXEC)
                    store.rowFileOffset = start.distance(to: UnsafeRawPointer(rows))
                }
            } else if stored == precision {
                store.owned.append(rows, count: h.count)
            } else if let out = store.owned.appendUninitialised(count: h.count) {
                let values = h.count * h.dimension
                if stored == .float32 {
                    lk_f32_to_f16(rows.assumingMemoryBound(to: Float.self), out.assumingMemoryBound(to: UInt16.self), values)
                } else {
                    lk_f16_to_f32(rows.assumingMemoryBound(to: UInt16.self), out.assumingMemoryBound(to: Float.self), values)
                }
            }
            store.ids = fileIds
            store.positions.reserveCapacity(h.count)
            for (p, id) in fileIds.enumerated() { store.positions[id] = p }
            store.dead = [Bool](repeating: false, count: h.count)
        }
        guard store.positions.count == h.count else {
            throw IndexError("\(contents.mapping.path): duplicate ids in the file")
        }
        return store
    }
}
