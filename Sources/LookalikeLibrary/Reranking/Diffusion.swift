// Diffusion (Iscen et al., "Efficient diffusion on region manifolds", CVPR 2017) over the library's
// own neighbourhood graph: relevance spreads from the query along chains of close images, so an
// image far from the query in cosine but linked to it through other images of the same object
// still ranks high. The graph is the mutual k-NN graph of the vectors the re-ranking ranks (the
// augmented ones when DBA is on), weights w_ij = max(0, cos_ij)^gamma, symmetrically normalised
// A = D^-1/2 W D^-1/2; a query's relevance f solves (I - alpha A) f = y with a few conjugate-gradient
// steps (sparse products over the graph only: O(k n) each, about 0.3 ms at 9k images). y is the
// query's node for a library image, else its top-k cosine neighbours weighted by cos^gamma. The
// final score adds f (scaled so its best other image gets 1) to the re-ranked cosine: diffusion
// alone ranks poorly far from the query, the cosine keeps the order there.
//
// Chosen with scripts/rerank_explore.py (README "Retrieval quality"): k 30, gamma 10, alpha 0.99, 10
// steps, weight 1. Cost: the graph needs every image's k nearest neighbours, one exact batch search
// of the library against itself (O(n^2 d): ~1.5 s at 9k images on 2 cores). The writer (`index`)
// builds it after the augmented vectors and keeps it beside the snapshots
// (`<db>.indexes/diffusion-<variant>-k<k>.lkix`, tied to the set of images it was built over), so
// searches load it in milliseconds; a search that finds it out of date uses it meanwhile and
// rebuilds it (LiveLibrary.diffusionGraph). Above `maximumGraph` images it is not built (searches
// then skip diffusion and say so) until the neighbours come from an approximate index.
import Foundation
import LookalikeEngine

public final class DiffusionGraph: Sendable {
    public static let gamma: Float = 10
    public static let alpha: Float = 0.99
    public static let iterations = 10
    /// Weight of the scaled diffusion score added to the cosine.
    public static let weight: Float = 1
    /// Largest library whose graph is built on the fly (exact neighbours).
    public static let maximumGraph = 60_000

    public let neighbours: Int
    let ids: [Int64]
    let positions: [Int64: Int32]
    /// The normalised adjacency A in compressed rows.
    let rowStart: [Int]
    let columns: [Int32]
    let values: [Float]

    public var count: Int { ids.count }

    /// The mutual `k`-NN graph of `store`'s live vectors (exact neighbours); nil above `maximumGraph`.
    public static func build(store: VectorStore, neighbours k: Int) throws -> DiffusionGraph? {
        guard store.count <= maximumGraph else { return nil }
        let index = ExactIndex(store: store, descriptor: IndexDescriptor(method: ExactIndex.methodName))
        var ids: [Int64] = []
        var lists: [[(Int64, Float)]] = []
        try store.forEachBatch(512) { batchIds, vectors in
            let found = try index.search(batch: vectors, k: k + 1, parameters: SearchParameters(metric: .cosine))
            for (i, id) in batchIds.enumerated() {
                ids.append(id)
                lists.append(found[i].lazy.filter { $0.id != id }.prefix(k).map { ($0.id, 1 - $0.distance) })
            }
        }
        return DiffusionGraph(ids: ids, lists: lists, neighbours: k)
    }

    init(neighbours: Int, ids: [Int64], rowStart: [Int], columns: [Int32], values: [Float]) {
        self.neighbours = neighbours
        self.ids = ids
        var positions: [Int64: Int32] = [:]
        positions.reserveCapacity(ids.count)
        for (p, id) in ids.enumerated() { positions[id] = Int32(p) }
        self.positions = positions
        self.rowStart = rowStart
        self.columns = columns
        self.values = values
    }

    /// From each node's neighbour list (id, cosine), best first.
    init(ids: [Int64], lists: [[(Int64, Float)]], neighbours k: Int) {
        neighbours = k
        self.ids = ids
        var positions: [Int64: Int32] = [:]
        positions.reserveCapacity(ids.count)
        for (p, id) in ids.enumerated() { positions[id] = Int32(p) }
        self.positions = positions
        let inList = lists.map { Set($0.map(\.0)) }
        // Mutual edges only: j lists i and i lists j (the weight is the same both ways).
        var edges = [[(Int32, Float)]](repeating: [], count: ids.count)
        for (i, list) in lists.enumerated() {
            for (j, similarity) in list {
                guard let pj = positions[j], inList[Int(pj)].contains(ids[i]) else { continue }
                edges[i].append((pj, pow(max(0, similarity), Self.gamma)))
            }
        }
        let degree = edges.map { $0.reduce(Float(0)) { $0 + $1.1 } }
        var rowStart = [0]
        var columns: [Int32] = []
        var values: [Float] = []
        for (i, row) in edges.enumerated() {
            for (j, w) in row.sorted(by: { $0.0 < $1.0 }) {
                let d = degree[i] * degree[Int(j)]
                guard d > 0 else { continue }
                columns.append(j)
                values.append(w / d.squareRoot())
            }
            rowStart.append(columns.count)
        }
        self.rowStart = rowStart
        self.columns = columns
        self.values = values
    }

