// Diffusion (Iscen et al., "Efficient diffusion on region manifolds", CVPR 2017) over the library's
// own neighbourhood graph: relevance spreads from the query along chains of close images, so an
// image far from the query in cosine but linked to it through other images of the same object
// still ranks high. The graph is the mutual k-NN graph of the vectors the re-ranking ranks (the
// augmented ones when DBA is on), weights w_ij = max(0, cos_ij)^gamma, symmetrically normalised
// A = D^-1/2 W D^-1/2; a query's relevance f solves (I - alpha A) f = y with a few conjugate-gradient
// steps, truncated as Iscen et al. do: over the subgraph of the query's `candidates` best by the
// re-ranked cosine only, so its cost does not grow with the library (about 0.1 ms). y is the
// query's node: diffusion applies to library images (see Reranker.diffuses for why not to others). The
// final score adds f (scaled so the best candidate gets 1) to the re-ranked cosine: diffusion
// alone ranks poorly far from the query, the cosine keeps the order there. Measured on
// Caltech-101: 300 candidates give mAP 0.8356 against 0.8379 over the whole graph, at a fifth of
// the time (docs/retrieval-quality.md, "Re-ranking").
//
// Chosen with scripts/rerank_explore.py (docs/retrieval-quality.md): k 30, gamma 10, alpha 0.99, 10
// steps, weight 1. Cost: the graph needs every image's k nearest neighbours, one exact batch search
// of the library against itself (O(n^2 d): ~1.5 s at 9k images on 2 cores). The writer (`index`)
// builds it after the augmented vectors and keeps it beside the snapshots
// (`<db>.indexes/diffusion-<variant>-k<k>.lkix`, tied to the set of images it was built over), so
// searches load it in milliseconds; a search that finds it out of date uses it meanwhile and
// rebuilds it in memory (LiveLibrary.diffusionGraph; readers never write). Above `maximumGraph` images it is not built (searches
// then skip diffusion and say so) until the neighbours come from an approximate index.
import CKernels
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public final class DiffusionGraph: Sendable {
    public static let gamma: Float = 10
    /// Each node's edges fade below its best neighbour as its re-ranking's neighbours do
    /// (`Reranking.fade`), over this scale; an edge keeps the smaller of its two ends' shares, so
    /// the graph stays symmetric. Four photos of one object then spread relevance among themselves,
    /// not into a neighbouring object's photos.
    public static let neighbourhoodScale: Float = 0.15
    public static let alpha: Float = 0.99
    public static let iterations = 10
    /// Weight of the scaled diffusion score added to the cosine.
    public static let weight: Float = 1
    /// Largest library whose graph is built (exact neighbours).
    public static let maximumGraph = 60_000
    /// Candidates a query diffuses over (truncated diffusion): its best by the re-ranked cosine.
    /// (1000 kept 0.0008 more mAP on Caltech-101 and cost 40 % of a server's throughput.)
    public static let candidates = 300

    public let neighbours: Int
    let ids: [Int64]
    let positions: NodeIndex
    /// The normalised adjacency A in compressed rows.
    let rowStart: [Int]
    let columns: [Int32]
    let values: [Float]
    /// Each node's `neighbours` nearest (positions, -1 past the end of a short list) and their
    /// cosines, best first: the lists the graph was made from. A library image's query expansion
    /// reads its first ones instead of scanning the library (`nearest`). Empty in a subgraph.
    let listPositions: [Int32]
    let listSimilarities: [Float]

    public var count: Int { ids.count }

    /// The mutual `k`-NN graph of `store`'s live vectors (exact neighbours); nil above `maximumGraph`.
    public static func build(store: VectorStore, neighbours k: Int) throws -> DiffusionGraph? {
        guard store.count <= maximumGraph else { return nil }
        let (ids, lists) = try neighbourLists(store: store, neighbours: k)
        return DiffusionGraph(ids: ids, lists: lists, neighbours: k)
    }

    /// Every live vector's `k` nearest others (id, cosine), best first (exact).
    static func neighbourLists(store: VectorStore, neighbours k: Int) throws -> (ids: [Int64], lists: [[(Int64, Float)]]) {
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
        return (ids, lists)
    }

    /// What a node contributes to any subgraph it is in, so a graph too big to keep in the serving
    /// process (a Milvus collection's) can be rebuilt per query over the query's candidates alone
    /// (`subgraph`): its `k` nearest (id, cosine), best first, and `degree`, its row sum in the whole
    /// mutual graph (the normalisation).
    public struct NodeFacts: Sendable, Equatable {
        public let neighbours: [Neighbour]
        public let degree: Float
        public struct Neighbour: Sendable, Equatable {
            public let id: Int64
            public let similarity: Float

            package init(id: Int64, similarity: Float) {
                self.id = id
                self.similarity = similarity
            }
        }

        package init(neighbours: [Neighbour], degree: Float) {
            self.neighbours = neighbours
            self.degree = degree
        }
    }

    /// Every live vector's facts (nil above `maximumGraph`, as `build`).
    public static func nodeFacts(store: VectorStore, neighbours k: Int) throws -> [Int64: NodeFacts]? {
        guard store.count <= maximumGraph else { return nil }
        let (ids, lists) = try neighbourLists(store: store, neighbours: k)
        let edges = mutualEdges(ids: ids, lists: lists, positions: positions(ids))
        var facts: [Int64: NodeFacts] = [:]
        for (i, id) in ids.enumerated() {
            facts[id] = NodeFacts(neighbours: lists[i].map { NodeFacts.Neighbour(id: $0.0, similarity: $0.1) },
                                  degree: edges[i].reduce(Float(0)) { $0 + $1.1 })
        }
        return facts
    }

    /// The graph of these nodes only, from their facts: the principal submatrix of the whole
    /// graph's A (mutual k-NN edges, weights cos^gamma over sqrt(degree_i degree_j)), which is all
    /// truncated diffusion (`rescore`) reads.
    package static func subgraph(ids: [Int64], facts: [NodeFacts], neighbours k: Int) -> DiffusionGraph {
        let positions = positions(ids)
        let lists = facts.map { $0.neighbours.map { ($0.id, $0.similarity) } }
        // Only the edges inside the subset matter; `mutualEdges` skips the rest.
        let edges = mutualEdges(ids: ids, lists: lists, positions: positions)
        var rowStart = [0]
        var columns: [Int32] = []
        var values: [Float] = []
        for (i, row) in edges.enumerated() {
            for (j, w) in row.sorted(by: { $0.0 < $1.0 }) {
                let degrees = facts[i].degree * facts[Int(j)].degree
                guard degrees > 0 else { continue }
                columns.append(j)
                values.append(w / degrees.squareRoot())
            }
            rowStart.append(columns.count)
        }
        return DiffusionGraph(neighbours: k, ids: ids, rowStart: rowStart, columns: columns, values: values)
    }

    init(neighbours: Int, ids: [Int64], rowStart: [Int], columns: [Int32], values: [Float],
         listPositions: [Int32] = [], listSimilarities: [Float] = []) {
        self.neighbours = neighbours
        self.ids = ids
        positions = Self.positions(ids)
        self.rowStart = rowStart
        self.columns = columns
        self.values = values
        self.listPositions = listPositions
        self.listSimilarities = listSimilarities
    }

    /// The `count` nearest other images of a node (exact, best first, distance 1 - cosine), when
    /// the graph keeps its lists and `count` is within them; nil otherwise.
    public func nearest(_ id: Int64, count: Int) -> [Neighbor]? {
        guard count <= neighbours, !listPositions.isEmpty, let p = positions[id] else { return nil }
        let start = Int(p) * neighbours
        var out: [Neighbor] = []
        out.reserveCapacity(count)
        for slot in start..<(start + count) where listPositions[slot] >= 0 {
            out.append(Neighbor(id: ids[Int(listPositions[slot])], distance: 1 - listSimilarities[slot]))
        }
        return out
    }

    static func positions(_ ids: [Int64]) -> NodeIndex { NodeIndex(ids) }

    /// From each node's neighbour list (id, cosine), best first.
    init(ids: [Int64], lists: [[(Int64, Float)]], neighbours k: Int) {
        neighbours = k
        self.ids = ids
        let positions = Self.positions(ids)
        self.positions = positions
        let edges = Self.mutualEdges(ids: ids, lists: lists, positions: positions)
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
        var listPositions = [Int32](repeating: -1, count: ids.count * k)
        var listSimilarities = [Float](repeating: 0, count: ids.count * k)
        for (i, list) in lists.enumerated() {
            for (slot, (j, similarity)) in list.prefix(k).enumerated() {
                guard let pj = positions[j] else { continue }
                listPositions[i * k + slot] = pj
                listSimilarities[i * k + slot] = similarity
            }
        }
        self.listPositions = listPositions
        self.listSimilarities = listSimilarities
    }

    /// Each node's mutual edges (position, weight cos^gamma): j lists i and i lists j (the weight
    /// is the same both ways).
    static func mutualEdges(ids: [Int64], lists: [[(Int64, Float)]], positions: NodeIndex) -> [[(Int32, Float)]] {
        let inList = lists.map { Set($0.map(\.0)) }
        let best = lists.map { $0.map(\.1).max() ?? 0 }
        var edges = [[(Int32, Float)]](repeating: [], count: ids.count)
        for (i, list) in lists.enumerated() {
            for (j, similarity) in list {
                guard let pj = positions[j], inList[Int(pj)].contains(ids[i]) else { continue }
                let share = min(Reranking.fade(similarity, best: best[i], scale: neighbourhoodScale),
                                Reranking.fade(similarity, best: best[Int(pj)], scale: neighbourhoodScale))
                edges[i].append((pj, pow(max(0, similarity), Self.gamma) * share))
            }
        }
        return edges
    }

    /// f solving (I - alpha A_S) f = y on the subgraph S of the nodes `subset` (positions; A_S is
    /// A's principal submatrix, so the matrix stays symmetric positive definite: A's eigenvalues lie
    /// in [-1, 1] and alpha < 1) by conjugate gradients, `iterations` steps from f = 0. `y` is given
    /// per subset node. Returns f per subset node.
    func relevance(subset: [Int32], seed y: [Float]) -> [Float] {
        let m = subset.count
        // Graph position -> subset slot (-1: outside); a dense array, as hashing every edge's end
        // cost more than the diffusion itself.
        var local = [Int32](repeating: -1, count: ids.count)
        for (i, p) in subset.enumerated() { local[Int(p)] = Int32(i) }
        // The subgraph's rows, in local numbering (cut out in C: see lk_csr_subgraph).
        var start = [Int](repeating: 0, count: m + 1)
        let degrees = subset.reduce(0) { $0 + rowStart[Int($1) + 1] - rowStart[Int($1)] }
        var cols = [Int32](repeating: 0, count: max(1, degrees))
        var vals = [Float](repeating: 0, count: max(1, degrees))
        rowStart.withUnsafeBufferPointer { rs in
        columns.withUnsafeBufferPointer { c in
        values.withUnsafeBufferPointer { v in
        subset.withUnsafeBufferPointer { sub in
        local.withUnsafeBufferPointer { l in
        start.withUnsafeMutableBufferPointer { os in
        cols.withUnsafeMutableBufferPointer { oc in
        vals.withUnsafeMutableBufferPointer { ov in
            guard let rsp = rs.baseAddress, let cp = c.baseAddress, let vp = v.baseAddress, let sp = sub.baseAddress,
                  let lp = l.baseAddress, let osp = os.baseAddress, let ocp = oc.baseAddress, let ovp = ov.baseAddress else { return }
            rsp.withMemoryRebound(to: Int64.self, capacity: rs.count) { rs64 in
                osp.withMemoryRebound(to: Int64.self, capacity: os.count) { os64 in
                    _ = lk_csr_subgraph(rs64, cp, vp, sp, m, lp, os64, ocp, ovp)
                }
            }
        }}}}}}}}
        var f = [Float](repeating: 0, count: m)
        var r = y
        var p = r
        var ap = [Float](repeating: 0, count: m)
        var rr = r.reduce(Float(0)) { $0 + $1 * $1 }
        guard rr > 0 else { return f }
        let alpha = Self.alpha
        // Conjugate gradient on raw buffers: a served search runs this on every click, and the
        // arrays' bounds and uniqueness checks in these loops doubled its cost.
        start.withUnsafeBufferPointer { st in
        cols.withUnsafeBufferPointer { c in
        vals.withUnsafeBufferPointer { v in
        f.withUnsafeMutableBufferPointer { f in
        r.withUnsafeMutableBufferPointer { r in
        p.withUnsafeMutableBufferPointer { p in
        ap.withUnsafeMutableBufferPointer { ap in
            for _ in 0..<Self.iterations {
                var pap: Float = 0
                for i in 0..<m {
                    var s: Float = 0
                    for e in st[i]..<st[i + 1] { s += v[e] * p[Int(c[e])] }
                    ap[i] = p[i] - alpha * s
                    pap += p[i] * ap[i]
                }
                guard pap > 0 else { break }
                let a = rr / pap
                var next: Float = 0
                for i in 0..<m {
                    f[i] += a * p[i]
                    r[i] -= a * ap[i]
                    next += r[i] * r[i]
                }
                guard next > 0 else { break }
                let beta = next / rr
                rr = next
                for i in 0..<m { p[i] = r[i] + beta * p[i] }
            }
        }}}}}}}
        return f
    }

    /// The relevance of every image from `seed` over the whole graph (id -> f > 0): for tests and
    /// inspection (searches diffuse over their candidates only, see `rescore`).
    public func relevanceById(seed: [(id: Int64, weight: Float)]) -> [Int64: Float] {
        let all = (0..<Int32(ids.count)).map { $0 }
        var y = [Float](repeating: 0, count: ids.count)
        for (id, w) in seed { if let p = positions[id] { y[Int(p)] += w } }
        var out: [Int64: Float] = [:]
        for (i, value) in relevance(subset: all, seed: y).enumerated() where value > 0 { out[ids[i]] = value }
        return out
    }

    /// A library image's ranking re-scored with diffusion from its own node, truncated as Iscen et
    /// al. do: relevance spreads over the subgraph of the query's node and its `candidates` best
    /// (by the re-ranked cosine, `found`'s order); each candidate scores cosine + weight * f / max f
    /// (the best candidate gets 1; the query's own node does not count) and they are re-ordered;
    /// the rest of `found` follows in its order (below every candidate, since f >= 0). Distances
    /// are 1 - score (an order, not a cosine).
    package func rescore(_ found: [Neighbor], query: Int64, limit: Int) -> [Neighbor] {
        guard let node = positions[query] else { return Array(found.prefix(limit)) }
        let head = found.prefix(Self.candidates)
        // The subgraph's nodes (the query's first), and each candidate's slot in it (-1: not in the
        // graph); a candidate listed twice keeps its first slot. Arrays, not dictionaries: this
        // runs on every served click.
        var subset: [Int32] = [node]
        subset.reserveCapacity(head.count + 1)
        var slots = [Int](repeating: -1, count: head.count)
        var seen = Set<Int32>(minimumCapacity: head.count + 1)
        seen.insert(node)
        for (i, nb) in head.enumerated() {
            guard let p = positions[nb.id] else { continue }
            if nb.id == query { slots[i] = 0; continue }
            guard seen.insert(p).inserted else {
                slots[i] = subset.firstIndex(of: p) ?? -1
                continue
            }
            slots[i] = subset.count
            subset.append(p)
        }
        var y = [Float](repeating: 0, count: subset.count)
        y[0] = 1
        var f = relevance(subset: subset, seed: y)
        f[0] = 0
        guard let best = f.max(), best > 0 else { return Array(found.prefix(limit)) }
        let scale = Self.weight / best
        var rescored = zip(head, slots).map { nb, slot in
            Neighbor(id: nb.id, distance: nb.distance - scale * (slot >= 0 ? f[slot] : 0))
        }
        rescored.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.id < $1.id) }
        if rescored.count < limit { rescored += found.dropFirst(head.count).prefix(limit - rescored.count) }
        return Array(rescored.prefix(limit))
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
        LibrarySnapshot.folder(for: catalogue).appendingPathComponent("diffusion-\(DerivedFiles.fileName(variant))-k\(neighbours).lkix")
    }

    func write(to url: URL, origin: FileOrigin, model: String, variant: String, fingerprint: String) throws {
        let bytes = ids.count * 8 + rowStart.count * 8 + columns.count * 4 + values.count * 4
            + listPositions.count * 4 + listSimilarities.count * 4
        let header = IndexFileHeader(dimension: 0, count: ids.count, origin: origin,
                                     model: model, variant: variant,
                                     payloadBytes: bytes,
                                     fields: ["neighbours": String(neighbours), "edges": String(columns.count),
                                              "fingerprint": fingerprint, "gamma": String(Self.gamma),
                                              "fade": String(Self.neighbourhoodScale),
                                              "lists": String(listPositions.count)])
        try IndexFile.write(to: url, tag: Self.fileTag, header: header) { writer in
            try writer.append(array: ids)
            try writer.append(array: rowStart.map(Int64.init))
            try writer.append(array: columns)
            try writer.append(array: values)
            try writer.append(array: listPositions)
            try writer.append(array: listSimilarities)
        }
    }

    /// The graph in `url` when it was made for this model, variant and k (any images: the
    /// fingerprint says which); nil when absent or unreadable (it is then rebuilt).
    static func read(_ url: URL, catalogue: String, model: String, variant: String,
                     neighbours k: Int) -> (graph: DiffusionGraph, fingerprint: String)? {
        guard FileManager.default.fileExists(atPath: url.path), let contents = try? IndexFile.read(url, catalogue: catalogue) else { return nil }
        let h = contents.header
        guard contents.tag == fileTag, h.model == model, h.variant == variant, h.fields["neighbours"] == String(k),
              h.fields["gamma"] == String(Self.gamma), h.fields["fade"] == String(Self.neighbourhoodScale),
              let fingerprint = h.fields["fingerprint"],
              let edges = h.fields["edges"].flatMap(Int.init),
              // Files from before the lists were kept are rebuilt.
              let listed = h.fields["lists"].flatMap(Int.init) else { return nil }
        let n = h.count
        guard listed == n * k, n * 16 + 8 + edges * 8 + listed * 8 == h.payloadBytes else { return nil }
        let payload = contents.payload
        func array<T>(_ type: T.Type, at offset: Int, count: Int) -> [T] {
            (0..<count).map { payload.loadUnaligned(fromByteOffset: offset + $0 * MemoryLayout<T>.stride, as: T.self) }
        }
        let ids = array(Int64.self, at: 0, count: n)
        let rowStart = array(Int64.self, at: n * 8, count: n + 1).map { Int($0) }
        let columns = array(Int32.self, at: n * 16 + 8, count: edges)
        let values = array(Float.self, at: n * 16 + 8 + edges * 4, count: edges)
        let listPositions = array(Int32.self, at: n * 16 + 8 + edges * 8, count: listed)
        let listSimilarities = array(Float.self, at: n * 16 + 8 + edges * 8 + listed * 4, count: listed)
        guard rowStart.first == 0, rowStart.last == edges, zip(rowStart, rowStart.dropFirst()).allSatisfy({ $0 <= $1 }),
              columns.allSatisfy({ $0 >= 0 && Int($0) < n }), listPositions.allSatisfy({ $0 >= -1 && Int($0) < n }) else { return nil }
        return (DiffusionGraph(neighbours: k, ids: ids, rowStart: rowStart, columns: columns, values: values,
                               listPositions: listPositions, listSimilarities: listSimilarities), fingerprint)
    }
}

