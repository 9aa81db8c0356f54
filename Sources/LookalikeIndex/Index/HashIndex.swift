// The `hash` index: learned binary codes, coarse-to-fine (the seed thesis's method, done with
// modern parts). Coarse: each image is a B-bit code (B = 16...256, descriptor `hash:B`) from a
// `LinearHashEncoder` (PCA + ITQ, or the supervised latent hash layer, see Training/); a query's
// code is compared with every stored code by Hamming distance (XOR + hardware popcount over packed
// 64-bit words, CKernels `lk_hamming`), and the candidates are either the best C (`c=N`, or
// SearchParameters.candidates) or every code within a radius (`r=N`, the thesis's threshold).
// Fine: the candidates are re-ranked exactly against the shared vector store under the requested
// metric (cosine by default, chi-square as in the seed, any other); under cosine, supervised codes
// order them by cosine plus the agreement of the model's class posteriors (`rankWithClasses`), so
// the labels the codes learned also decide the fine order. The index holds only codes
// and ids (B/8 + 8 bytes per image plus bookkeeping). Removal is a tombstone (the code's distance
// is set out of range before selection); tombstones are compacted away once they are a quarter.
import CKernels
import Dispatch
import Foundation
import LookalikeEngine

public final class HashIndex: VectorIndex, @unchecked Sendable {
    // Mutable state (encoder, codes, positions) is guarded by `lock`.
    public static let methodName = "hash"
    public static let defaultBits = 64
    /// Default candidates re-ranked per query (at least 10 x k).
    public static let defaultCandidates = 1000

    public let descriptor: IndexDescriptor
    public let dimension: Int
    public let bits: Int
    public let store: VectorStore
    private let ownsStore: Bool
    private let radius: Int?
    private let candidates: Int
    private let lock = ReadWriteLock()
    private var encoder: LinearHashEncoder?
    /// The trained model the encoder came from (`HashModel.stamp`), nil when trained in memory.
    private(set) var modelStamp: String?
    private var codes: [UInt64] = []
    private var table = PositionTable()
    private var buildSeconds = 0.0
    /// Class posteriors of the rows the supervised fine stage has scored, by id: a row's posteriors
    /// depend only on its vector and the encoder (fixed once vectors are added), and projecting a
    /// query's candidates onto the hash layer was most of its time. Each entry carries a check, the
    /// row's product with the first hash direction, compared (bit for bit) with the stored row's
    /// before use: a row replaced under the same id, in whatever order the store and this index
    /// hear of it, is projected again. Forgotten for ids added again or removed; cleared whole past
    /// `posteriorCacheLimit` rows (4 B per class per row).
    private var posteriorCache: [Int64: (check: Float, posteriors: [Float])] = [:]
    private let posteriorLock = NSLock()
    static let posteriorCacheLimit = 250_000

    public init(descriptor: IndexDescriptor, dimension: Int, store: VectorStore?) throws {
        let options = try DescriptorOptions(descriptor, allowedKeys: ["c", "r"], maxNumbers: 1)
        let bits = options.numbers.first ?? Self.defaultBits
        guard (16...256).contains(bits) else {
            throw IndexError("hash index: \(bits) bits; use 16 to 256 (descriptor hash:B, e.g. hash:64)")
        }
        self.descriptor = descriptor
        self.dimension = dimension
        self.bits = bits
        radius = options.int("r")
        candidates = max(1, options.int("c") ?? Self.defaultCandidates)
        let rerank = try RerankStore(dimension: dimension, shared: store)
        self.store = rerank.store
        ownsStore = rerank.owned
    }

    /// Uses a trained encoder (from the catalogue) instead of training one.
    public func use(_ model: HashModel) throws {
        try use(model.encoder, stamp: model.stamp)
    }

