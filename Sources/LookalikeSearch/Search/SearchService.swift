// Search over a live library, end to end: resolve the query, rank with the chosen method and metric,
// and present the results (path, label, tags, a score a person can read). Library queries exclude
// the query image itself unless asked to include it. Results whose image was deleted between the
// ranking and the presentation are dropped, never shown as unknown paths. A request may restrict the
// results to a label or a folder (a filter on the scan), cut them at a minimum score (an empty list
// is then the answer "no close match"), and, with a batcher, share its scan with concurrent queries.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeVerification

public struct SearchResult: Sendable, Codable, VerifiableResult {
    public var rank: Int
    public let id: Int64
    public let path: String
    public let label: String
    public let tags: String
    /// What the list is ordered by, on a scale where 1 is the query itself: the plain similarity
    /// (cosine, or the metric's), or under re-ranking the re-ranked score (see Reranker.score);
    /// verified copies, which come first, score at least what follows them.
    public var score: Float
    public let distance: Float
    /// The raw cosine similarity of the image's vector to the query's (the same as `score` in a
    /// plain cosine search).
    public var cosine: Float
    /// Capture date, camera and GPS position when the photo's file has them.
    public var facts: PhotoFacts? = nil
    /// With spatial verification: the keypoints this image shares with the query under one
    /// similarity transform, when enough to call it the query's original (nil otherwise).
    public var inliers: Int? = nil

    package init(rank: Int, id: Int64, path: String, label: String, tags: String, score: Float, distance: Float,
                 cosine: Float? = nil, facts: PhotoFacts? = nil, inliers: Int? = nil) {
        self.rank = rank
        self.id = id
        self.path = path
        self.label = label
        self.tags = tags
        self.score = score
        self.distance = distance
        self.cosine = cosine ?? score
        self.facts = facts
        self.inliers = inliers
    }
}

public struct SearchRequest: Sendable {
    public var k: Int
    public var metric: Metric
    public var method: IndexDescriptor
    public var includeSelf: Bool
    public var parameters: SearchParameters
    /// Re-ranking of cosine searches (other metrics rank plainly); applied where the library has
    /// the derived vectors it needs, and each answer says what was applied.
    public var reranking: Reranking
    /// Results scoring below this are dropped (nil: keep all k).
    public var minScore: Float?
    public var restriction: SearchRestriction
    /// Spatial verification of an outside query (upload, URL, file searched whole): this many best
    /// candidates are checked against it by local features, and verified copies move first
    /// (0: off). nil, the default: decided per query (see `automaticShortlist`). Library images
    /// are the photo itself and are not verified.
    public var verify: Int? = nil
    /// The largest shortlist a request may ask to verify.
    public static let maximumVerify = 1000
    /// With no `verify` asked, an outside query is verified unless its best match is already a
    /// clear near-copy (raw cosine at least `clearCopy`): its best `automaticShortlist` candidates
    /// (and, where the library keeps local features, the images sharing the most visual words
    /// with it) are checked by their stored keypoints, which costs the query's own SIFT and
    /// microseconds a candidate. While the library's local features are still being made (`index`
    /// starts that in the background), only the best `automaticFromFiles` are checked, from their
    /// files (30-100 ms of one core each, cached).
    public static let automaticShortlist = 50
    public static let automaticFromFiles = 12
    public static let clearCopy: Float = 0.95

    /// How many of a query's best candidates the verification stage checks: none for a library
    /// image; what was asked; else, decided per query, `automaticShortlist` where the library keeps
    /// local features (`storedKeypoints`) and `automaticFromFiles` where they are read from files
    /// (a library whose features are being made, a Milvus store).
    package func verificationShortlist(outside: Bool, storedKeypoints: Bool) -> Int {
        guard outside else { return 0 }
        return verify ?? (storedKeypoints ? Self.automaticShortlist : Self.automaticFromFiles)
    }

    /// Whether the stage runs on a ranked answer whose best raw cosine is `bestCosine`: when asked
    /// for, or, decided per query, when the best match is not already a clear near-copy.
    package func verifies(bestCosine: Float?) -> Bool {
        guard let asked = verify else { return (bestCosine ?? 0) < Self.clearCopy }
        return asked > 0
    }

