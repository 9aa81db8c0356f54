// Runs a labelled library's queries through a search method (and re-ranking) and measures them.
// Labels are folder names; images of a clutter folder (BACKGROUND_Google in Caltech-101) are
// searched against but are never a query and never relevant (or left out of the library entirely
// with `clutter: .exclude`, which is the reference peer's protocol). Each query ranks every other
// image: the exact method gives the full ranking (mAP over it); a coarse method gives its top
// `candidateLimit` (AP over that list, missing relevant images counting as misses).
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

public struct EvaluationOptions: Sendable {
    public enum Queries: Sendable {
        case all
        /// A sample of this many queries, drawn with `seed`.
        case sample(Int)
        /// Library paths, absolute or relative to the library's folders (`saxophone/image_0016.jpg`).
        case paths([String])
        /// The labelled images under a folder of the library (a group of a mixed library, e.g.
        /// `ukbench500` beside `caltech101`: each group measured at its own k, against the whole library).
        case under(String)
    }
    public enum Clutter: String, Sendable, Codable { case distractor, exclude }

    public var k: Int = 20
    public var queries: Queries = .all
    public var seed: UInt64 = 0
    public var method: IndexDescriptor = IndexDescriptor(method: ExactIndex.methodName)
    public var reranking: Reranking = .none
    public var clutterLabels: Set<String> = ["BACKGROUND_Google"]
    public var clutter: Clutter = .distractor
    /// Results a coarse method returns per query (AP is computed over them).
    public var candidateLimit = 1000
    /// Example rows kept for the report (per query: the top k ids).
    public var keepTopK = true
    /// Rank each query as an outside image would be (an upload: its raw vector, no library node to
    /// seed diffusion, near-copies merged in), the query itself left out of the library's answer.
    public var asOutside = false

    public init() {}
}

public struct QueryOutcome: Sendable, Codable {
    public let id: Int64
    public let path: String
    public let label: String
    public let relevantCount: Int
    public let precisionAtK: Double
    public let recallAtK: Double
    public let averagePrecision: Double
    /// The top k results (ids) and whether each is relevant.
    public let top: [Int64]
    public let topRelevant: [Bool]
}

public struct ClassOutcome: Sendable, Codable {
    public let label: String
    public let queries: Int
    public let precisionAtK: Double
    public let recallAtK: Double
    public let map: Double
}

/// The figures of one group of queries: the images under one folder the library was indexed from
/// (a mixed library: a photo collection beside an instance set, each judged on its own).
public struct GroupOutcome: Sendable, Codable {
    public let folder: String
    public let queries: Int
    public let precisionAtK: Double
    public let recallAtK: Double
    public let map: Double
}

public struct EvaluationReport: Sendable, Codable {
    public let library: String
    public let images: Int
    public let queries: Int
    public let k: Int
    public let method: String
    public let reranking: String
    public let clutter: String
    /// "full ranking" (exact) or "top N returned" (coarse methods).
    public let apOver: String
    public let precision_at_k: Double
    public let recall_at_k: Double
    public let f1_at_k: Double
    public let map: Double
    /// Precision at ranks 1..k, averaged over queries (the thesis's curve).
    public let precision_at_rank: [Double]
    /// Interpolated precision at recall 0, 0.1, ..., 1, averaged over queries.
    public let precision_at_recall: [Double]
    /// Single-query search latency of this method (and of exact, for the reduction).
    public let ms_per_query: Double
    public let exact_ms_per_query: Double
    public let time_reduction_percent: Double
    /// Seconds spent preparing re-ranking data (e.g. database-side augmentation), once.
    public let preparation_s: Double
    public let per_class: [ClassOutcome]
    public let per_query: [QueryOutcome]
    /// Per folder the library was indexed from, when it was indexed from more than one.
    public var per_group: [GroupOutcome] = []
}

extension Evaluator {
    /// The queries' figures per folder of `roots` (the longest that holds each query's path); empty
    /// when they all fall under one.
    public static func groups(_ queries: [QueryOutcome], roots: [String]) -> [GroupOutcome] {
        let prefixes = roots.map { $0.hasSuffix("/") ? $0 : $0 + "/" }.sorted { $0.count > $1.count }
        var byRoot: [String: [QueryOutcome]] = [:]
        for q in queries {
            let root = prefixes.first { q.path.hasPrefix($0) } ?? "(elsewhere)"
            byRoot[root, default: []].append(q)
        }
        guard byRoot.count > 1 else { return [] }
        return byRoot.keys.sorted().compactMap { root in
            guard let members = byRoot[root], !members.isEmpty else { return nil }
            let n = Double(members.count)
            return GroupOutcome(folder: root, queries: members.count,
                                precisionAtK: members.reduce(0) { $0 + $1.precisionAtK } / n,
                                recallAtK: members.reduce(0) { $0 + $1.recallAtK } / n,
                                map: members.reduce(0) { $0 + $1.averagePrecision } / n)
        }
    }
}

