// The `lsh` index: random-hyperplane locality-sensitive hashing (Charikar 2002), the seed
// article's method. Descriptor `lsh:K:L` (K bits per signature, L tables; default `lsh:10:5`, the
// seed's setting). Each table has K random Gaussian hyperplanes; a vector's signature is the sign
// pattern of its K projections, and the table maps signature -> positions. A query collects the
// positions in its own bucket of every table plus, with multi-probe (Lv et al. 2007), the `probes`
// nearby buckets most likely to hold neighbours: those reached by flipping the bits whose
// projections were closest to zero (fewest, smallest margins first). Candidates are re-ranked
// exactly against the shared vector store.
//
// Trade-offs: a larger K makes buckets smaller (fewer candidates, faster, lower recall per table);
// more tables L or more probes raise recall at the cost of candidates and memory (L x 4 bytes of
// signature plus one bucket entry per table per image). K = 10 over 10^6 images leaves about 1,000
// images per bucket, so the re-rank dominates; K = 16 with L = 8..16 and a few probes is the usual
// sweet spot at that size. Nothing is learned (hyperplanes come from the seed), so `isTrained` is
// always true. Removal is a tombstone; tombstones are compacted away once they are a quarter.
import CBLAS
import Dispatch
import Foundation
import LookalikeEngine

public final class LSHIndex: VectorIndex, @unchecked Sendable {
    // Buckets, signatures and positions are guarded by `lock`.
    public static let methodName = "lsh"
    public let descriptor: IndexDescriptor
    public let dimension: Int
    public let bitsPerTable: Int
    public let tables: Int
    public let seed: UInt64
    public let store: VectorStore
    private let ownsStore: Bool
    private let defaultProbes: Int
    /// D x (K*L) row-major hyperplanes; column t*K + j is bit j of table t.
    private let planes: [Float]
    private let lock = ReadWriteLock()
    private var buckets: [[UInt32: [Int32]]]
    /// L signatures per position (kept for compaction and the file).
    private var signatures: [UInt32] = []
    private var table = PositionTable()
    private var buildSeconds = 0.0

    public init(descriptor: IndexDescriptor, dimension: Int, store: VectorStore?) throws {
        let options = try DescriptorOptions(descriptor, allowedKeys: ["probes", "seed"], maxNumbers: 2)
        let k = options.numbers.count > 0 ? options.numbers[0] : 10
        let l = options.numbers.count > 1 ? options.numbers[1] : 5
        guard (1...32).contains(k), (1...64).contains(l) else {
            throw IndexError("lsh index: K = \(k) bits and L = \(l) tables; use 1...32 bits and 1...64 tables (lsh:K:L)")
        }
        self.descriptor = descriptor
        self.dimension = dimension
        bitsPerTable = k
        tables = l
        seed = UInt64(options.int("seed") ?? 1)
        defaultProbes = max(0, options.int("probes") ?? 8)
        let rerank = try RerankStore(dimension: dimension, shared: store)
        self.store = rerank.store
        ownsStore = rerank.owned
        var rng = TrainingRandom(seed: seed)
        planes = (0..<dimension * k * l).map { _ in rng.normal() }
        buckets = Array(repeating: [:], count: l)
    }

    public var count: Int { lock.read { table.count } }
    public var nativeMetrics: Set<Metric> { [.cosine, .euclidean] }
    public var isTrained: Bool { true }
    public func train(_ vectors: [Float]) throws {}

    /// Projections of rows onto every hyperplane (rows x K*L).
    private func project(_ vectors: [Float]) -> [Float] {
        let rows = vectors.count / dimension
        let width = bitsPerTable * tables
        return Linear.product(vectors, planes, m: rows, n: width, k: dimension)
    }

    private func signature(_ projections: UnsafeBufferPointer<Float>, row: Int, table t: Int) -> UInt32 {
        var s: UInt32 = 0
        let base = row * bitsPerTable * tables + t * bitsPerTable
        for j in 0..<bitsPerTable where projections[base + j] >= 0 { s |= 1 << UInt32(j) }
        return s
    }

