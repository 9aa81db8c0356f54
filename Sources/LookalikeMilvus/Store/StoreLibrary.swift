// StoreLibrary is a Milvus collection seen as a library to search and browse: what `search --store`
// and `serve --store` answer from, holding no vectors. Images are named by a key made from their
// content hash (its first 13 hex digits, 52 bits), not by Milvus's row ids: those exceed 2^53, which
// a browser's JavaScript cannot keep exact, while the key is, and it is the same on every serving
// replica and after the collection is rebuilt (two images sharing a key, one chance in 10^4 at a
// million images, resolve to the smaller row id). The rows a search or a page returns are kept by
// key, so thumbnails and clicks on results need no further round trip. Searches rank by inner
// product in Milvus's own index. Searches run the local library's query plan (QueryPlan) over the
// collection (StoreRankingSource): with a companion collection built by `prepare rerank`
// (StoreReranking), augmentation, query expansion and diffusion run as locally; without one (or
// one that no longer covers the collection), query expansion runs over the raw vectors, and an
// upload's raw nearest are merged in as locally. Every answer says what was applied and why a
// step asked for did not run.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeSearch
import LookalikeVerification

/// One image of a store, as its rows describe it.
public struct StoreImage: Sendable, Equatable {
    /// The key (from the content hash) that names the image in answers and URLs.
    public let id: Int64
    /// The row's id in the collection.
    public let row: Int64
    public let hash: String
    public let path: String
    public let label: String
    public let tags: String
    public let size: Int64?
    public let captured: String?

    public var summary: ImageSummary {
        ImageSummary(imageId: id, path: path, label: label, width: 0, height: 0, tags: tags,
                     facts: captured.map { PhotoFacts(capturedAt: $0) })
    }
}

public final class StoreLibrary: Sendable {
    public let store: MilvusStore
    public let collection: MilvusStore.Collection
    /// The descriptor of the collection's vectors (its description's model id names it).
    public let descriptor: Descriptor
    /// Embeds files, URLs and uploads, checking the engine's model against the collection's.
    public let resolver: QueryResolver
    private let seen = Locked<[Int64: StoreImage]>([:])
    private let labels = Locked<(counts: [LabelCount], at: Date)?>(nil)
    /// The re-ranking companion as last checked (it is checked again after `companionRecheck` s).
    private let companionState = Locked<(value: StoreReranking?, at: Date)?>(nil)
    static let companionRecheck: Double = 10
    /// Verifies uploads' shortlists from the candidates' files (a store keeps no local features),
    /// two at a time off the cooperative pool, as the local library does.
    let verifier = NearCopyVerifier()
    private let verifications = AsyncLimiter(permits: 2)
    /// Rows kept by key (a bound, not a cache policy: past it the memory starts over).
    static let seenLimit = 200_000
    static let rowFields = ["hash", "path", "label", "tags", "size", "captured"]

    /// Opens an existing collection and waits until Milvus has loaded it.
    public static func open(_ address: MilvusAddress, fetchPolicy: FetchPolicy = FetchPolicy(),
                            makeEmbedder: @escaping @Sendable (Descriptor) throws -> Embedder) async throws -> StoreLibrary {
        let store = MilvusStore(address: address)
        guard let described = try await store.describe() else {
            throw StoreError(store: address.description,
                             "no collection \(address.collection): fill it with `lookalike index FOLDER --store \(address)`")
        }
        guard described.description.hasPrefix(MilvusStore.descriptionPrefix) else {
            throw StoreError(store: address.description, "collection \(address.collection) was not made by lookalike (description \"\(described.description)\")")
        }
        let collection = try await store.loaded(described)
        return StoreLibrary(store: store, collection: collection, fetchPolicy: fetchPolicy, makeEmbedder: makeEmbedder)
    }

