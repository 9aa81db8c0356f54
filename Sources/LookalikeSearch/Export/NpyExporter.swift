// Export of the library for other tools: `embeddings.npy` (float32 [N, D], NumPy format version 1.0),
// `paths.txt` (one absolute path per line, same order) and `labels.txt` (the label of each row).
import Foundation
import LookalikeCatalogue
import LookalikeIndex

public enum NpyExporter {
    /// Writes the three files into `directory` (created if needed); returns the number of rows.
    @discardableResult
    public static func export(catalogue: Catalogue, to directory: URL) throws -> Int {
        guard let model = try catalogue.storedModel() else {
            throw CatalogueError("library \(catalogue.path) is empty: nothing to export")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let (ids, vectors) = try catalogue.loadVectors(model: model.id, dimension: model.dimension)
        let summaries = try catalogue.allSummaries()
        var data = npyHeader(rows: ids.count, columns: model.dimension)
        vectors.withUnsafeBytes { data.append(contentsOf: $0) }
        try data.write(to: directory.appendingPathComponent("embeddings.npy"), options: .atomic)
        let paths = ids.map { summaries[$0]?.path ?? "" }
        let labels = ids.map { summaries[$0]?.label ?? "" }
        try (paths.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("paths.txt"), atomically: true, encoding: .utf8)
        try (labels.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("labels.txt"), atomically: true, encoding: .utf8)
        return ids.count
    }

    /// NPY 1.0 header for a little-endian float32 C-order matrix, padded so data starts at a multiple of 64.
    static func npyHeader(rows: Int, columns: Int) -> Data {
        var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        let preamble = 10  // magic (6) + version (2) + header length (2)
        let total = ((preamble + dict.utf8.count + 1 + 63) / 64) * 64
        dict += String(repeating: " ", count: total - preamble - dict.utf8.count - 1) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(dict.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        data.append(contentsOf: Array(dict.utf8))
        return data
    }
}