    public init(k: Int = 10, metric: Metric = .cosine, method: IndexDescriptor = IndexDescriptor(method: ExactIndex.methodName),
                includeSelf: Bool = false, parameters: SearchParameters = SearchParameters(), minScore: Float? = nil,
                restriction: SearchRestriction = SearchRestriction(), reranking: Reranking = .libraryDefault) {
        self.k = k
        self.metric = metric
        self.method = method
        self.includeSelf = includeSelf
        self.parameters = parameters
        self.reranking = reranking
        self.minScore = minScore
        self.restriction = restriction
    }
}

/// Only results under a label and/or a folder of the library (as `LibraryFolders.display` names it).
public struct SearchRestriction: Sendable, Equatable {
    public var label: String?
    public var folder: String?
    public init(label: String? = nil, folder: String? = nil) {
        self.label = label
        self.folder = folder
    }
    public var isEmpty: Bool { (label ?? "").isEmpty && (folder ?? "").isEmpty }
}

public struct SearchAnswer: Sendable, Codable {
    public let query: String
    public let queryId: Int64?
    public let metric: String
    public let method: String
    /// The re-ranking applied ("none", "dba:15+qe:10"...): results' `score` is what it ordered by,
    /// their `cosine` the raw similarity.
    public let reranking: String
    /// Milliseconds ranking (and presenting) took.
    public let searchMilliseconds: Double
    /// Milliseconds decoding and embedding the query took (0 for library images).
    public let embedMilliseconds: Double
    public let results: [SearchResult]
    /// An embedded query's top-5 ImageNet labels ("name:prob; ..."), its size; empty / nil otherwise.
    public var queryTags: String = ""
    public var queryWidth: Int?
    public var queryHeight: Int?
    /// The answer was read from the library's answer lists (a library image under the library's
    /// re-ranking, see AnswerLists) rather than computed for this request; the same answer.
    public var precomputed = false
    /// The re-ranking (and verification) the request asked for, and why what ran (`reranking`)
    /// differs from it, one line a step; empty when they agree.
    public var requested = ""
    public var notes: [String] = []

    package init(query: String, queryId: Int64?, metric: String, method: String, reranking: String, searchMilliseconds: Double, embedMilliseconds: Double, results: [SearchResult], queryTags: String = "", queryWidth: Int? = nil, queryHeight: Int? = nil) {
        self.query = query
        self.queryId = queryId
        self.metric = metric
        self.method = method
        self.reranking = reranking
        self.searchMilliseconds = searchMilliseconds
        self.embedMilliseconds = embedMilliseconds
        self.results = results
        self.queryTags = queryTags
        self.queryWidth = queryWidth
        self.queryHeight = queryHeight
    }
}

public final class SearchService: Sendable {
    public let library: LiveLibrary
    public let resolver: QueryResolver
    /// When set, unrestricted in-library searches share scans with concurrent ones.
    public let batcher: SearchBatcher?
    /// What results show of each image, kept between searches.
    public let summaries: SummaryCache
    /// Spatial verification and its cache of candidates' local features.
    public let verifier = NearCopyVerifier()
    /// The library's visual-word index, when `prepare verify` made one (re-read when it changes).
    public let visualWords: VisualWordsFile
    /// Verifications running at once (each uses both cores for its candidates).
    private let verifications = AsyncLimiter(permits: 2)

    /// Whether library images' answers are read from the answer lists when they apply.
    public let answerLists: Bool

    public init(library: LiveLibrary, resolver: QueryResolver, batcher: SearchBatcher? = nil, answerLists: Bool = true) {
        self.library = library
        self.answerLists = answerLists
        self.resolver = resolver
        self.batcher = batcher
        summaries = SummaryCache(library: library)
        visualWords = VisualWordsFile(url: VisualWordIndex.url(for: library.catalogue), catalogue: library.catalogue.identity)
    }

    /// A library with a resolver that loads the default engine on first need.
    public convenience init(catalogue: Catalogue, precision: StoragePrecision = .float32,
                            weightsURL: URL? = nil) throws {
        let library = try LiveLibrary(catalogue: catalogue, precision: precision)
        self.init(library: library, resolver: QueryResolver(library: library) { try Embedder(weightsURL: weightsURL, descriptor: $0) })
    }