    init(store: MilvusStore, collection: MilvusStore.Collection, fetchPolicy: FetchPolicy,
         makeEmbedder: @escaping @Sendable (Descriptor) throws -> Embedder) {
        self.store = store
        self.collection = collection
        let descriptor = Self.descriptor(ofDescription: collection.description)
        self.descriptor = descriptor
        resolver = QueryResolver(fetchPolicy: fetchPolicy, descriptor: { descriptor },
                                 verify: { try store.check(collection, model: $0) }, makeEmbedder: makeEmbedder)
    }

    public var address: MilvusAddress { store.address }

    /// The model facts the collection's description carries ("model", "checksum", "dimension").
    public var modelFacts: [String: String] { Self.facts(collection.description) }

    /// The descriptor a collection with this description holds vectors of.
    package static func descriptor(ofDescription description: String) -> Descriptor {
        Descriptor(modelID: facts(description)["model"] ?? "")
    }


    static func facts(_ description: String) -> [String: String] {
        var facts: [String: String] = [:]
        for part in description.split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { facts[String(kv[0])] = String(kv[1]) }
        }
        return facts
    }

    /// The key naming an image with this content hash.
    public static func key(hash: String) -> Int64? {
        guard hash.count >= 13 else { return nil }
        return Int64(hash.prefix(13), radix: 16)
    }

    static func keyPrefix(_ id: Int64) -> String {
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: max(0, 13 - hex.count)) + hex
    }

    // MARK: images

    /// The image with this key, from the rows already seen or from the store.
    public func image(id: Int64) async throws -> StoreImage? {
        if let known = seen.withLock({ $0[id] }) { return known }
        guard id >= 0 else { return nil }
        let rows = try await store.query(filter: "hash like \"\(Self.keyPrefix(id))%\"", fields: Self.rowFields, limit: 16)
        return remember(rows.compactMap(Self.image).filter { $0.id == id }.min { $0.row < $1.row })
    }

    /// The image stored under this path (as its worker indexed it).
    public func image(path: String) async throws -> StoreImage? {
        let rows = try await store.query(filter: "path == \(MilvusStore.literal(path))", fields: Self.rowFields, limit: 16)
        return remember(rows.compactMap(Self.image).min { $0.row < $1.row })
    }

    /// An image picked at random: a random bucket of content hashes (about 8 rows expected per
    /// bucket), then a random row of it; Milvus has no random order.
    public func randomImage() async throws -> StoreImage? {
        let total = try await store.count()
        guard total > 0 else { return nil }
        var digits = 0
        while digits < 12 && total >> (4 * (digits + 1)) >= 8 { digits += 1 }
        while true {
            let prefix = String((0..<digits).map { _ in "0123456789abcdef".randomElement() ?? "0" })
            let filter = prefix.isEmpty ? "id > 0" : "hash like \"\(prefix)%\""
            let rows = try await store.query(filter: filter, fields: Self.rowFields, limit: 256)
            if let row = rows.compactMap(Self.image).randomElement() { return remember(row) }
            if digits == 0 { return nil }
            digits -= 1
        }
    }

    /// One page of images, optionally under a label and/or whose label or first tag starts with a
    /// text (Milvus 2.3 matches prefixes only, case-sensitively: the local library matches the
    /// text anywhere in the label or any tag, ignoring case).
    public func page(_ request: ImageListRequest) async throws -> ImageListPage {
        var clauses: [String] = []
        if let label = request.label, !label.isEmpty { clauses.append("label == \(MilvusStore.literal(label))") }
        if let text = request.text?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            let pattern = MilvusStore.literal(text.replacingOccurrences(of: "%", with: "") + "%")
            clauses.append("(label like \(pattern) or tags like \(pattern))")
        }
        let filter = clauses.isEmpty ? "id > 0" : clauses.joined(separator: " and ")
        let perPage = max(1, request.perPage)
        let page = max(1, request.page)
        let offset = (page - 1) * perPage
        guard offset < MilvusStore.queryWindow else {
            throw QueryError(.badRequest, "page: a store pages through its first \(MilvusStore.queryWindow) matches only; narrow the list with a label or a text")
        }
        let total = try await store.count(filter: filter)
        let rows = try await store.query(filter: filter, fields: Self.rowFields,
                                         limit: min(perPage, MilvusStore.queryWindow - offset), offset: offset)
        let images = rows.compactMap(Self.image)
        remember(images)
        return ImageListPage(total: total, page: page, perPage: perPage, items: images.map(\.summary))
    }

    /// Images per label, worst-case a read of every row's label: kept for a minute.
    public func labelCounts() async throws -> [LabelCount] {
        if let cached = labels.value, Date().timeIntervalSince(cached.at) < 60 { return cached.counts }
        var counts: [String: Int] = [:]
        for row in try await store.allRows(fields: ["label"]) { counts[row["label"] as? String ?? "", default: 0] += 1 }
        let sorted = counts.map { LabelCount(label: $0.key, count: $0.value) }.sorted { $0.label < $1.label }
        labels.withLock { $0 = (sorted, Date()) }
        return sorted
    }

    /// What the local library's details would say, as far as the rows know (one path, no size in
    /// pixels, capture date but no camera or position).
    public func details(id: Int64) async throws -> ImageDetails? {
        guard let image = try await image(id: id) else { return nil }
        var record = ImageRecord(id: id, contentHash: image.hash, byteSize: image.size ?? 0, width: 0, height: 0,
                                 tags: image.tags, createdAt: Date(timeIntervalSince1970: 0))
        record.capturedAt = image.captured
        let file = FileRecord(id: nil, path: image.path, imageId: id, label: image.label, fileSize: image.size ?? 0,
                              mtime: 0, indexedAt: Date(timeIntervalSince1970: 0))
        return ImageDetails(image: record, files: [file])
    }

    // MARK: search

    /// The re-ranking companion when it covers the collection (checked every `companionRecheck` s).
    public func reranking() async throws -> StoreReranking? {
        if let known = companionState.value, Date().timeIntervalSince(known.at) < Self.companionRecheck { return known.value }
        let current = try await StoreReranking.open(library: store, collection: collection)
        companionState.withLock { $0 = (current, Date()) }
        return current
    }

    /// Forgets the companion's state, so the next search looks again (after `prepare rerank`).
    public func recheckReranking() { companionState.withLock { $0 = nil } }

    /// A query's vector: the stored row of a store image (named by key or path), else the
    /// embedding of the file, URL or upload.
    public func resolve(_ source: QuerySource, crop: CropBox? = nil) async throws -> ResolvedQuery {
        let image: StoreImage
        switch source {
        case .id(let id):
            guard let found = try await self.image(id: id) else { throw QueryError(.notFound, "no image with id \(id) in \(store.store)") }
            image = found
        case .path(let path):
            guard let found = try await self.image(path: path) else { throw QueryError(.notFound, "\(path) is not in \(store.store)") }
            image = found
        default:
            return try await resolver.resolve(source, crop: crop)
        }
        if let crop {
            // A box is embedded from the image's file (shared storage), like a local library image.
            return try await resolver.embedded(summary: "\(source.summary) box \(crop)", imageId: image.id) {
                try await $0.embed(path: image.path, crop: crop)
            }
        }
        guard let vector = try await store.vectors(ids: [image.row])[image.row] else {
            throw QueryError(.notFound, "image \(image.id) left \(store.store) while it was looked up")
        }
        return ResolvedQuery(vector: vector, imageId: image.id, summary: source.summary, embedMilliseconds: 0,
                             labels: [], width: nil, height: nil)
    }

    /// The `request.k` best through Milvus's index, restricted to a label when asked, cut at
    /// `minScore`, through the library's query plan (re-ranking as far as the companion serves it,
    /// an outside query's near-copies merged in); each result's score is what the list is ordered
    /// by, its cosine the raw similarity to the query.
    public func search(_ source: QuerySource, _ request: SearchRequest, crop: CropBox? = nil) async throws -> SearchAnswer {
        guard request.metric == .cosine else {
            throw QueryError(.badRequest, "metric: \(store.store) ranks by cosine (inner product) only")
        }
        if let folder = request.restriction.folder, !folder.isEmpty {
            throw QueryError(.badRequest, "folder: a store filters by label only (its rows carry each worker's own paths)")
        }
        let query = try await resolve(source, crop: crop)
        let started = Date()
        let filter = request.restriction.label.flatMap { $0.isEmpty ? nil : "label == \(MilvusStore.literal($0))" }
        let excluded = request.includeSelf ? nil : query.imageId
        let shortlist = request.verificationShortlist(outside: query.imageId == nil && query.image != nil, storedKeypoints: false)
        let k = max(request.k, shortlist)
        // One query plan, the local library's, over the collection (and its companion when it serves the request).
        var reasons: [String: String] = [:]
        let companion = request.reranking.isNone ? nil : try await reranking()
        let serving = companion.flatMap { $0.serves(request.reranking) ? $0 : nil }
        if serving == nil, request.reranking.augmentation > 0 || request.reranking.diffusion > 0 {
            let why = companion == nil
                ? "the store has no current re-ranking companion (`lookalike prepare rerank --store \(address)` builds it)"
                : "the store's re-ranking companion was built for \(companion?.built.description ?? "other settings")"
            (reasons["dba"], reasons["diff"]) = (why, why)
        }
        let source = StoreRankingSource(library: store, companion: serving, filter: filter,
                                        queryHash: query.imageId.flatMap { key in seen.withLock { $0[key]?.hash } })
        let ranked = try await StoreRankingSource.plan(request.reranking, companion: serving, descriptor: descriptor)
            .run(query.vector, libraryId: query.imageId, k: k, excluding: excluded.map { [$0] } ?? [], source: source)
        let applied = StoreRankingSource.applied(request.reranking, companion: serving, diffused: ranked.diffused)
        let hashes = ranked.neighbours.compactMap { source.hash(of: $0.id) }
        let hits = try await rows(hashes: hashes)
        // What each result is ordered by (1 - the plan's distance).
        var ordering: [String: Float] = [:]
        for nb in ranked.neighbours { if let hash = source.hash(of: nb.id), ordering[hash] == nil { ordering[hash] = 1 - nb.distance } }
        if applied.diffusion == 0 && request.reranking.diffusion > 0 && reasons["diff"] == nil {
            reasons["diff"] = "diffusion starts from a store image's own node; an outside image is ranked by augmentation and expansion"
        }
        var results: [SearchResult] = []
        var images: [StoreImage] = []
        for hit in hits where results.count < k {
            guard let key = Self.key(hash: hit.hash), key != excluded else { continue }
            // The score is what the list is ordered by, the cosine the raw similarity (hits carry their raw vectors).
            let cosine = hit.vector.map { VectorStore.dot($0, query.vector) } ?? hit.score
            let score = ordering[hit.hash] ?? cosine
            let image = StoreImage(id: key, row: hit.id, hash: hit.hash, path: hit.path, label: hit.label, tags: hit.tags,
                                   size: hit.size, captured: hit.captured)
            images.append(image)
            results.append(SearchResult(rank: results.count + 1, id: key, path: hit.path, label: hit.label, tags: hit.tags,
                                        score: score, distance: 1 - score, cosine: cosine, facts: image.summary.facts))
        }
        remember(images)
        var reranking = applied.description
        var notes: [String] = []
        if shortlist > 0, let image = query.image, request.verifies(bestCosine: results.first?.cosine) {
            let checked = Array(results.prefix(shortlist))
            do {
                let (verified, readable) = try await verifications.offload { [verifier] in
                    let features = try QueryFeatures(image)
                    let readable = verifier.features(checked.map { ($0.id, $0.path) }).compactMap { $0 }.count
                    return (verifier.reorder(checked, query: features, k: request.k), readable)
                }
                results = verified
                reranking = applied.description(verifying: checked.count)
                if readable == 0 && !checked.isEmpty {
                    notes.append("verify:\(checked.count) not applied: none of the candidates' files can be read here (a store's rows carry each worker's paths; verification reads them)")
                    reranking = applied.description
                }
            } catch {
                if let asked = request.verify { notes.append("verify:\(asked) not applied: the query's local features could not be read") }
            }
        } else if let asked = request.verify, asked > 0, query.image == nil {
            notes.append("verify:\(asked) not applied: verification checks an image given as a file, URL or upload (a store image is already itself)")
        }
        results = Array(results.prefix(request.k))
        if let minScore = request.minScore { results = results.filter { $0.score >= minScore } }
        var answer = SearchAnswer(query: query.summary, queryId: query.imageId, metric: Metric.cosine.rawValue,
                                  method: "milvus", reranking: reranking,
                                  searchMilliseconds: Date().timeIntervalSince(started) * 1000,
                                  embedMilliseconds: query.embedMilliseconds, results: results)
        answer.queryTags = query.tags
        answer.queryWidth = query.width
        answer.queryHeight = query.height
        answer.requested = (request.verify ?? 0) > 0
            ? request.reranking.description(verifying: request.verify ?? 0) : request.reranking.description
        answer.notes = Reranking.notes(requested: request.reranking, applied: applied, reasons: reasons) + notes
        return answer
    }

    // MARK: helpers

    /// The rows of these images as hits in this order, with their raw vectors (scores are set from them).
    func rows(hashes: [String]) async throws -> [StoreHit] {
        var byHash: [String: [String: Any]] = [:]
        for row in try await store.rows(hashes: hashes, fields: Self.rowFields + ["vector"]) {
            guard let hash = row["hash"] as? String else { continue }
            // Duplicate rows of one image: the smallest id names it.
            if let known = byHash[hash], let a = known["id"].flatMap(MilvusStore.int64), let b = row["id"].flatMap(MilvusStore.int64), a < b { continue }
            byHash[hash] = row
        }
        return hashes.enumerated().compactMap { i, hash in
            guard let row = byHash[hash] else { return nil }
            var hit = StoreHit(rank: i + 1, hash: hash, path: row["path"] as? String ?? "", label: row["label"] as? String ?? "",
                               tags: row["tags"] as? String ?? "", score: 0)
            hit.id = row["id"].flatMap(MilvusStore.int64) ?? 0
            hit.size = row["size"].flatMap(MilvusStore.int64)
            hit.captured = row["captured"] as? String
            hit.vector = MilvusStore.floats(row["vector"])
            return hit
        }
    }

    static func image(_ row: [String: Any]) -> StoreImage? {
        guard let hash = row["hash"] as? String, let key = key(hash: hash), let id = row["id"].flatMap(MilvusStore.int64) else { return nil }
        return StoreImage(id: key, row: id, hash: hash, path: row["path"] as? String ?? "", label: row["label"] as? String ?? "",
                          tags: row["tags"] as? String ?? "", size: row["size"].flatMap(MilvusStore.int64),
                          captured: row["captured"] as? String)
    }

    @discardableResult
    private func remember(_ image: StoreImage?) -> StoreImage? {
        if let image { remember([image]) }
        return image
    }

    private func remember(_ images: [StoreImage]) {
        guard !images.isEmpty else { return }
        seen.withLock { seen in
            if seen.count + images.count > Self.seenLimit { seen.removeAll(keepingCapacity: true) }
            for image in images {
                // Two images sharing a key: the smaller row id names it, as a lookup by key does.
                if let known = seen[image.id], known.hash != image.hash, known.row < image.row { continue }
                seen[image.id] = image
            }
        }
    }
}