// MARK: the writer's step

/// What the writer did to a file derived from the library's images (the diffusion graph, the
/// answer lists).
public struct DerivedFileRefresh: Sendable, Codable {
    public var file: String
    public var images: Int
    /// False when the file was already over the current images.
    public var rebuilt: Bool
    public var seconds: Double
    public var skipped: String? = nil
}

extension DiffusionGraph {
    public typealias Refresh = DerivedFileRefresh

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
        let counter = try catalogue.changeCounter()
        // The manifest's rule (this catalogue, nothing changed since) and the file's own checks.
        if let header = try? IndexFile.read(url, catalogue: catalogue.identity, verifyChecksum: false).header,
           try DerivedFiles.staleness(header, catalogue: catalogue, model: model, replayed: false) == nil,
           let (_, made) = read(url, catalogue: catalogue.identity, model: model.checksum, variant: variant, neighbours: neighbours),
           made == fingerprint {
            return Refresh(file: url.lastPathComponent, images: store.count, rebuilt: false, seconds: Date().timeIntervalSince(started))
        }
        try build(store: store, neighbours: neighbours)?.write(to: url, origin: FileOrigin(catalogue: catalogue.identity, counter: counter),
                                                                 model: model.checksum, variant: variant, fingerprint: fingerprint)
        return Refresh(file: url.lastPathComponent, images: store.count, rebuilt: true, seconds: Date().timeIntervalSince(started))
    }
}

