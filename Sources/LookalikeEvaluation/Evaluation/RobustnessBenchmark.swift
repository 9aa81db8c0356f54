// Robustness: how often an edited copy of a library photo still finds the photo itself. For a
// seeded sample of the library's images under a folder, each standard edit (the hard cases the
// seeds name: partial crops, viewpoint (rotation), exposure, contrast, scale, compression, blur,
// occlusion, mirror image, overlaid text) is made with libvips, embedded, and searched against the
// whole library (the originals plus every other image as distractors); recall@1 and recall@5 of the
// original per edit. A library may hold the same picture twice (Caltech-101's Leopards 101-200 are
// Leopards 1-100 mirrored; a few photos are stored twice re-encoded): a library image identical to
// the original pixel for pixel (directly or mirrored, up to re-encoding) is the same picture and
// counts as finding it; the strict figures, the original's own id only, are reported beside.
import CVipsShim
import Dispatch
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch
import LookalikeVerification

public struct Transformation: Sendable, Codable, Equatable {
    public let name: String
    let kind: Int32
    let amount: Double

    public static let standard: [Transformation] = [
        Transformation(name: "crop 50% centre", kind: Int32(LK_TX_CROP_CENTER), amount: 0),
        Transformation(name: "crop 50% corner", kind: Int32(LK_TX_CROP_CORNER), amount: 0),
        Transformation(name: "rotate +15", kind: Int32(LK_TX_ROTATE), amount: 15),
        Transformation(name: "rotate -15", kind: Int32(LK_TX_ROTATE), amount: -15),
        Transformation(name: "rotate 90", kind: Int32(LK_TX_ROTATE), amount: 90),
        Transformation(name: "brightness x1.4", kind: Int32(LK_TX_BRIGHTNESS), amount: 1.4),
        Transformation(name: "brightness x0.6", kind: Int32(LK_TX_BRIGHTNESS), amount: 0.6),
        Transformation(name: "contrast x0.5", kind: Int32(LK_TX_CONTRAST), amount: 0.5),
        Transformation(name: "scale x0.25", kind: Int32(LK_TX_SCALE), amount: 0.25),
        Transformation(name: "JPEG quality 10", kind: Int32(LK_TX_JPEG), amount: 10),
        Transformation(name: "blur sigma 2", kind: Int32(LK_TX_BLUR), amount: 2),
        Transformation(name: "grey square 25%", kind: Int32(LK_TX_OCCLUDE), amount: 0.25),
        Transformation(name: "horizontal flip", kind: Int32(LK_TX_FLIP), amount: 0),
        Transformation(name: "three lines of text", kind: Int32(LK_TX_TEXT), amount: 0),
    ]

    /// The edited image as JPEG bytes.
    public func apply(toFile path: String) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 512)
        let status = message.withUnsafeMutableBufferPointer { m in
            lk_transform_file(path, kind, amount, &out, &length, m.baseAddress, m.count)
        }
        guard status == 0, let out else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw IndexError("\(path): cannot apply '\(name)': \(reason)")
        }
        defer { lk_transform_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }
}

/// Whether two library files hold the same picture (`lk_pixel_difference`): the same size and a
/// mean absolute difference under `tolerance` levels of 255, directly or mirrored. Re-encoding
/// a photo moves its pixels by 1-3 levels on average (Caltech-101's mirrored Leopards: 0.4-0.5,
/// its twice-stored pyramid: 2.8); two shots of one scene differ by more (its two nearly identical
/// watch photos, whose dials show different digits: 7).
public enum PictureTwins {
    public static let tolerance = 4.0

    public static func same(_ a: String, _ b: String) -> Bool {
        var direct = 0.0, mirrored = 0.0
        var message = [CChar](repeating: 0, count: 256)
        let status = message.withUnsafeMutableBufferPointer { m in
            lk_pixel_difference(a, b, &direct, &mirrored, m.baseAddress, m.count)
        }
        return status == 0 && min(direct, mirrored) < tolerance
    }
}

public struct RobustnessRow: Sendable, Codable {
    public let transformation: String
    public let queries: Int
    /// The original, or a library image that is the same picture (`PictureTwins`), came first.
    public let recall_at_1: Double
    public let recall_at_5: Double
    /// The original's own id only.
    public let recall_at_1_strict: Double
    public let recall_at_5_strict: Double
    /// Images the edit or the embedding failed on (left out of the recall).
    public let failures: Int
}

/// One edited copy whose original did not come first: what did, and where the original was, before
/// and after spatial verification, so a reader can tell a short shortlist (the original never a
/// candidate) from a library's own copies of the photo (another image verified better).
public struct RobustnessMiss: Sendable, Codable {
    public let transformation: String
    /// The original's path.
    public let path: String
    /// The original's rank in the search's answer (the shortlist when verifying); nil: not in it.
    public let search_rank: Int?
    /// Its rank after verification (nil: not verifying, or not in the shortlist).
    public let verified_rank: Int?
    /// The image that came first, and its inliers with the copy (nil: not verified).
    public let first: String?
    public let first_inliers: Int?
    /// The original's inliers with the copy (nil: not verified or not a candidate).
    public let original_inliers: Int?
    /// The image that came first is the same picture as the original (counted as found).
    public let twin: Bool
}