    public var catalogue: Catalogue { library.catalogue }

    public func search(_ source: QuerySource, _ request: SearchRequest, crop: CropBox? = nil) async throws -> SearchAnswer {
        let query = try await resolver.resolve(source, crop: crop)
        let started = Date()
        let outside = query.imageId == nil && query.image != nil
        let words = outside ? visualWords.index() : nil
        let shortlist = request.verificationShortlist(outside: outside, storedKeypoints: words != nil)
        let verifying = shortlist > 0
        var unreadable = false
        let k = verifying ? max(request.k, shortlist) : request.k
        var parameters = request.parameters
        if let id = query.imageId, !request.includeSelf { parameters.excluding.insert(id) }
        if let filter = try filter(for: request.restriction) { parameters.filter = filter }
        parameters.metric = request.metric
        let descriptor = request.method.with(metric: request.metric)
        var results: [SearchResult]
        var applied = Reranking.none
        var precomputed = false
        var notes: [String] = []
        if request.metric == .cosine && !request.reranking.isNone {
            let reranker = try reranker(request, filter: parameters.filter)
            let neighbors: [Neighbor]
            if answerLists, let listed = reranker.listedAnswer(vector: query.vector, libraryId: query.imageId, k: k, parameters: parameters) {
                (neighbors, precomputed) = (listed, true)
            } else {
                neighbors = try await reranker.search(vector: query.vector, libraryId: query.imageId, k: k,
                                                      parameters: parameters, batcher: batcher)
            }
            (results, applied) = (try present(neighbors, metric: .cosine, query: query.vector), reranker.applied(libraryId: query.imageId))
            notes = reranker.notes(libraryId: query.imageId)
        } else if let batcher {
            let neighbors = try await batcher.search(query.vector, k: k, descriptor: descriptor, parameters: parameters)
            results = try present(neighbors, metric: request.metric, query: query.vector)
        } else {
            let neighbors = try library.index(for: descriptor).search(query.vector, k: k, parameters: parameters)
            results = try present(neighbors, metric: request.metric, query: query.vector)
        }
        var reranking = applied.description
        if verifying, let image = query.image {
            let ranked = results, vector = query.vector, k = request.k, filtered = parameters
            // An image whose local features cannot be read (a format libvips lacks) is answered unverified.
            do {
                let outcome = try await verifications.offload { [self] in
                    try verificationStage(ranked, image: image, vector: vector, request: request, parameters: filtered,
                                          words: words, keep: k)
                }
                if let outcome {
                    results = outcome.results
                    reranking = applied.description(verifying: outcome.checked, words: outcome.added == nil ? 0 : VisualWordIndex.candidates)
                } else {
                    results = Array(results.prefix(request.k))
                }
            } catch {
                results = Array(results.prefix(request.k))
                unreadable = true
            }
        } else {
            results = Array(results.prefix(request.k))
        }
        if request.metric != .cosine && !request.reranking.isNone {
            notes.append("\(request.reranking) not applied: re-ranking works on cosine similarity, this search ranks by \(request.metric.rawValue)")
        }
        if let asked = request.verify, asked > 0 {
            if !outside {
                notes.append("verify:\(asked) not applied: verification checks an image given as a file, URL or upload (a library image is already itself)")
            } else if unreadable {
                notes.append("verify:\(asked) not applied: the query's local features could not be read")
            }
        }
        if let minScore = request.minScore { results = results.filter { $0.score >= minScore } }
        var answer = SearchAnswer(query: query.summary, queryId: query.imageId, metric: request.metric.rawValue,
                                  method: request.method.name, reranking: reranking, searchMilliseconds: Date().timeIntervalSince(started) * 1000,
                                  embedMilliseconds: query.embedMilliseconds, results: results)
        answer.queryTags = query.tags
        answer.queryWidth = query.width
        answer.queryHeight = query.height
        answer.precomputed = precomputed
        answer.requested = (request.verify ?? 0) > 0
            ? request.reranking.description(verifying: request.verify ?? 0) : request.reranking.description
        answer.notes = notes
        return answer
    }

