// Duplicate detection. Exact duplicates are files with identical bytes (one image, several paths in
// the catalogue). Near-duplicates are images whose embeddings' cosine distance is under a threshold
// (re-encodes, resizes, small crops, brightness changes): all pairs are scored with blocked matrix
// products (BLAS sgemm) and pairs under the threshold are joined into groups by union-find.
import CBLAS
import Foundation

public struct DuplicateGroup: Sendable, Codable {
    /// "exact" (same bytes) or "near" (embedding distance under the threshold).
    public let kind: String
    public let paths: [String]
    /// Largest cosine distance between two linked members (0 for exact).
    public let maxDistance: Float
}

public enum Deduplicator {
    /// The default near-duplicate threshold on cosine distance (1 - cosine similarity); chosen by the
    /// measurement in scripts/dedupe_eval.py (see README "Duplicates").
    public static let defaultThreshold: Float = 0.10

    /// Pairs (i, j, distance) with i < j and cosine distance below `threshold`, over `n` unit vectors.
    public static func closePairs(vectors: [Float], count n: Int, dimension d: Int, threshold: Float) -> [(Int, Int, Float)] {
        guard n > 1 else { return [] }
        let block = 1024
        var pairs: [(Int, Int, Float)] = []
        var scores = [Float](repeating: 0, count: block * block)
        vectors.withUnsafeBufferPointer { v in
            guard let base = v.baseAddress else { return }
            var i0 = 0
            while i0 < n {
                let bi = min(block, n - i0)
                var j0 = i0
                while j0 < n {
                    let bj = min(block, n - j0)
                    scores.withUnsafeMutableBufferPointer { s in
                        guard let sp = s.baseAddress else { return }
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(bi), Int32(bj), Int32(d),
                                    1, base + i0 * d, Int32(d), base + j0 * d, Int32(d), 0, sp, Int32(bj))
                        for a in 0..<bi {
                            let start = j0 == i0 ? a + 1 : 0
                            for b in start..<max(start, bj) {
                                let distance = 1 - sp[a * bj + b]
                                if distance < threshold { pairs.append((i0 + a, j0 + b, max(0, distance))) }
                            }
                        }
                    }
                    j0 += bj
                }
                i0 += bi
            }
        }
        return pairs
    }

    /// Groups of exact and near duplicates in the library.
    public static func groups(catalogue: Catalogue, threshold: Float = defaultThreshold) throws -> [DuplicateGroup] {
        var result = try catalogue.exactDuplicates().map { DuplicateGroup(kind: "exact", paths: $0, maxDistance: 0) }
        guard let model = try catalogue.storedModel() else { return result }
        let (ids, vectors) = try catalogue.loadVectors(model: model.id, dimension: model.dimension)
        let pairs = closePairs(vectors: vectors, count: ids.count, dimension: model.dimension, threshold: threshold)
        var parent = Array(0..<ids.count)
        func find(_ x: Int) -> Int {
            var x = x
            while parent[x] != x { parent[x] = parent[parent[x]]; x = parent[x] }
            return x
        }
        for (a, b, _) in pairs {
            let ra = find(a), rb = find(b)
            if ra != rb { parent[ra] = rb }
        }
        var members: [Int: Set<Int>] = [:]
        var worst: [Int: Float] = [:]
        for (a, b, distance) in pairs {
            let root = find(a)
            members[root, default: []].formUnion([a, b])
            worst[root] = max(worst[root] ?? 0, distance)
        }
        let summaries = try catalogue.allSummaries()
        var near: [DuplicateGroup] = []
        for (root, list) in members {
            let paths = list.compactMap { summaries[ids[$0]]?.path }.sorted()
            if paths.count > 1 { near.append(DuplicateGroup(kind: "near", paths: paths, maxDistance: worst[root] ?? 0)) }
        }
        near.sort { $0.paths[0] < $1.paths[0] }
        result.append(contentsOf: near)
        return result
    }
}