    /// y = A x.
    func multiply(_ x: [Float], into y: inout [Float]) {
        columns.withUnsafeBufferPointer { c in
            values.withUnsafeBufferPointer { v in
                for i in 0..<ids.count {
                    var s: Float = 0
                    for e in rowStart[i]..<rowStart[i + 1] { s += v[e] * x[Int(c[e])] }
                    y[i] = s
                }
            }
        }
    }

    /// f solving (I - alpha A) f = y by conjugate gradients (the matrix is symmetric positive
    /// definite: A's eigenvalues lie in [-1, 1] and alpha < 1), `iterations` steps from f = 0; by
    /// graph position (empty when no seed is in the graph).
    func relevance(seed: [(id: Int64, weight: Float)]) -> [Float] {
        let n = ids.count
        var r = [Float](repeating: 0, count: n)
        for (id, w) in seed { if let p = positions[id] { r[Int(p)] += w } }
        var f = [Float](repeating: 0, count: n)
        var p = r
        var ap = [Float](repeating: 0, count: n)
        var rr = r.reduce(Float(0)) { $0 + $1 * $1 }
        guard rr > 0 else { return [] }
        for _ in 0..<Self.iterations {
            multiply(p, into: &ap)
            var pap: Float = 0
            for i in 0..<n {
                ap[i] = p[i] - Self.alpha * ap[i]
                pap += p[i] * ap[i]
            }
            guard pap > 0 else { break }
            let a = rr / pap
            var next: Float = 0
            for i in 0..<n {
                f[i] += a * p[i]
                r[i] -= a * ap[i]
                next += r[i] * r[i]
            }
            guard next > 0 else { break }
            let beta = next / rr
            rr = next
            for i in 0..<n { p[i] = r[i] + beta * p[i] }
        }
        return f
    }

    /// The relevance of each image reached (id -> f > 0), for tests and inspection.
    public func relevanceById(seed: [(id: Int64, weight: Float)]) -> [Int64: Float] {
        var out: [Int64: Float] = [:]
        for (i, value) in relevance(seed: seed).enumerated() where value > 0 { out[ids[i]] = value }
        return out
    }

    /// A ranking re-scored with diffusion: `found` (a ranking of the re-ranked query `query`
    /// against `ranked`, distances 1 - cosine) joined by the `pool` images diffusion scores highest,
    /// each scored cosine + weight * f / max f (the best image other than the query's own node
    /// gets 1); the `limit` best, as neighbours with distance 1 - score (an order, not a cosine).
    func rescore(_ found: [Neighbor], query: [Float], seed: [(id: Int64, weight: Float)], libraryId: Int64?,
                 ranked: VectorStore, parameters: SearchParameters, pool: Int, limit: Int) -> [Neighbor] {
        var f = relevance(seed: seed)
        if let libraryId, let p = positions[libraryId], !f.isEmpty { f[Int(p)] = 0 }
        guard let best = f.max(), best > 0 else { return Array(found.prefix(limit)) }
        let scale = Self.weight / best
        func diffused(_ id: Int64) -> Float { positions[id].map { f[Int($0)] } ?? 0 }
        var out: [Neighbor] = []
        out.reserveCapacity(found.count + pool)
        var seen = Set<Int64>(minimumCapacity: found.count + pool)
        for nb in found {
            seen.insert(nb.id)
            out.append(Neighbor(id: nb.id, distance: nb.distance - scale * diffused(nb.id)))
        }
        // Images diffusion ranks high that the scan did not return (all of them when the scan
        // returned fewer than the graph holds and `pool` covers the graph).
        var strongest = f.indices.filter { f[$0] > 0 }
        if strongest.count > pool {
            strongest.sort { f[$0] > f[$1] }
            strongest.removeSubrange(pool...)
        }
        for position in strongest {
            let id = ids[position]
            guard !seen.contains(id), !parameters.excluding.contains(id), parameters.filter?(id) ?? true,
                  let x = ranked.reconstruct(id) else { continue }
            var dot: Float = 0
            for i in 0..<min(x.count, query.count) { dot += x[i] * query[i] }
            out.append(Neighbor(id: id, distance: 1 - dot - scale * f[position]))
        }
        out.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.id < $1.id) }
        return Array(out.prefix(limit))
    }
}

// MARK: the file beside the snapshots

extension DiffusionGraph {
    static let fileTag = "diffusion"

