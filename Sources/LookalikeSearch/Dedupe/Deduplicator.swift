// Dedupe/ owns duplicate detection. Exact duplicates are files with identical bytes (one image,
// several paths in the catalogue). Near-duplicates are images whose embeddings' cosine distance is
// under a threshold (re-encodes, resizes, small crops, brightness changes). The library's vectors
// are compared block against block (BLAS sgemm on 4096-row blocks of the shared store, upper
// triangle only), and each close pair is joined at once by union-find, which also tracks each
// group's largest linked distance: memory is two blocks plus one score block plus O(n) for the
// union-find, never a list of pairs (which grows as n^2 in a library full of near-copies).
// Dedupe always compares the raw network vectors.
import CBLAS
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public struct DuplicateGroup: Sendable, Codable {
    /// "exact" (same bytes) or "near" (embedding distance under the threshold).
    public let kind: String
    public let paths: [String]
    /// Largest cosine distance between two linked members (0 for exact).
    public let maxDistance: Float
}

/// Disjoint sets over row numbers with the largest distance that joined each set.
struct UnionFind {
    private var parent: [Int32]
    private var worst: [Float]
    private(set) var joined: [Bool]

    init(count: Int) {
        parent = (0..<Int32(count)).map { $0 }
        worst = [Float](repeating: 0, count: count)
        joined = [Bool](repeating: false, count: count)
    }

    mutating func find(_ x: Int) -> Int {
        var x = x
        while Int(parent[x]) != x {
            parent[x] = parent[Int(parent[x])]
            x = Int(parent[x])
        }
        return x
    }

    mutating func union(_ a: Int, _ b: Int, distance: Float) {
        let ra = find(a), rb = find(b)
        joined[a] = true
        joined[b] = true
        if ra == rb {
            worst[ra] = max(worst[ra], distance)
        } else {
            parent[ra] = Int32(rb)
            worst[rb] = max(worst[rb], worst[ra], distance)
        }
    }

    mutating func worstDistance(_ x: Int) -> Float { worst[find(x)] }
}

public enum Deduplicator {
    /// The default near-duplicate threshold on cosine distance (1 - cosine similarity); chosen by the
    /// measurement in scripts/dedupe_eval.py (see docs/retrieval-quality.md, "Duplicates").
    public static let defaultThreshold: Float = 0.10
    static let block = 4096

    /// Near-duplicate groups over the store's live vectors: for each group, the row numbers (in the
    /// store's live order) and the largest linked distance.
    static func nearGroups(store: VectorStore, threshold: Float) -> (ids: [Int64], groups: [(rows: [Int], worst: Float)]) {
        let n = store.count
        let d = store.dimension
        guard n > 1 else { return ([], []) }
        var sets = UnionFind(count: n)
        var ids: [Int64] = []
        ids.reserveCapacity(n)
        var scores = [Float](repeating: 0, count: block * block)
        var i0 = 0
        store.forEachBatch(block) { rowIds, rows in
            ids.append(contentsOf: rowIds)
            let bi = rowIds.count
            var j0 = i0
            store.forEachBatch(block, startingAt: i0) { columnIds, columns in
                let bj = columnIds.count
                scores.withUnsafeMutableBufferPointer { s in
                    rows.withUnsafeBufferPointer { a in
                        columns.withUnsafeBufferPointer { b in
                            guard let sp = s.baseAddress, let ap = a.baseAddress, let bp = b.baseAddress else { return }
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(bi), Int32(bj), Int32(d),
                                        1, ap, Int32(d), bp, Int32(d), 0, sp, Int32(bj))
                        }
                    }
                    for r in 0..<bi {
                        let start = j0 == i0 ? r + 1 : 0
                        for c in start..<max(start, bj) {
                            let distance = 1 - s[r * bj + c]
                            if distance < threshold { sets.union(i0 + r, j0 + c, distance: max(0, distance)) }
                        }
                    }
                }
                j0 += bj
            }
            i0 += bi
        }
        var members: [Int: [Int]] = [:]
        for row in 0..<n where sets.joined[row] { members[sets.find(row), default: []].append(row) }
        let groups = members.values.filter { $0.count > 1 }.map { ($0, sets.worstDistance($0[0])) }
        return (ids, groups)
    }

    /// Groups of exact and near duplicates in the library.
    public static func groups(catalogue: Catalogue, threshold: Float = defaultThreshold) throws -> [DuplicateGroup] {
        var result = try catalogue.exactDuplicates().map { DuplicateGroup(kind: "exact", paths: $0, maxDistance: 0) }
        guard let model = try catalogue.storedModel() else { return result }
        let (store, _) = try LibrarySnapshot.openStore(catalogue: catalogue, model: model, precision: .float32)
        let (ids, groups) = nearGroups(store: store, threshold: threshold)
        let wanted = groups.flatMap { $0.rows.map { ids[$0] } }
        // One query with the ids when few (SQLite limits a query's parameters), else one pass over all.
        let summaries = wanted.count <= 10_000 ? try catalogue.summaries(imageIds: wanted) : try catalogue.allSummaries()
        var near: [DuplicateGroup] = []
        for group in groups {
            let paths = group.rows.compactMap { summaries[ids[$0]]?.path }.sorted()
            if paths.count > 1 { near.append(DuplicateGroup(kind: "near", paths: paths, maxDistance: group.worst)) }
        }
        near.sort { $0.paths[0] < $1.paths[0] }
        result.append(contentsOf: near)
        return result
    }
}