    func use(_ encoder: LinearHashEncoder, stamp: String?) throws {
        guard encoder.dimension == dimension, encoder.bits == bits else {
            throw IndexError("hash index \(descriptor.name): encoder is \(encoder.dimension) x \(encoder.bits), index \(dimension) x \(bits)")
        }
        try lock.write {
            guard table.slots == 0 else { throw IndexError("hash index: the encoder is set before vectors are added") }
            self.encoder = encoder
            modelStamp = stamp
        }
    }

    var words: Int { (bits + 63) / 64 }
    public var count: Int { lock.read { table.count } }
    public var nativeMetrics: Set<Metric> { [.cosine, .euclidean] }
    public var isTrained: Bool { lock.read { encoder != nil } }

    /// Unsupervised training (PCA + ITQ) on sample vectors.
    public func train(_ vectors: [Float]) throws {
        let started = Date()
        let result = try ITQTrainer.train(vectors: vectors, dimension: dimension, bits: bits)
        try use(result.encoder, stamp: nil)
        lock.write { buildSeconds += Date().timeIntervalSince(started) }
    }

    public func add(ids: [Int64], vectors: [Float]) throws {
        guard vectors.count == ids.count * dimension else {
            throw IndexError("add: \(vectors.count) values for \(ids.count) vectors of dimension \(dimension)")
        }
        guard let encoder = lock.read({ encoder }) else {
            throw IndexError("hash index \(descriptor.name) is not trained: train it (or `lookalike prepare hash`) before adding")
        }
        let started = Date()
        if ownsStore { try store.add(ids: ids, vectors: vectors) }
        // After the store holds the new rows (a shared store is updated before its indexes): a
        // search that read an old row either finishes before this or sees a new generation.
        if encoder.head != nil { forgetPosteriors(of: ids) }
        let newCodes = encoder.encode(vectors)
        lock.write {
            codes.reserveCapacity(codes.count + newCodes.count)
            for (i, id) in ids.enumerated() {
                _ = table.append(id)
                codes.append(contentsOf: newCodes[(i * words)..<((i + 1) * words)])
            }
            buildSeconds += Date().timeIntervalSince(started)
        }
    }

    @discardableResult
    public func remove(ids: Set<Int64>) -> Int {
        if ownsStore { store.remove(ids: ids) }
        forgetPosteriors(of: ids)
        return lock.write {
            var removed = 0
            for id in ids where table.remove(id) { removed += 1 }
            if table.wantsCompaction { compactLocked() }
            return removed
        }
    }

    /// The remembered class posteriors of a row (tests).
    func rememberedPosteriors(of id: Int64) -> [Float]? { posteriorLock.withLock { posteriorCache[id]?.posteriors } }

    private func forgetPosteriors<S: Sequence<Int64>>(of ids: S) {
        posteriorLock.withLock {
            guard !posteriorCache.isEmpty else { return }
            for id in ids { posteriorCache[id] = nil }
        }
    }

    private func compactLocked() {
        var fresh = PositionTable()
        var kept: [UInt64] = []
        kept.reserveCapacity(table.count * words)
        for p in table.livePositions {
            _ = fresh.append(table.ids[p])
            kept.append(contentsOf: codes[(p * words)..<((p + 1) * words)])
        }
        table = fresh
        codes = kept
    }

    /// The code of a stored id (tests, diagnostics).
    public func code(of id: Int64) -> [UInt64]? {
        lock.read {
            guard let p = table.positions[id] else { return nil }
            return Array(codes[(p * words)..<((p + 1) * words)])
        }
    }