    /// Which images a graph is over: FNV-1a of the sorted live ids and their count.
    public static func fingerprint(_ store: VectorStore) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let ids = store.liveIds.sorted()
        for id in ids {
            var v = UInt64(bitPattern: id)
            for _ in 0..<8 {
                hash = (hash ^ (v & 0xff)) &* 0x100_0000_01b3
                v >>= 8
            }
        }
        return "\(ids.count)-\(String(hash, radix: 16))"
    }

    public static func url(for catalogue: Catalogue, variant: String, neighbours: Int) -> URL {
        LibrarySnapshot.folder(for: catalogue).appendingPathComponent("diffusion-\(variant)-k\(neighbours).lkix")
    }

    func write(to url: URL, model: String, variant: String, fingerprint: String) throws {
        let bytes = ids.count * 8 + rowStart.count * 8 + columns.count * 4 + values.count * 4
        let header = IndexFileHeader(dimension: 0, count: ids.count, catalogueCounter: 0, model: model, variant: variant,
                                     payloadBytes: bytes,
                                     fields: ["neighbours": String(neighbours), "edges": String(columns.count),
                                              "fingerprint": fingerprint, "gamma": String(Self.gamma)])
        try IndexFile.write(to: url, tag: Self.fileTag, header: header) { writer in
            try writer.append(array: ids)
            try writer.append(array: rowStart.map(Int64.init))
            try writer.append(array: columns)
            try writer.append(array: values)
        }
    }

    /// The graph in `url` when it was made for this model, variant and k (any images: the
    /// fingerprint says which); nil when absent or unreadable (it is then rebuilt).
    static func read(_ url: URL, model: String, variant: String, neighbours k: Int) -> (graph: DiffusionGraph, fingerprint: String)? {
        guard FileManager.default.fileExists(atPath: url.path), let contents = try? IndexFile.read(url) else { return nil }
        let h = contents.header
        guard contents.tag == fileTag, h.model == model, h.variant == variant, h.fields["neighbours"] == String(k),
              h.fields["gamma"] == String(Self.gamma), let fingerprint = h.fields["fingerprint"],
              let edges = h.fields["edges"].flatMap(Int.init) else { return nil }
        let n = h.count
        guard n * 16 + 8 + edges * 8 == h.payloadBytes else { return nil }
        let payload = contents.payload
        func array<T>(_ type: T.Type, at offset: Int, count: Int) -> [T] {
            (0..<count).map { payload.loadUnaligned(fromByteOffset: offset + $0 * MemoryLayout<T>.stride, as: T.self) }
        }
        let ids = array(Int64.self, at: 0, count: n)
        let rowStart = array(Int64.self, at: n * 8, count: n + 1).map { Int($0) }
        let columns = array(Int32.self, at: n * 16 + 8, count: edges)
        let values = array(Float.self, at: n * 16 + 8 + edges * 4, count: edges)
        guard rowStart.first == 0, rowStart.last == edges, zip(rowStart, rowStart.dropFirst()).allSatisfy({ $0 <= $1 }),
              columns.allSatisfy({ $0 >= 0 && Int($0) < n }) else { return nil }
        return (DiffusionGraph(neighbours: k, ids: ids, rowStart: rowStart, columns: columns, values: values), fingerprint)
    }
}

// MARK: the writer's step

extension DiffusionGraph {
    public struct Refresh: Sendable, Codable {
        public var file: String
        public var images: Int
        /// False when the file was already over the current images.
        public var rebuilt: Bool
        public var seconds: Double
        public var skipped: String? = nil
    }

    /// Brings the graph file of `store` (the library's `variant` vectors) in step with its images.
    public static func refresh(catalogue: Catalogue, model: ModelInfo, store: VectorStore, variant: String,
                               neighbours: Int) throws -> Refresh {
        let started = Date()
        let url = url(for: catalogue, variant: variant, neighbours: neighbours)
        guard store.count <= maximumGraph else {
            try? FileManager.default.removeItem(at: url)
            return Refresh(file: url.lastPathComponent, images: store.count, rebuilt: false, seconds: 0,
                           skipped: "\(store.count) images: the graph's exact neighbours are O(n^2); skipped above \(maximumGraph)")
        }
        let fingerprint = fingerprint(store)
        if let (_, made) = read(url, model: model.checksum, variant: variant, neighbours: neighbours), made == fingerprint {
            return Refresh(file: url.lastPathComponent, images: store.count, rebuilt: false, seconds: Date().timeIntervalSince(started))
        }
        try build(store: store, neighbours: neighbours)?.write(to: url, model: model.checksum, variant: variant, fingerprint: fingerprint)
        return Refresh(file: url.lastPathComponent, images: store.count, rebuilt: true, seconds: Date().timeIntervalSince(started))
    }
}