    public func add(ids: [Int64], vectors: [Float]) throws {
        guard vectors.count == ids.count * dimension else {
            throw IndexError("add: \(vectors.count) values for \(ids.count) vectors of dimension \(dimension)")
        }
        let started = Date()
        if ownsStore { try store.add(ids: ids, vectors: vectors) }
        let projections = project(vectors)
        try lock.write {
            guard table.slots + ids.count < Int(Int32.max) else { throw IndexError("lsh index: more than 2^31 positions") }
            projections.withUnsafeBufferPointer { pr in
                for (i, id) in ids.enumerated() {
                    let p = Int32(table.append(id))
                    for t in 0..<tables {
                        let s = signature(pr, row: i, table: t)
                        signatures.append(s)
                        buckets[t][s, default: []].append(p)
                    }
                }
            }
            buildSeconds += Date().timeIntervalSince(started)
        }
    }

    @discardableResult
    public func remove(ids: Set<Int64>) -> Int {
        if ownsStore { store.remove(ids: ids) }
        return lock.write {
            var removed = 0
            for id in ids where table.remove(id) { removed += 1 }
            if table.wantsCompaction { compactLocked() }
            return removed
        }
    }

    private func compactLocked() {
        let live = table.livePositions
        var fresh = PositionTable()
        var kept: [UInt32] = []
        buckets = Array(repeating: [:], count: tables)
        for p in live {
            let q = Int32(fresh.append(table.ids[p]))
            for t in 0..<tables {
                let s = signatures[p * tables + t]
                kept.append(s)
                buckets[t][s, default: []].append(q)
            }
        }
        table = fresh
        signatures = kept
    }

    /// Bit masks to flip, best first: single bits and pairs among the `pool` smallest margins,
    /// ordered by the summed squared margin (the query-directed probing score of Lv et al.).
    private func probeMasks(_ margins: [Float], count: Int) -> [UInt32] {
        guard count > 0 else { return [] }
        let order = margins.indices.sorted { margins[$0] < margins[$1] || (margins[$0] == margins[$1] && $0 < $1) }
        let pool = Array(order.prefix(min(margins.count, 12)))
        var options: [(Float, UInt32)] = []
        for (a, i) in pool.enumerated() {
            options.append((margins[i] * margins[i], 1 << UInt32(i)))
            for j in pool[(a + 1)...] { options.append((margins[i] * margins[i] + margins[j] * margins[j], 1 << UInt32(i) | 1 << UInt32(j))) }
        }
        options.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        return options.prefix(count).map(\.1)
    }

    public func search(batch queries: [Float], k: Int, parameters: SearchParameters) throws -> [[Neighbor]] {
        let m = try queryCount(queries)
        guard m > 0 else { return [] }
        let metric = parameters.metric ?? descriptor.metric
        let probes = parameters.probes ?? defaultProbes
        let projections = project(queries)
        let width = bitsPerTable * tables
        let one = { (qi: Int) -> [Neighbor] in
            let ids: [Int64] = self.lock.read {
                var positions: [Int32] = []
                projections.withUnsafeBufferPointer { pr in
                    let homes = (0..<self.tables).map { self.signature(pr, row: qi, table: $0) }
                    let margins = (0..<self.tables).map { t in (0..<self.bitsPerTable).map { abs(pr[qi * width + t * self.bitsPerTable + $0]) } }
                    for t in 0..<self.tables {
                        for mask in [0] + self.probeMasks(margins[t], count: probes) {
                            if let bucket = self.buckets[t][homes[t] ^ mask] { positions.append(contentsOf: bucket) }
                        }
                    }
                    // Too few candidates to answer k (small libraries, long signatures): keep probing
                    // further buckets (up to every 1- and 2-bit flip of the 12 weakest bits) so a
                    // search returns k results whenever the library holds k.
                    let needed = k + parameters.excluding.count
                    var distinct = Set(positions)
                    distinct = distinct.filter { !self.table.dead[Int($0)] }
                    if distinct.count < needed {
                        for t in 0..<self.tables {
                            for mask in self.probeMasks(margins[t], count: 78).dropFirst(probes) {
                                if let bucket = self.buckets[t][homes[t] ^ mask] {
                                    positions.append(contentsOf: bucket)
                                    for p in bucket where !self.table.dead[Int(p)] { distinct.insert(p) }
                                }
                            }
                            if distinct.count >= 2 * needed { break }
                        }
                    }
                }
                positions.sort()
                var out: [Int64] = []
                out.reserveCapacity(positions.count)
                var last: Int32 = -1
                for p in positions where p != last {
                    last = p
                    if !self.table.dead[Int(p)] { out.append(self.table.ids[Int(p)]) }
                }
                return out
            }
            return queries.withUnsafeBufferPointer { q in
                let query = Array(q[(qi * self.dimension)..<((qi + 1) * self.dimension)])
                return self.store.rank(query, candidates: ids, k: k, metric: metric, parameters: parameters)
            }
        }
        return try BatchQueries.run(m, one)
    }