    public func search(batch queries: [Float], k: Int, parameters: SearchParameters) throws -> [[Neighbor]] {
        let m = try queryCount(queries)
        guard m > 0 else { return [] }
        guard let encoder = lock.read({ encoder }) else {
            throw IndexError("hash index \(descriptor.name) is not trained")
        }
        let queryCodes = encoder.encode(queries)
        let metric = parameters.metric ?? descriptor.metric
        let wanted = max(parameters.candidates ?? candidates, k) + parameters.excluding.count
        let one = { (qi: Int) -> [Neighbor] in
            let ids: [Int64] = self.lock.read {
                let n = self.table.slots
                guard n > 0 else { return [] }
                var distances = [UInt16](repeating: 0, count: n)
                var picked = [UInt32](repeating: 0, count: min(n, wanted))
                let maxDistance = UInt32(self.bits)
                self.codes.withUnsafeBufferPointer { c in
                    queryCodes.withUnsafeBufferPointer { q in
                        distances.withUnsafeMutableBufferPointer { d in
                            guard let cp = c.baseAddress, let qp = q.baseAddress, let dp = d.baseAddress else { return }
                            lk_hamming(qp + qi * self.words, cp, n, self.words, dp)
                            // Tombstones and filtered-out rows are put out of range before selection.
                            if self.table.deadCount > 0 {
                                for p in 0..<n where self.table.dead[p] { dp[p] = UInt16.max }
                            }
                            if let filter = parameters.filter {
                                for p in 0..<n where dp[p] != UInt16.max && !filter(self.table.ids[p]) { dp[p] = UInt16.max }
                            }
                        }
                    }
                }
                let found = distances.withUnsafeBufferPointer { d in
                    picked.withUnsafeMutableBufferPointer { o in
                        guard let dp = d.baseAddress, let op = o.baseAddress else { return 0 }
                        return lk_hamming_select(dp, n, maxDistance, self.radius ?? -1, o.count, op)
                    }
                }
                return picked.prefix(found).map { self.table.ids[Int($0)] }
            }
            return queries.withUnsafeBufferPointer { q in
                let query = Array(q[(qi * self.dimension)..<((qi + 1) * self.dimension)])
                if encoder.head != nil, metric == .cosine {
                    return self.rankWithClasses(query, candidates: ids, k: k, encoder: encoder, parameters: parameters)
                }
                return self.store.rank(query, candidates: ids, k: k, metric: metric, parameters: parameters)
            }
        }
        return try BatchQueries.run(m, one)
    }

    /// The fine stage of supervised codes under cosine: candidates ordered by their cosine to the
    /// query plus the cosine of the two class posteriors of the model's classifier (the labels the
    /// codes were trained on), so that a candidate the classifier puts in the query's class ranks
    /// above an equally similar one it does not. On Caltech-101 (train.txt, test queries) this
    /// takes `hash:64`'s P@20 from 0.887 to above 0.93 (docs/approximate-methods.md, "Learned codes
    /// (supervised)"). Scores reported stay each
    /// result's cosine distance; only the order uses the posteriors.
    private func rankWithClasses(_ query: [Float], candidates: [Int64], k: Int, encoder: LinearHashEncoder,
                                 parameters: SearchParameters) -> [Neighbor] {
        let ranked = store.rank(query, candidates: candidates, k: candidates.count, metric: .cosine, parameters: parameters)
        guard let classes = encoder.head?.classes, let mine = encoder.posteriors(query) else { return Array(ranked.prefix(k)) }
        let probe = (0..<dimension).map { encoder.projection[$0 * encoder.bits] }
        let checks = store.dots(probe, ids: ranked.map(\.id))
        var known: [[Float]?] = posteriorLock.withLock {
            ranked.indices.map { i in
                guard let entry = posteriorCache[ranked[i].id], let check = checks[i],
                      entry.check.bitPattern == check.bitPattern else { return nil }
                return entry.posteriors
            }
        }
        var rows: [Float] = []
        var missing: [(slot: Int, check: Float)] = []
        for (i, neighbor) in ranked.enumerated() where known[i] == nil {
            guard let check = checks[i], let row = store.reconstruct(neighbor.id) else { continue }
            rows.append(contentsOf: row)
            // Should the row be replaced between `checks` and here, the entry's check is the old
            // row's: the next look compares it with the new row's and projects again.
            missing.append((i, check))
        }
        if !missing.isEmpty, let fresh = encoder.posteriors(rows) {
            for (j, m) in missing.enumerated() { known[m.slot] = Array(fresh[(j * classes)..<((j + 1) * classes)]) }
            posteriorLock.withLock {
                if posteriorCache.count + missing.count > Self.posteriorCacheLimit { posteriorCache.removeAll() }
                for m in missing {
                    if let posteriors = known[m.slot] { posteriorCache[ranked[m.slot].id] = (m.check, posteriors) }
                }
            }
        }
        var scored: [(score: Float, neighbor: Neighbor)] = []
        scored.reserveCapacity(ranked.count)
        for (i, neighbor) in ranked.enumerated() {
            guard let theirs = known[i] else { continue }  // removed meanwhile
            var agreement: Float = 0
            for j in 0..<classes { agreement += mine[j] * theirs[j] }
            scored.append((1 - neighbor.distance + (agreement.isFinite ? agreement : 0), neighbor))
        }
        // Stable on ties: the cosine order of `ranked` decides between equal scores.
        let order = scored.indices.sorted { a, b in
            scored[a].score != scored[b].score ? scored[a].score > scored[b].score : a < b
        }
        return order.prefix(k).map { scored[$0].neighbor }
    }