/// Image id -> graph node. Catalogue ids are dense (SQLite row ids), so when they span at most four
/// times their number they index an array directly: a served click looks up its 300 candidates
/// here, and the dictionary's hashing and scattered buckets were 3 % of a loaded server's CPU.
/// Other ids (sparse, or from a store) use a dictionary.
struct NodeIndex: Sendable {
    private let low: Int64
    private let dense: [Int32]
    private let sparse: [Int64: Int32]

    init(_ ids: [Int64]) {
        let low = ids.min() ?? 0
        let high = ids.max() ?? -1
        if !ids.isEmpty, high - low < Int64(max(1024, 4 * ids.count)) {
            var dense = [Int32](repeating: -1, count: Int(high - low) + 1)
            for (p, id) in ids.enumerated() { dense[Int(id - low)] = Int32(p) }
            self.low = low
            self.dense = dense
            sparse = [:]
        } else {
            var sparse: [Int64: Int32] = [:]
            sparse.reserveCapacity(ids.count)
            for (p, id) in ids.enumerated() { sparse[id] = Int32(p) }
            self.low = 0
            dense = []
            self.sparse = sparse
        }
    }

    subscript(id: Int64) -> Int32? {
        if dense.isEmpty { return sparse[id] }
        guard id >= low, id - low < Int64(dense.count) else { return nil }
        let p = dense[Int(id - low)]
        return p >= 0 ? p : nil
    }
}