public enum Evaluator {
    /// One image as evaluation sees it.
    struct Item {
        let id: Int64
        let path: String
        let label: String
    }

    public static func run(library: LiveLibrary, options: EvaluationOptions,
                           progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> EvaluationReport {
        let summaries = try library.catalogue.allSummaries()
        let live = Set(library.store.liveIds)
        let items = summaries.values.filter { live.contains($0.imageId) }
            .map { Item(id: $0.imageId, path: $0.path, label: $0.label) }
            .sorted { $0.path < $1.path }
        let byId = Dictionary(uniqueKeysWithValues: items.map { ($0.id, $0) })
        let (inLibrary, labelCounts, queries) = try plan(items, options: options, what: "library")
        let libraryIds = Set(inLibrary.map(\.id))

        let index = try library.index(for: options.method)
        let isExact = options.method.method == ExactIndex.methodName
        let limit = isExact ? inLibrary.count : min(options.candidateLimit, inLibrary.count)
        let filter: (@Sendable (Int64) -> Bool)? = options.clutter == .exclude ? { @Sendable in libraryIds.contains($0) } : nil
        let ranker = try Reranker(library: library, index: index, options: options.reranking, filter: filter)

        // Rankings, in batches of queries (one matrix product per batch for exact search).
        var outcomes: [QueryOutcome] = []
        var metrics: [RankingMetrics] = []
        outcomes.reserveCapacity(queries.count)
        let batch = 64
        for start in stride(from: 0, to: queries.count, by: batch) {
            let chunk = Array(queries[start..<min(queries.count, start + batch)])
            let rankings = options.asOutside
                ? try await ranker.rankAsOutside(queries: chunk.map(\.id), limit: limit)
                : try ranker.rank(queries: chunk.map(\.id), limit: limit)
            for (query, ranking) in zip(chunk, rankings) {
                let (outcome, m) = measure(query, ranking: ranking.filter { $0 != query.id },
                                           label: { byId[$0]?.label }, labelCounts: labelCounts, options: options)
                metrics.append(m)
                outcomes.append(outcome)
            }
            progress?(outcomes.count, queries.count)
        }

        // Latency: single queries at k, this method (with its re-ranking) against plain exact.
        let timed = Array(queries.prefix(200).map(\.id))
        let methodMs = try await ranker.latency(queries: timed, k: options.k)
        let exactRanker = try Reranker(library: library, index: try library.index(for: IndexDescriptor(method: ExactIndex.methodName)),
                                       options: .none, filter: filter)
        let exactMs = isExact && options.reranking == .none ? methodMs : try await exactRanker.latency(queries: timed, k: options.k)

        var reported = options
        if options.asOutside { reported.reranking = ranker.applied(libraryId: nil) }
        return report(library: library.catalogue.path, images: inLibrary.count, options: reported,
                      apOver: isExact ? "full ranking" : "top \(limit) returned (relevant images not returned count as misses)",
                      outcomes: outcomes, metrics: metrics, methodMs: methodMs, exactMs: exactMs,
                      preparationSeconds: ranker.preparationSeconds)
    }

    /// One query's metrics over its ranking (the query itself already left out): relevant means
    /// the query's label; `labelCounts` says how many images each label has in the library.
    static func measure(_ query: Item, ranking ids: [Int64], label: (Int64) -> String?, labelCounts: [String: Int],
                        options: EvaluationOptions) -> (QueryOutcome, RankingMetrics) {
        let relevant = ids.map { label($0) == query.label }
        let r = (labelCounts[query.label] ?? 1) - 1
        let m = RetrievalMetrics.evaluate(relevant: relevant, relevantCount: r, k: options.k)
        let outcome = QueryOutcome(id: query.id, path: query.path, label: query.label, relevantCount: r,
                                   precisionAtK: m.precisionAtK, recallAtK: m.recallAtK, averagePrecision: m.averagePrecision,
                                   top: options.keepTopK ? Array(ids.prefix(options.k)) : [],
                                   topRelevant: options.keepTopK ? Array(relevant.prefix(options.k)) : [])
        return (outcome, m)
    }

    /// Means, curves and the per-class table of measured queries.
    static func report(library: String, images: Int, options: EvaluationOptions, method: String? = nil, apOver: String,
                       outcomes: [QueryOutcome], metrics: [RankingMetrics], methodMs: Double, exactMs: Double,
                       preparationSeconds: Double) -> EvaluationReport {
        func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }
        let k = options.k
        var perClass: [ClassOutcome] = []
        for (label, group) in Dictionary(grouping: outcomes, by: \.label) {
            perClass.append(ClassOutcome(label: label, queries: group.count, precisionAtK: mean(group.map(\.precisionAtK)),
                                         recallAtK: mean(group.map(\.recallAtK)), map: mean(group.map(\.averagePrecision))))
        }
        perClass.sort { ($0.precisionAtK, $0.map, $0.label) < ($1.precisionAtK, $1.map, $1.label) }
        return EvaluationReport(
            library: library, images: images, queries: outcomes.count, k: k,
            method: method ?? options.method.name, reranking: options.reranking.description, clutter: options.clutter.rawValue,
            apOver: apOver,
            precision_at_k: mean(metrics.map(\.precisionAtK)), recall_at_k: mean(metrics.map(\.recallAtK)),
            f1_at_k: mean(metrics.map(\.f1AtK)), map: mean(metrics.map(\.averagePrecision)),
            precision_at_rank: (0..<k).map { r in mean(metrics.map { $0.precisionAtRank[r] }) },
            precision_at_recall: (0..<11).map { i in mean(metrics.map { $0.interpolatedPrecision[i] }) },
            ms_per_query: methodMs, exact_ms_per_query: exactMs,
            time_reduction_percent: exactMs > 0 ? (1 - methodMs / exactMs) * 100 : 0,
            preparation_s: preparationSeconds,
            per_class: perClass, per_query: outcomes)
    }