    public func reconstruct(_ id: Int64) -> [Float]? {
        lock.read { table.positions[id] != nil } ? store.reconstruct(id) : nil
    }

    public var statistics: IndexStatistics {
        lock.read {
            // Codes, ids and the id -> position map (about 8 + 8 + 16 bytes per entry in a Swift dictionary).
            let structure = codes.count * 8 + table.slots * (8 + 1) + table.positions.count * 32
                + (encoder.map { ($0.projection.count + $0.offset.count + ($0.head.map { $0.weights.count + $0.bias.count } ?? 0)) * 4 } ?? 0)
            return IndexStatistics(count: table.count, structureBytes: structure, vectorBytes: store.vectorBytes,
                                   buildSeconds: buildSeconds)
        }
    }

    // MARK: file: encoder, ids, codes

    public func write(to url: URL, origin: FileOrigin) throws {
        try lock.read {
            guard let encoder else { throw IndexError("hash index \(descriptor.name): nothing to write before training") }
            let live = table.livePositions
            var payload = PayloadWriter()
            payload.data.append(encoder.serialized())
            payload.u64(live.map { table.ids[$0] })
            var liveCodes: [UInt64] = []
            liveCodes.reserveCapacity(live.count * words)
            for p in live { liveCodes.append(contentsOf: codes[(p * words)..<((p + 1) * words)]) }
            payload.u64(liveCodes)
            var fields = ["bits": String(bits), "encoderBytes": String(encoder.serialized().count)]
            if let modelStamp { fields["trainedModel"] = modelStamp }
            let header = IndexFileHeader(dimension: dimension, count: live.count, origin: origin,
                                         payloadBytes: payload.data.count, fields: fields)
            try IndexFile.write(to: url, tag: descriptor.description, header: header) { writer in
                try writer.append(payload.data)
            }
        }
    }

    static func read(_ contents: IndexFile.Contents, store: VectorStore?) throws -> HashIndex {
        let source = contents.mapping.path
        let shared = try RerankStore.required(store, contents)
        let index = try HashIndex(descriptor: try contents.descriptor, dimension: contents.header.dimension, store: shared)
        guard let encoderBytes = contents.header.fields["encoderBytes"].flatMap({ Int($0) }),
              encoderBytes > 0, encoderBytes <= contents.payload.count else {
            throw IndexError("\(source): header field 'encoderBytes' missing or out of range")
        }
        let encoder = try LinearHashEncoder(serialized: Data(UnsafeRawBufferPointer(rebasing: contents.payload[0..<encoderBytes])),
                                            source: source)
        try index.use(encoder, stamp: contents.header.fields["trainedModel"])
        var reader = PayloadReader(bytes: contents.payload, source: source, at: encoderBytes)
        let count = contents.header.count
        let ids = try reader.array(Int64.self, count: count)
        let codes = try reader.array(UInt64.self, count: count * index.words)
        try reader.finish()
        try index.lock.write {
            index.table = try PositionTable(ids: ids)
            index.codes = codes
        }
        return index
    }
}
