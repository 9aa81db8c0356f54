// StoreReranking brings the library's re-ranking (DBA, query expansion, diffusion: Reranking/) to a
// Milvus collection without the serving process holding any vectors. A companion collection,
// `<collection>_rerank`, holds each image's augmented vector (DBA) with its content hash, its label
// (so label filters still apply) and what diffusion needs of it (`DiffusionGraph.NodeFacts`: its
// k nearest images with their cosines, and its degree in the mutual k-NN graph). `lookalike
// prepare rerank --store` builds it once the workers have pushed, as the local `index` builds the
// augmented variant and the graph: it reads every vector once, finds exact neighbours in memory (so,
// like the local library, DBA stops at DatabaseAugmentation.maximumFullBuild images and diffusion
// at DiffusionGraph.maximumGraph), and replaces the companion. A search then runs the local
// algorithm against it: the expansion search and the final scan are Milvus searches of the
// companion; truncated diffusion runs on the subgraph of the query and its 300 candidates, rebuilt
// from their neighbour lists and degrees (the principal submatrix of the whole graph: the numbers
// the local library uses, with no vectors to fetch); the raw cosines and the rows shown come from
// the library's own collection. The stages are the local library's own (QueryPlan), over the
// collection and its companion (StoreRankingSource). A companion that does not cover the collection as it is now (its
// content key, the images it was built over, differs from the collection's: a worker pushed or
// pruned since, or a rebuild is running) is not used: answers then fall back to
// query expansion over the raw vectors and say so.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeSearch

public struct StoreReranking: Sendable {
    /// What the companion was built for (augmentation, diffusion, alpha; expansion is per query).
    public let built: Reranking
    /// Images it covers (the library's rows when it was built).
    public let rows: Int
    let companion: MilvusStore
    /// The descriptor of the library collection's vectors (whose alpha a re-ranking naming none uses).
    let descriptor: Descriptor

    public static func companionAddress(of address: MilvusAddress) -> MilvusAddress {
        MilvusAddress(host: address.host, port: address.port, collection: address.collection + "_rerank")
    }

    static let descriptionPrefix = "lookalike-rerank"

    /// "lookalike-rerank model=… checksum=… dimension=… dba=15 alpha=3.0 diff=30 rows=9144": the
    /// library collection's model facts, what was built, and how many images it covers.
    static func description(library: String, built: Reranking, rows: Int, content: String) -> String {
        let facts = library.split(separator: " ").dropFirst().joined(separator: " ")
        let alpha = built.alpha(for: StoreLibrary.descriptor(ofDescription: library))
        return "\(descriptionPrefix) \(facts) dba=\(built.augmentation) alpha=\(alpha) diff=\(built.diffusion) rows=\(rows) content=\(content)"
            + " fade=\(Reranking.neighbourhoodScale)/\(DiffusionGraph.neighbourhoodScale)"
    }

    /// The key of a collection's content: its distinct images (content hashes), order-free. Two
    /// collections with as many rows but other images (a worker added one and pruned another) get
    /// other keys, where a row count could not tell them apart. FNV-1a of each hash, summed, with
    /// the count.
    package static func contentKey<S: Sequence>(hashes: S) -> String where S.Element == String {
        var seen = Set<String>()
        var sum: UInt64 = 0
        for hash in hashes where seen.insert(hash).inserted {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in hash.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
            sum = sum &+ h
        }
        return "\(seen.count)-\(String(sum, radix: 16))"
    }

    /// The companion's description read back, when it was made for a collection with `library`'s description.
    static func parse(_ description: String, library: String) -> (built: Reranking, rows: Int, content: String?)? {
        let facts = library.split(separator: " ").dropFirst().joined(separator: " ")
        guard description.hasPrefix("\(descriptionPrefix) \(facts) ") else { return nil }
        let values = StoreLibrary.facts(description)
        guard let dba = values["dba"].flatMap(Int.init), let alpha = values["alpha"].flatMap(Double.init),
              let diff = values["diff"].flatMap(Int.init), let rows = values["rows"].flatMap(Int.init) else { return nil }
        // A companion made with other neighbourhood fades ranks otherwise: not current.
        guard values["fade"] == "\(Reranking.neighbourhoodScale)/\(DiffusionGraph.neighbourhoodScale)" else { return nil }
        return (Reranking(augmentation: dba, diffusion: diff, alpha: alpha), rows, values["content"])
    }