    /// What is searched (clutter left out with `.exclude`), how many images each label has there,
    /// and the queries; an error naming `what` when there is none.
    static func plan(_ items: [Item], options: EvaluationOptions,
                     what: String) throws -> (inLibrary: [Item], labelCounts: [String: Int], queries: [Item]) {
        let clutter = options.clutterLabels
        let inLibrary = options.clutter == .exclude ? items.filter { !clutter.contains($0.label) } : items
        var labelCounts: [String: Int] = [:]
        for item in inLibrary where !clutter.contains(item.label) { labelCounts[item.label, default: 0] += 1 }
        let queries = try selectQueries(items: inLibrary, options: options, labelCounts: labelCounts, clutter: clutter)
        guard !queries.isEmpty else {
            throw IndexError("no queries: the \(what) needs labelled images (folder names) with at least two images per label")
        }
        return (inLibrary, labelCounts, queries)
    }

    static func selectQueries(items: [Item], options: EvaluationOptions, labelCounts: [String: Int],
                              clutter: Set<String>) throws -> [Item] {
        let eligible = items.filter { !clutter.contains($0.label) && !$0.label.isEmpty && (labelCounts[$0.label] ?? 0) > 1 }
        switch options.queries {
        case .all:
            return eligible
        case .sample(let n):
            guard n < eligible.count else { return eligible }
            var rng = SplitMix64(seed: options.seed)
            return Array(eligible.shuffled(using: &rng).prefix(n)).sorted { $0.path < $1.path }
        case .under(let folder):
            let marker = "/" + folder.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/"
            let chosen = eligible.filter { $0.path.contains(marker) }
            guard !chosen.isEmpty else { throw IndexError("no labelled library images under a folder named \(folder)") }
            return chosen
        case .paths(let paths):
            var chosen: [Item] = []
            for path in paths {
                let wanted = path.hasPrefix("/") ? path : "/" + path
                guard let item = items.first(where: { $0.path == path || $0.path.hasSuffix(wanted) }) else {
                    throw IndexError("query \(path) is not in the library")
                }
                guard eligible.contains(where: { $0.id == item.id }) else {
                    throw IndexError("query \(path) has no other image with its label '\(item.label)' (or is clutter)")
                }
                chosen.append(item)
            }
            return chosen
        }
    }
}