    /// The verification stage of the query plan (searches and `lookalike-bench robustness` both
    /// run it): nil when it does not run for this answer (not asked, or, decided per query, the
    /// best match is already a clear near-copy); otherwise the answer's best `shortlist`
    /// candidates and the visual words' verified and re-ordered, the best `keep`, with how many
    /// were checked and how many the words added. Throws when the query's local features cannot
    /// be read.
    package func verificationStage(_ ranked: [SearchResult], image: QueryImage, vector: [Float], request: SearchRequest,
                                   parameters: SearchParameters, words: VisualWordIndex?, keep: Int) throws
        -> (results: [SearchResult], checked: Int, added: Int?)? {
        let shortlist = request.verificationShortlist(outside: true, storedKeypoints: words != nil)
        guard shortlist > 0, request.verifies(bestCosine: ranked.first?.cosine) else { return nil }
        let admits = parameters.filter, excluded = parameters.excluding
        let checked = Array(ranked.prefix(shortlist))
        let (results, added) = try verify(checked, query: try QueryFeatures(image), vector: vector, metric: request.metric,
                                          k: keep, words: words) { !excluded.contains($0) && (admits?($0) ?? true) }
        return (results, checked.count, added)
    }

    /// Spatial verification of an outside query's shortlist: the library's visual-word index (when
    /// there is one) adds the images sharing the most local features with the query that the
    /// shortlist lacks (among those `admits` accepts), then all are verified (by their stored
    /// keypoints where the index has them) and re-ordered. Returns the best `k` and how many
    /// candidates the words added (nil: the library has no word index).
    public func verify(_ shortlist: [SearchResult], query features: QueryFeatures, vector: [Float], metric: Metric, k: Int,
                       words: VisualWordIndex? = nil, admits: (Int64) -> Bool = { _ in true }) throws -> ([SearchResult], Int?) {
        var candidates = shortlist
        guard let index = words ?? visualWords.index() else { return (verifier.reorder(candidates, query: features, k: k), nil) }
        let queryWords = index.keypoints(features)
        let listed = Set(shortlist.map(\.id))
        let extra = index.candidates(words: queryWords.words, limit: VisualWordIndex.candidates) {
            !listed.contains($0) && admits($0)
        }
        let neighbors = library.store.rank(vector, candidates: extra, k: extra.count, metric: metric)
        candidates += try present(neighbors, metric: metric, query: vector)
        // The words' candidates are there to be verified: one that is not was never among the best.
        let verified = verifier.reorder(candidates, query: features, k: k + extra.count, stored: (queryWords, index))
        let added = Set(extra)
        return (Array(verified.filter { $0.inliers != nil || !added.contains($0.id) }.prefix(k))
            .enumerated().map { var r = $1; r.rank = $0 + 1; return r }, extra.count)
    }

    /// The scan filter for a label / folder restriction; nil when unrestricted. An unknown folder
    /// is an error naming it (a restriction that silently matched nothing would look like "no match").
    public func filter(for restriction: SearchRestriction) throws -> (@Sendable (Int64) -> Bool)? {
        guard !restriction.isEmpty else { return nil }
        var allowed: Set<Int64>?
        if let label = restriction.label, !label.isEmpty {
            allowed = try catalogue.imageIds(label: label)
        }
        if let folder = restriction.folder, !folder.isEmpty {
            guard let prefix = try LibraryFolders(catalogue: catalogue).absolutePrefix(folder: folder) else {
                throw QueryError(.badRequest, "folder: '\(folder)' is not a folder of the library")
            }
            let inFolder = try catalogue.imageIds(pathPrefix: prefix)
            allowed = allowed.map { $0.intersection(inFolder) } ?? inFolder
        }
        guard let allowed else { return nil }
        return { allowed.contains($0) }
    }

    /// Ranks the library against a query vector (L2-normalised) and presents the results.
    public func rank(vector: [Float], request: SearchRequest, parameters: SearchParameters? = nil) async throws -> [SearchResult] {
        try await rankExplained(vector: vector, libraryId: nil, request: request, parameters: parameters).0
    }