    public func reconstruct(_ id: Int64) -> [Float]? {
        lock.read { table.positions[id] != nil } ? store.reconstruct(id) : nil
    }

    public var statistics: IndexStatistics {
        lock.read {
            // Per image: L signatures (4 bytes) and L bucket entries (4 bytes), id and position map.
            let structure = signatures.count * 8 + table.slots * 9 + table.positions.count * 32 + planes.count * 4
            return IndexStatistics(count: table.count, structureBytes: structure, vectorBytes: store.vectorBytes,
                                   buildSeconds: buildSeconds)
        }
    }

    // MARK: file: ids and signatures (the hyperplanes come back from the seed)

    public func write(to url: URL, origin: FileOrigin) throws {
        try lock.read {
            let live = table.livePositions
            var payload = PayloadWriter()
            payload.u64(live.map { table.ids[$0] })
            var kept: [UInt32] = []
            kept.reserveCapacity(live.count * tables)
            for p in live { kept.append(contentsOf: signatures[(p * tables)..<((p + 1) * tables)]) }
            payload.u64(kept)
            let header = IndexFileHeader(dimension: dimension, count: live.count, origin: origin,
                                         payloadBytes: payload.data.count,
                                         fields: ["bits": String(bitsPerTable), "tables": String(tables), "seed": String(seed)])
            try IndexFile.write(to: url, tag: descriptor.description, header: header) { writer in
                try writer.append(payload.data)
            }
        }
    }

    static func read(_ contents: IndexFile.Contents, store: VectorStore?) throws -> LSHIndex {
        let source = contents.mapping.path
        let index = try LSHIndex(descriptor: try contents.descriptor, dimension: contents.header.dimension,
                                 store: try RerankStore.required(store, contents))
        guard contents.header.fields["seed"] == String(index.seed), contents.header.fields["tables"] == String(index.tables) else {
            throw IndexError("\(source): header fields 'seed'/'tables' do not match the descriptor \(contents.tag)")
        }
        var reader = PayloadReader(bytes: contents.payload, source: source)
        let ids = try reader.array(Int64.self, count: contents.header.count)
        let signatures = try reader.array(UInt32.self, count: contents.header.count * index.tables)
        try reader.finish()
        let limit = index.bitsPerTable == 32 ? UInt32.max : (1 << UInt32(index.bitsPerTable)) - 1
        guard signatures.allSatisfy({ $0 <= limit }) else { throw IndexError("\(source): signature wider than \(index.bitsPerTable) bits") }
        try index.lock.write {
            index.table = try PositionTable(ids: ids)
            index.signatures = signatures
            for p in 0..<ids.count {
                for t in 0..<index.tables { index.buckets[t][signatures[p * index.tables + t], default: []].append(Int32(p)) }
            }
        }
        return index
    }
}