    // MARK: building

    public struct Summary: Sendable, Codable {
        public let store: String
        public let companion: String
        public let images: Int
        /// What was built (`dba:15+diff:30`); less than asked when the library is too large.
        public let reranking: String
        public let readSeconds: Double
        public let neighbourSeconds: Double
        public let writeSeconds: Double
        public let notes: [String]
    }

    /// One row of the companion.
    struct Row: Encodable {
        let hash: String
        let label: String
        /// The node's k nearest: "key:cosine" (key in hex, cosine with 7 decimals), comma-separated.
        let neighbours: String
        let degree: Float
    }

    /// Builds (or rebuilds) the companion of the collection at `address` for `options`' DBA and
    /// diffusion. Reads every vector, so it runs on a machine with memory for two copies of them.
    public static func prepare(library address: MilvusAddress, options: Reranking, batchSize: Int = 512,
                               progress: (@Sendable (String) -> Void)? = nil) async throws -> Summary {
        let store = MilvusStore(address: address)
        guard let described = try await store.describe() else {
            throw StoreError(store: address.description, "no collection \(address.collection): fill it with `lookalike index FOLDER --store \(address)`")
        }
        guard described.description.hasPrefix(MilvusStore.descriptionPrefix + " "), let dimension = described.dimension else {
            throw StoreError(store: address.description, "collection \(address.collection) was not made by lookalike (description \"\(described.description)\")")
        }
        _ = try await store.loaded(described)
        var started = Date()
        progress?("reading the vectors of \(address)")
        var chosen: [Int64: (row: Int64, hash: String, label: String, vector: [Float])] = [:]
        for row in try await store.allRows(fields: ["hash", "label", "vector"]) {
            guard let hash = row["hash"] as? String, let key = StoreLibrary.key(hash: hash),
                  let id = row["id"].flatMap(MilvusStore.int64), let vector = MilvusStore.floats(row["vector"]),
                  vector.count == dimension else { continue }
            // Duplicate rows of one image (a race two workers can leave): the smallest id, as searches do.
            if let known = chosen[key], known.row < id { continue }
            chosen[key] = (id, hash, row["label"] as? String ?? "", vector)
        }
        let images = chosen.sorted { $0.key < $1.key }
        let raw = VectorStore(dimension: dimension)
        try raw.add(ids: images.map(\.key), vectors: images.flatMap(\.value.vector))
        let readSeconds = Date().timeIntervalSince(started)

        started = Date()
        let descriptor = StoreLibrary.descriptor(ofDescription: described.description)
        var built = Reranking(augmentation: options.augmentation, diffusion: options.diffusion, alpha: options.alpha)
        var notes: [String] = []
        if built.augmentation > 0 && images.count > DatabaseAugmentation.maximumFullBuild {
            notes.append("augmentation skipped: \(images.count) images is more than the \(DatabaseAugmentation.maximumFullBuild) whose exact neighbours this builds in reasonable time")
            built.augmentation = 0
        }
        progress?("\(images.count) images: finding neighbours for \(built)")
        let ranked = built.augmentation > 0
            ? try Reranker.augment(raw, using: ExactIndex(store: raw, descriptor: IndexDescriptor(method: ExactIndex.methodName)),
                                   neighbours: built.augmentation, alpha: built.alpha(for: descriptor), filter: nil)
            : raw
        var facts: [Int64: DiffusionGraph.NodeFacts] = [:]
        if built.diffusion > 0 {
            if let found = try DiffusionGraph.nodeFacts(store: ranked, neighbours: built.diffusion) {
                facts = found
            } else {
                notes.append("diffusion skipped: \(images.count) images is more than the \(DiffusionGraph.maximumGraph) whose graph this builds")
                built.diffusion = 0
            }
        }
        guard built.augmentation > 0 || built.diffusion > 0 else {
            throw StoreError(store: address.description, "nothing to prepare for re-ranking \(options): \(notes.joined(separator: "; "))")
        }
        let neighbourSeconds = Date().timeIntervalSince(started)

        started = Date()
        let companion = MilvusStore(address: companionAddress(of: address), client: store.client, timeout: store.timeout)
        progress?("writing \(companion.address)")
        try await companion.drop()
        _ = try await companion.create(description: description(library: described.description, built: built, rows: images.count,
                                                                   content: contentKey(hashes: images.map(\.value.hash))),
                                       dimension: dimension)
        for chunk in images.chunked(max(1, batchSize)) {
            var vectors: [[Float]] = []
            var rows: [Row] = []
            for (key, image) in chunk {
                guard let vector = ranked.reconstruct(key) else { continue }
                let node = facts[key]
                vectors.append(vector)
                rows.append(Row(hash: image.hash, label: image.label, neighbours: node.map(Self.encode) ?? "",
                                degree: node?.degree ?? 0))
            }
            try await companion.insert(vectors: vectors, fields: rows)
        }
        // Searches use the companion once every row shows (Milvus shows writes after its staleness bound).
        let deadline = Date().addingTimeInterval(120)
        while try await companion.count() < images.count {
            guard Date() < deadline else {
                throw StoreError(store: companion.address.description, "the \(images.count) rows written did not all become visible within 120 s")
            }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        return Summary(store: address.description, companion: companion.address.description, images: images.count,
                       reranking: built.description, readSeconds: readSeconds, neighbourSeconds: neighbourSeconds,
                       writeSeconds: Date().timeIntervalSince(started), notes: notes)
    }

    // MARK: searching

    /// The companion of `store` when it exists, was made for its collection's model, and covers the
    /// collection as it is now: its content key (the images it was built over) is the key of the
    /// collection's images now; nil otherwise. Cost: the collection's hashes are read (one query a
    /// hash prefix) each time the caller checks; the counts are compared first, so a collection that
    /// grew or shrank is told apart without reading them.
    package static func open(library store: MilvusStore, collection: MilvusStore.Collection) async throws -> StoreReranking? {
        let companion = MilvusStore(address: companionAddress(of: store.address), client: store.client, timeout: store.timeout)
        guard let described = try await companion.describe(),
              let (built, rows, content) = parse(described.description, library: collection.description),
              let content, described.load == "LoadStateLoaded" else { return nil }
        guard try await companion.count() == rows, try await store.count() >= rows else { return nil }
        let hashes = try await store.allRows(fields: ["hash"]).compactMap { $0["hash"] as? String }
        guard contentKey(hashes: hashes) == content else { return nil }
        return StoreReranking(built: built, rows: rows, companion: companion,
                              descriptor: StoreLibrary.descriptor(ofDescription: collection.description))
    }

    /// Whether a request for `wanted` is served from the companion: its augmentation is the one
    /// built (with the same alpha), and it asks for augmentation or for the diffusion built.
    package func serves(_ wanted: Reranking) -> Bool {
        guard wanted.augmentation == built.augmentation else { return false }
        if wanted.augmentation > 0 { return wanted.alpha(for: descriptor) == built.alpha(for: descriptor) }
        return wanted.diffusion > 0 && wanted.diffusion == built.diffusion
    }

    static func similarity(_ row: [String: Any]) -> Float {
        Float((row["distance"] as? NSNumber)?.doubleValue ?? -1)
    }

    static func facts(_ row: [String: Any]) -> DiffusionGraph.NodeFacts? {
        guard let text = row["neighbours"] as? String, let degree = (row["degree"] as? NSNumber)?.floatValue else { return nil }
        var neighbours: [DiffusionGraph.NodeFacts.Neighbour] = []
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: ":")
            guard parts.count == 2, let key = Int64(parts[0], radix: 16), let similarity = Float(parts[1]) else { return nil }
            neighbours.append(.init(id: key, similarity: similarity))
        }
        return DiffusionGraph.NodeFacts(neighbours: neighbours, degree: degree)
    }

    /// A node's neighbours as the companion row keeps them ("key:cosine,…").
    static func encode(_ facts: DiffusionGraph.NodeFacts) -> String {
        facts.neighbours.map { nb in
            var text: [UInt8] = []
            MilvusStore.appendFixed7(nb.similarity, to: &text)
            return String(nb.id, radix: 16) + ":" + String(decoding: text, as: UTF8.self)
        }.joined(separator: ",")
    }
}