    /// Ranks and says which re-ranking was applied. A library image (`libraryId`) is searched
    /// with its augmented vector when the library has them.
    public func rankExplained(vector: [Float], libraryId: Int64?, request: SearchRequest,
                              parameters: SearchParameters? = nil) async throws -> ([SearchResult], Reranking) {
        let (results, applied, _) = try await rankExplaining(vector: vector, libraryId: libraryId, request: request, parameters: parameters)
        return (results, applied)
    }

    /// The same, and whether the answer was read from the answer lists.
    func rankExplaining(vector: [Float], libraryId: Int64?, request: SearchRequest,
                        parameters: SearchParameters? = nil) async throws -> ([SearchResult], Reranking, Bool) {
        var parameters = parameters ?? request.parameters
        parameters.metric = request.metric
        if request.metric == .cosine && !request.reranking.isNone {
            let reranker = try reranker(request, filter: parameters.filter)
            if answerLists, let listed = reranker.listedAnswer(vector: vector, libraryId: libraryId, k: request.k, parameters: parameters) {
                return (try present(listed, metric: .cosine, query: vector), reranker.applied(libraryId: libraryId), true)
            }
            let neighbors = try await reranker.search(vector: vector, libraryId: libraryId, k: request.k, parameters: parameters)
            return (try present(neighbors, metric: .cosine, query: vector), reranker.applied(libraryId: libraryId), false)
        }
        let neighbors = try library.index(for: request.method.with(metric: request.metric))
            .search(vector, k: request.k, parameters: parameters)
        return (try present(neighbors, metric: request.metric, query: vector), .none, false)
    }

    /// The request's re-ranking over the library's index for its method (the stored augmented
    /// vectors when they match; never computed on the fly for a search).
    private func reranker(_ request: SearchRequest, filter: (@Sendable (Int64) -> Bool)?) throws -> Reranker {
        try Reranker(library: library, index: library.index(for: request.method.with(metric: request.metric)),
                     options: request.reranking, filter: filter, computeMissing: false)
    }

    /// Paths, labels and readable scores for ranked neighbours (`distance`: the metric's, or 1 - the
    /// re-ranked score), with each image's raw cosine to `query`.
    public func present(_ neighbors: [Neighbor], metric: Metric, query: [Float]) throws -> [SearchResult] {
        let summaries = try self.summaries.summaries(imageIds: neighbors.map(\.id))
        let dimension = library.model.dimension
        let shown = neighbors.compactMap { n -> (Neighbor, ImageSummary)? in summaries[n.id].map { (n, $0) } }
        let cosines = library.store.dots(query, ids: shown.map(\.0.id))
        return shown.enumerated().map { i, pair in
            let (n, s) = pair
            let score = metric.score(distance: n.distance, dimension: dimension)
            return SearchResult(rank: i + 1, id: n.id, path: s.path, label: s.label, tags: s.tags,
                                score: score, distance: n.distance, cosine: cosines[i] ?? score, facts: s.facts)
        }
    }

    // Conveniences for library images and vectors (tests, evaluation).

    public func search(vector: [Float], k: Int, metric: Metric, excluding: Set<Int64> = [],
                       reranking: Reranking = .none) async throws -> [SearchResult] {
        try await rank(vector: vector, request: SearchRequest(k: k, metric: metric, reranking: reranking),
                 parameters: SearchParameters(excluding: excluding))
    }

    public func search(imageId: Int64, k: Int, metric: Metric, includeSelf: Bool = false,
                       reranking: Reranking = .none) async throws -> [SearchResult] {
        guard let vector = try library.store.reconstruct(imageId) ?? catalogue.vector(imageId: imageId) else {
            throw QueryError(.notFound, "no image with id \(imageId) in \(catalogue.path)")
        }
        return try await rankExplained(vector: vector, libraryId: imageId, request: SearchRequest(k: k, metric: metric, reranking: reranking),
                                 parameters: SearchParameters(excluding: includeSelf ? [] : [imageId])).0
    }

    public func search(path: String, k: Int, metric: Metric, includeSelf: Bool = false) async throws -> [SearchResult] {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let id = try catalogue.imageId(path: absolute) else {
            throw QueryError(.notFound, "\(path) is not in the library \(catalogue.path)")
        }
        return try await search(imageId: id, k: k, metric: metric, includeSelf: includeSelf)
    }
}