public struct RobustnessReport: Sendable, Codable {
    public let library: String
    public let images: Int
    public let sample: Int
    public let method: String
    public let reranking: String
    public let rows: [RobustnessRow]
    /// The recall@1 misses, by edit then path.
    public let misses: [RobustnessMiss]
    public let seconds: Double
}

public enum RobustnessBenchmark {
    public static func run(service: SearchService, embedder: Embedder, folder: String, sample: Int = 200, seed: UInt64 = 0,
                           transformations: [Transformation] = Transformation.standard, reranking: Reranking = .libraryDefault,
                           verify: Int? = nil, progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> RobustnessReport {
        let started = Date()
        let root = URL(fileURLWithPath: folder).standardizedFileURL.path
        let prefix = root.hasSuffix("/") ? root : root + "/"
        let summaries = try service.catalogue.allSummaries()
        let live = Set(service.library.store.liveIds)
        let candidates = summaries.values.filter { live.contains($0.imageId) && ($0.path.hasPrefix(prefix) || $0.path == root) }
            .sorted { $0.path < $1.path }
        guard !candidates.isEmpty else {
            throw IndexError("no library image under \(folder): index it first (`lookalike index \(folder)`)")
        }
        var rng = SplitMix64(seed: seed)
        let chosen = Array(candidates.shuffled(using: &rng).prefix(sample)).sorted { $0.path < $1.path }
        struct Tally: Sendable { var queries = 0, top1 = 0, top5 = 0, strict1 = 0, strict5 = 0, failures = 0 }
        let tallies = Locked([Tally](repeating: Tally(), count: transformations.count))
        let done = Locked(0)
        let total = chosen.count * transformations.count
        // The search's own stages: the same ranking, and verification as a search runs it (asked
        // for a shortlist, or, with no `verify`, decided per copy).
        let request = { var r = SearchRequest(k: 5, reranking: reranking); r.verify = verify; return r }()
        let words = service.visualWords.index()
        let ranked = SearchRequest(k: max(5, verify ?? (words == nil ? SearchRequest.automaticFromFiles : SearchRequest.automaticShortlist)),
                                   reranking: reranking)
        let usedWords = Locked(false)
        let verifiedAny = Locked(0)
        let applied = Locked(Reranking.none)
        let misses = Locked([RobustnessMiss]())
        // Twin checks per (original, candidate), shared by the edits of one photo.
        let twins = Locked([String: Bool]())
        let isTwin: @Sendable (Int64, String, SearchResult) -> Bool = { original, originalPath, candidate in
            guard candidate.id != original else { return true }
            let key = "\(original) \(candidate.id)"
            if let known = twins.withLock({ $0[key] }) { return known }
            let same = PictureTwins.same(originalPath, candidate.path)
            twins.withLock { $0[key] = same }
            return same
        }
        // One edited copy searched as an upload, verified as a search verifies it: whether its
        // original (or a twin of it) came first and among the first 5; a miss is recorded.
        @Sendable func measure(_ image: ImageSummary, _ transformation: Transformation) async throws
            -> (hit1: Bool, hit5: Bool, strict1: Bool, strict5: Bool) {
            let bytes = try transformation.apply(toFile: image.path)
            let vector = try embedder.embed(embedder.decode(data: bytes, name: transformation.name)).vector
            let (searched, used) = try await service.rankExplained(vector: vector, libraryId: nil, request: ranked)
            var results = searched
            // The whole shortlist re-ordered (not only the top 5), for the miss's account.
            if let outcome = try service.verificationStage(searched, image: .bytes(bytes, name: transformation.name), vector: vector,
                                                           request: request, parameters: SearchParameters(), words: words,
                                                           keep: searched.count + VisualWordIndex.candidates) {
                results = outcome.results
                verifiedAny.withLock { $0 = max($0, outcome.checked) }
                if outcome.added != nil { usedWords.withLock { $0 = true } }
            }
            applied.withLock { $0 = used }
            let strict1 = results.first?.id == image.imageId
            let strict5 = results.prefix(5).contains { $0.id == image.imageId }
            let hit1 = results.first.map { isTwin(image.imageId, image.path, $0) } ?? false
            let hit5 = strict5 || results.prefix(5).contains { isTwin(image.imageId, image.path, $0) }
            if !strict1 {
                let original = results.first { $0.id == image.imageId }
                misses.withLock {
                    $0.append(RobustnessMiss(
                        transformation: transformation.name, path: image.path,
                        search_rank: searched.firstIndex { $0.id == image.imageId }.map { $0 + 1 },
                        verified_rank: results.contains { $0.inliers != nil } ? original?.rank : nil,
                        first: results.first?.path, first_inliers: results.first?.inliers,
                        original_inliers: original?.inliers, twin: hit1))
                }
            }
            return (hit1, hit5, strict1, strict5)
        }
        // One task a photo (the cooperative pool runs as many at once as there are cores).
        await withTaskGroup(of: Void.self) { group in
            for image in chosen {
                group.addTask {
                    for (t, transformation) in transformations.enumerated() {
                        let outcome = try? await measure(image, transformation)
                        tallies.withLock { all in
                            if let outcome {
                                all[t].queries += 1
                                if outcome.hit1 { all[t].top1 += 1 }
                                if outcome.hit5 { all[t].top5 += 1 }
                                if outcome.strict1 { all[t].strict1 += 1 }
                                if outcome.strict5 { all[t].strict5 += 1 }
                            } else {
                                all[t].failures += 1
                            }
                        }
                        let n = done.withLock { d -> Int in d += 1; return d }
                        progress?(n, total)
                    }
                }
            }
        }
        let rows = zip(transformations, tallies.value).map { t, tally in
            let share = { (n: Int) in tally.queries > 0 ? Double(n) / Double(tally.queries) : 0 }
            return RobustnessRow(transformation: t.name, queries: tally.queries,
                                 recall_at_1: share(tally.top1), recall_at_5: share(tally.top5),
                                 recall_at_1_strict: share(tally.strict1), recall_at_5_strict: share(tally.strict5),
                                 failures: tally.failures)
        }
        return RobustnessReport(library: service.catalogue.path, images: live.count, sample: chosen.count,
                                method: "exact", reranking: verifiedAny.value == 0 ? applied.value.description
                                    : applied.value.description(verifying: verifiedAny.value, words: usedWords.value ? VisualWordIndex.candidates : 0)
                                    + (verify == nil ? " (verified where the best match was not a clear copy)" : ""),
                                rows: rows,
                                misses: misses.value.sorted { ($0.transformation, $0.path) < ($1.transformation, $1.path) },
                                seconds: Date().timeIntervalSince(started))
    }

    /// The table as a small self-contained HTML page.
    public static func html(_ r: RobustnessReport) -> String {
        var rows = ""
        for row in r.rows {
            func bar(_ v: Double) -> String {
                "<div class='b'><i style='width:\(Int(v * 100))%;background:hsl(\(Int(v * 120)),60%,45%)'></i><span>\(String(format: "%.3f", v))</span></div>"
            }
            rows += "<tr><td>\(EvaluationHTML.escape(row.transformation))</td><td>\(row.queries)</td><td>\(bar(row.recall_at_1))</td><td>\(bar(row.recall_at_5))</td><td>\(String(format: "%.3f / %.3f", row.recall_at_1_strict, row.recall_at_5_strict))</td><td>\(row.failures)</td></tr>"
        }
        func cell(_ v: Int?) -> String { v.map(String.init) ?? "–" }
        let missRows = r.misses.map { m in
            "<tr><td>\(EvaluationHTML.escape(m.transformation))</td><td>\(EvaluationHTML.escape(m.path))</td><td>\(cell(m.search_rank))</td>"
                + "<td>\(cell(m.verified_rank))</td><td>\(EvaluationHTML.escape(m.first ?? "–"))</td><td>\(cell(m.first_inliers))</td><td>\(cell(m.original_inliers))</td><td>\(m.twin ? "yes" : "")</td></tr>"
        }.joined()
        let misses = r.misses.isEmpty ? "" : """
            <h2>Misses (\(r.misses.count))</h2><p>Rank of the original in the search's answer and after verification (– : not in it),
            what came first (twin: the same picture, counted as found), and the inliers of each with the edited copy.</p>
            <table><tr><th>edit</th><th>original</th><th>search rank</th><th>verified rank</th><th>first</th><th>its inliers</th><th>original's</th><th>twin</th></tr>\(missRows)</table>
            """
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Lookalike robustness</title><style>
            body{font:14px/1.45 system-ui,sans-serif;background:#f6f7f9;color:#1d2430;margin:0}main{max-width:900px;margin:0 auto;padding:24px}
            table{border-collapse:collapse;background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;width:100%}
            td,th{padding:6px 10px;border-bottom:1px solid #eef0f3;text-align:left;word-break:break-all}h2{margin-top:28px}th{background:#eef2f8}
            .b{position:relative;background:#eef0f3;border-radius:4px;height:18px;min-width:160px}.b i{display:block;height:100%;border-radius:4px}
            .b span{position:absolute;left:6px;top:0;font-size:12px;color:#fff;text-shadow:0 0 2px #000}
            </style></head><body><main><h1>Robustness to edits</h1>
            <p>\(EvaluationHTML.escape(r.library)): \(r.sample) photos edited \(r.rows.count) ways, each searched against all \(r.images) images
            (method \(EvaluationHTML.escape(r.method)), re-ranking \(EvaluationHTML.escape(r.reranking))). Recall@k: the original, or a library image that is the same picture (identical pixels up to
            re-encoding, directly or mirrored), is among the top k; strict: the original's own id.</p>
            <table><tr><th>edit</th><th>queries</th><th>recall@1</th><th>recall@5</th><th>strict @1 / @5</th><th>failed</th></tr>\(rows)</table>\(misses)</main></body></html>

            """
    }
}
